//! Activate: Pre-Active → Active. vCenter refuses a key that is not Active.

use super::context::{Context, ItemResult, about};
use crate::keys::{lifecycle, names, transition_error};
use crate::kmip::payload::Payload;
use crate::kmip::payload::activate::{Request, Response};
use crate::ttlv::Value;

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let now = ctx.now;
    ctx.update(&uid, |object| {
        let next = lifecycle::activate(object.state).map_err(transition_error)?;
        object.set_state(next);
        object.set_single(names::ACTIVATION_DATE, Value::DateTime(now));
        Ok(())
    })
    .await
    .map_err(about(&uid))?;
    let response = Response {
        unique_identifier: uid.clone(),
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
