//! Revoke: deactivate, or mark compromised with the dates that go with it.

use super::context::{Context, ItemResult, about};
use crate::keys::{lifecycle, names, transition_error};
use crate::kmip::payload::Payload;
use crate::kmip::payload::revoke::{Request, Response};
use crate::kmip::{State, tags};
use crate::ttlv::Value;

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let now = ctx.now;
    let reason = request.revocation_reason;
    let occurred = request.compromise_occurrence_date.map(|d| d.0);
    ctx.update(&uid, |object| {
        let next = lifecycle::revoke(object.state, reason.code).map_err(transition_error)?;
        if next == State::COMPROMISED {
            if object.date(names::COMPROMISE_DATE).is_none() {
                object.set_single(names::COMPROMISE_DATE, Value::DateTime(now));
            }
            object.set_single(
                names::COMPROMISE_OCCURRENCE_DATE,
                Value::DateTime(occurred.unwrap_or(now)),
            );
        } else if object.date(names::DEACTIVATION_DATE).is_none_or(|d| d > now) {
            object.set_single(names::DEACTIVATION_DATE, Value::DateTime(now));
        }
        object.set_state(next);
        let value = reason.to_value(tags::ATTRIBUTE_VALUE);
        object.set_single(names::REVOCATION_REASON, value.value);
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
