//! Get Attributes: all of them (but keyward's own `y-` bookkeeping, see
//! `attributes::shown_unasked`), or those named. A name that is not set gives
//! nothing — Success with no attribute, which vCenter relies on.

use std::collections::HashSet;

use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::kmip::ResultReason;
use crate::kmip::payload::Payload;
use crate::kmip::payload::get_attributes::{Request, Response};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    // One pass with a hash set: the names are client text, and their number
    // is bounded at parse time (`limits::MAX_ATTRIBUTE_NAMES_PER_REQUEST`).
    let mut wanted: HashSet<&str> = HashSet::with_capacity(request.attribute_names.len());
    if let Some(dup) = request
        .attribute_names
        .iter()
        .find(|n| !wanted.insert(n.as_str()))
    {
        return Err((
            OpError::new(
                ResultReason::INVALID_MESSAGE,
                format!("attribute name {dup} given more than once"),
            ),
            Some(uid),
        ));
    }
    let stored = ctx
        .keys
        .load(ctx.caller, &uid, ctx.now)
        .await
        .map_err(about(&uid))?;
    let stored = stored.into_object();
    let attributes = if request.attribute_names.is_empty() {
        stored
            .attributes
            .into_iter()
            .filter(super::attributes::shown_unasked)
            .collect()
    } else {
        stored
            .attributes
            .into_iter()
            .filter(|a| wanted.contains(a.name.as_str()))
            .collect()
    };
    let response = Response {
        unique_identifier: uid.clone(),
        attributes,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
