//! Destroy: erase the key material; the object stays as Destroyed metadata.

use super::context::{Context, ItemResult, about};
use crate::kmip::ResultReason;
use crate::kmip::payload::Payload;
use crate::kmip::payload::destroy::{Request, Response};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let target = ctx
        .keys
        .load(ctx.caller, &uid, ctx.now)
        .await
        .map_err(about(&uid))?;
    ctx.keys
        .destroy(target, ctx.now)
        .await
        .map_err(|e| {
            // 2.x: an Active key is in the wrong state to destroy.
            ctx.v2_reason(
                e.into(),
                ResultReason::PERMISSION_DENIED,
                ResultReason::WRONG_KEY_LIFECYCLE_STATE,
            )
        })
        .map_err(about(&uid))?;
    let response = Response {
        unique_identifier: uid.clone(),
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
