//! Get Attributes: all of them, or those named. A name that is not set gives
//! nothing — Success with no attribute, which vCenter relies on.

use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::kmip::ResultReason;
use crate::kmip::payload::Payload;
use crate::kmip::payload::get_attributes::{Request, Response};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let names = &request.attribute_names;
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find_map(|(i, n)| names[..i].contains(n).then_some(n))
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
        stored.attributes
    } else {
        stored
            .attributes
            .into_iter()
            .filter(|a| request.attribute_names.contains(&a.name))
            .collect()
    };
    let response = Response {
        unique_identifier: uid.clone(),
        attributes,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
