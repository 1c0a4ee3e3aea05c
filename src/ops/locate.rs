//! Locate: identifiers of the caller's objects matching the given attributes.

use super::context::{Context, ItemResult, parse};
use super::error::OpError;
use crate::kmip::payload::Payload;
use crate::kmip::payload::locate::{Request, Response};
use crate::ttlv::Item;

pub(super) async fn run(ctx: &mut Context<'_>, payload: &Item) -> ItemResult {
    let request: Request = parse(payload)?;
    let max = match request.maximum_items {
        Some(m) if m < 0 => return Err((OpError::invalid_field("Maximum Items must not be negative"), None)),
        Some(m) => Some(usize::try_from(m).unwrap_or(usize::MAX)),
        None => None,
    };
    let offset = match request.offset_items {
        Some(o) if o < 0 => return Err((OpError::invalid_field("Offset Items must not be negative"), None)),
        Some(o) => usize::try_from(o).unwrap_or(0),
        None => 0,
    };
    let found = ctx
        .ops
        .keys
        .locate(ctx.group(), &request.attributes, offset, max, ctx.now)
        .await
        .map_err(|e| (OpError::from(e), None))?;
    let first = found.first().cloned();
    let located_items = if ctx.version >= crate::kmip::message::ProtocolVersion::V1_3 {
        i32::try_from(found.len()).ok()
    } else {
        None
    };
    let response = Response {
        located_items,
        unique_identifiers: found,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), first))
}
