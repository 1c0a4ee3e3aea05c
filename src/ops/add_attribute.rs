//! Add Attribute: vCenter's batch of three `x-` tags linking a key to its VM.

use super::attributes::check_settable;
use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::kmip::ResultReason;
use crate::kmip::attribute::{self, Attribute};
use crate::kmip::payload::Payload;
use crate::kmip::payload::add_attribute::{Request, Response};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    check_settable(&request.attribute).map_err(about(&uid))?;
    let wanted = request.attribute;
    let stored = ctx
        .update(&uid, |object| {
            // An object does not carry the same Name twice.
            if wanted.name == crate::keys::names::NAME
                && object
                    .attributes_named(&wanted.name)
                    .any(|a| a.value == wanted.value)
            {
                return Err(crate::keys::KeyError::Invalid(
                    "the object already has this Name".into(),
                ));
            }
            let exists = object.attributes_named(&wanted.name).next().is_some();
            if exists && !attribute::is_multi_instance(&wanted.name) {
                return Err(crate::keys::KeyError::Invalid(format!(
                    "{} is single-instance and already set; use Modify Attribute",
                    wanted.name
                )));
            }
            let index = object.add_instance(&wanted.name, wanted.value.clone());
            // Index 0 is the default and is left out (KMIP 1.4 §2.1.1).
            Ok(Attribute {
                name: wanted.name.clone(),
                index: (index != 0).then_some(index),
                value: wanted.value.clone(),
            })
        })
        .await
        .map_err(|e| match e {
            // KMIP 2.x names the case (Attribute Single Valued); 1.x has
            // only Illegal Operation for it.
            crate::keys::KeyError::Invalid(m) if crate::kmip::v2::is_v2(ctx.version) => {
                let reason = if wanted.name == crate::keys::names::NAME {
                    ResultReason::NON_UNIQUE_NAME_ATTRIBUTE
                } else {
                    ResultReason::ATTRIBUTE_SINGLE_VALUED
                };
                OpError::new(reason, m)
            }
            crate::keys::KeyError::Invalid(m) => OpError::new(ResultReason::ILLEGAL_OPERATION, m),
            crate::keys::KeyError::TooManyAttributes { max_count, max_bytes } => OpError::new(
                ResultReason::ILLEGAL_OPERATION,
                format!("an object may carry at most {max_count} attributes in {max_bytes} bytes"),
            ),
            other => OpError::from(other),
        })
        .map_err(about(&uid))?;
    let response = Response {
        unique_identifier: uid.clone(),
        attribute: stored,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
