//! Delete Attribute: remove one instance of an attribute a client may delete.

use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::keys::KeyError;
use crate::kmip::ResultReason;
use crate::kmip::attribute;
use crate::kmip::payload::Payload;
use crate::kmip::payload::delete_attribute::{Request, Response};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let name = request.attribute_name;
    if !attribute::client_may_delete(&name) {
        return Err((
            OpError::permission_denied(format!("attribute {name} cannot be deleted")),
            Some(uid),
        ));
    }
    let current = super::attributes::current_value(&request.extra);
    let index = request.attribute_index;
    let removed = ctx
        .update(&uid, |object| {
            let index = match current {
                Some(value) => Some(
                    super::attributes::index_holding(&object.attributes, &name, value)
                        .ok_or(KeyError::AttributeNotFound)?,
                ),
                None => index,
            };
            object
                .remove_instance(&name, index)
                .ok_or(KeyError::AttributeNotFound)
        })
        .await
        .map_err(|e| match e {
            KeyError::NotFound => OpError::new(ResultReason::ITEM_NOT_FOUND, "no such object"),
            // 2.x names it Attribute Not Found; 1.x has only Item Not Found.
            KeyError::AttributeNotFound => ctx.v2_reason(
                OpError::new(ResultReason::ITEM_NOT_FOUND, "no such attribute instance"),
                ResultReason::ITEM_NOT_FOUND,
                ResultReason::ATTRIBUTE_NOT_FOUND,
            ),
            other => OpError::from(other),
        })
        .map_err(about(&uid))?;
    let response = Response {
        unique_identifier: uid.clone(),
        attribute: removed,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
