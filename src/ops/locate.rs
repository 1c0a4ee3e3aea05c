//! Locate: identifiers of the caller's objects matching the given attributes.

use super::context::{Context, ItemResult};
use super::error::OpError;
use crate::kmip::payload::Payload;
use crate::kmip::payload::locate::{Request, Response};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
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
    // Located Items (1.3+) is the total number of matches, which a client needs
    // only when it pages with Maximum / Offset Items; KMIP lets a server leave
    // it out, and the OASIS 1.3–1.4 cases expect it absent otherwise.
    let paging = request.maximum_items.is_some() || request.offset_items.is_some();
    let count_all = paging && ctx.version >= crate::kmip::message::ProtocolVersion::V1_3;
    let (found, located_items) = if count_all {
        let all = ctx
            .keys
            .locate(ctx.caller, &request.attributes, 0, None, ctx.now)
            .await
            .map_err(|e| (OpError::from(e), None))?;
        let total = i32::try_from(all.len()).ok();
        let page = all
            .into_iter()
            .skip(offset)
            .take(max.unwrap_or(usize::MAX))
            .collect::<Vec<_>>();
        (page, total)
    } else {
        let found = ctx
            .keys
            .locate(ctx.caller, &request.attributes, offset, max, ctx.now)
            .await
            .map_err(|e| (OpError::from(e), None))?;
        (found, None)
    };
    let first = found.first().cloned();
    let response = Response {
        located_items,
        unique_identifiers: found,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), first))
}
