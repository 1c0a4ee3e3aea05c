//! Locate: identifiers of the caller's objects matching the given attributes.

use super::context::{Context, ItemResult};
use super::error::OpError;
use crate::kmip::payload::Payload;
use crate::kmip::payload::locate::{Request, Response};
use crate::limits::{DEFAULT_LOCATE_ITEMS, MAX_LOCATE_ITEMS};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    // No Maximum Items gets the default, a larger one the maximum: one Locate
    // never answers a whole large group (see `limits`).
    let max = match request.maximum_items {
        Some(m) if m < 0 => return Err((OpError::invalid_field("Maximum Items must not be negative"), None)),
        Some(m) => usize::try_from(m).unwrap_or(usize::MAX).min(MAX_LOCATE_ITEMS),
        None => DEFAULT_LOCATE_ITEMS,
    };
    let offset = match request.offset_items {
        Some(o) if o < 0 => return Err((OpError::invalid_field("Offset Items must not be negative"), None)),
        Some(o) => usize::try_from(o).unwrap_or(0),
        None => 0,
    };
    // Located Items (1.3+) is the total number of matches, which a client needs
    // only when it pages with Maximum / Offset Items; KMIP lets a server leave
    // it out, and the OASIS 1.3–1.4 cases expect it absent otherwise.
    let paging = request.maximum_items.is_some() || request.offset_items.is_some();
    let count_all = paging && ctx.version >= crate::kmip::message::ProtocolVersion::V1_3;
    let (found, total) = ctx
        .keys
        .locate(ctx.caller, &request.attributes, offset, max, count_all, ctx.now)
        .await
        .map_err(|e| (OpError::from(e), None))?;
    let located_items = total.and_then(|t| i32::try_from(t).ok());
    let first = found.first().cloned();
    let response = Response {
        located_items,
        unique_identifiers: found,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), first))
}
