//! Get Attribute List: the names of the attributes an object has.

use super::context::{Context, ItemResult, about};
use crate::kmip::payload::Payload;
use crate::kmip::payload::get_attribute_list::{Request, Response};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let stored = ctx
        .keys
        .load(ctx.caller, &uid, ctx.now)
        .await
        .map_err(about(&uid))?;
    let mut attribute_names: Vec<String> = Vec::new();
    for a in stored.into_object().attributes {
        // The list a client reads every attribute by: not keyward's own.
        if super::attributes::shown_unasked(&a) && !attribute_names.contains(&a.name) {
            attribute_names.push(a.name);
        }
    }
    let response = Response {
        unique_identifier: uid.clone(),
        attribute_names,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
