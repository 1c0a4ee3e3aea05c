//! Check: may the client use this object as it says it will?

use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::keys::names;
use crate::kmip::payload::Payload;
use crate::kmip::payload::check::{Request, Response};
use crate::kmip::{ResultReason, State};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let stored = ctx
        .keys
        .load(ctx.caller, &uid, ctx.now)
        .await
        .map_err(about(&uid))?;
    if stored.state != State::ACTIVE {
        return Err((
            OpError::new(ResultReason::WRONG_KEY_LIFECYCLE_STATE, "object is not Active"),
            Some(uid),
        ));
    }
    if let Some(wanted) = request.check.cryptographic_usage_mask.map(|m| m.0 as i32) {
        let have = stored
            .attribute(names::CRYPTOGRAPHIC_USAGE_MASK)
            .and_then(|a| a.value.as_i32())
            .unwrap_or(0);
        if have & wanted != wanted {
            return Err((
                OpError::new(
                    ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
                    "usage mask not permitted for this object",
                ),
                Some(uid),
            ));
        }
    }
    let response = Response {
        unique_identifier: uid.clone(),
        ..Response::default()
    };
    Ok((Some(response.to_payload()), Some(uid)))
}
