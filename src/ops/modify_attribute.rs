//! Modify Attribute: change the value of one instance a client may change.

use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::keys::{KeyError, names};
use crate::kmip::attribute::{self, Attribute};
use crate::kmip::payload::Payload;
use crate::kmip::payload::modify_attribute::{Request, Response};
use crate::kmip::{ResultReason, State};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let wanted = request.attribute;
    attribute::validate_value(&wanted).map_err(about(&uid))?;
    if !attribute::client_may_modify(&wanted.name) {
        let e = OpError::permission_denied(format!("attribute {} cannot be modified", wanted.name));
        return Err((
            ctx.v2_reason(
                e,
                ResultReason::PERMISSION_DENIED,
                ResultReason::ATTRIBUTE_READ_ONLY,
            ),
            Some(uid),
        ));
    }
    let current = super::attributes::current_value(&request.extra).cloned();
    let want_index = wanted.index.unwrap_or(0);
    let stored = ctx
        .update(&uid, |object| {
            // Dates that drive the lifecycle may change only before they took effect.
            if wanted.name == names::ACTIVATION_DATE && object.state != State::PRE_ACTIVE {
                return Err(KeyError::NotPermitted(
                    "Activation Date is fixed once the object is active".into(),
                ));
            }
            let want_index = match &current {
                Some(value) => super::attributes::index_holding(&object.attributes, &wanted.name, value)
                    .ok_or(KeyError::AttributeNotFound)?,
                None => want_index,
            };
            let slot = object
                .attributes
                .iter_mut()
                .find(|a| a.name == wanted.name && a.index.unwrap_or(0) == want_index)
                .ok_or(KeyError::AttributeNotFound)?;
            slot.value = wanted.value.clone();
            Ok(Attribute {
                name: slot.name.clone(),
                index: slot.index,
                value: slot.value.clone(),
            })
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
            // 2.x: the Activation Date of an active object is fixed by its state.
            other => ctx.v2_reason(
                OpError::from(other),
                ResultReason::PERMISSION_DENIED,
                ResultReason::WRONG_KEY_LIFECYCLE_STATE,
            ),
        })
        .map_err(about(&uid))?;
    let response = Response {
        unique_identifier: uid.clone(),
        attribute: stored,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
