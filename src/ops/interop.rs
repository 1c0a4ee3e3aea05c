//! Interop and Log: the KMIP 2.x test-harness operations. Interop (Begin,
//! End, Reset of a named test case) changes nothing here: keyward keeps no
//! per-test state. Log writes the client's line, escaped and cut to
//! [`MAX_LOG_CHARS`], to the operational log under the client's name.

use super::context::{Context, ItemResult};
use super::error::OpError;
use crate::kmip::payload::interop::{InteropRequest, LogRequest};
use crate::kmip::tags;
use crate::ttlv::Item;

/// The most of a Log message that reaches the operational log.
pub(super) const MAX_LOG_CHARS: usize = 256;

fn empty_answer() -> ItemResult {
    Ok((Some(Item::structure(tags::RESPONSE_PAYLOAD, Vec::new())), None))
}

fn refuse_extra(extra: &[Item]) -> Result<(), (OpError, Option<String>)> {
    if extra.is_empty() {
        Ok(())
    } else {
        Err((OpError::invalid_field("unexpected fields in the payload"), None))
    }
}

pub(super) async fn interop(_ctx: &Context<'_>, request: InteropRequest) -> ItemResult {
    refuse_extra(&request.extra)?;
    empty_answer()
}

pub(super) async fn log(ctx: &Context<'_>, request: LogRequest) -> ItemResult {
    refuse_extra(&request.extra)?;
    let line: String = request.message.chars().take(MAX_LOG_CHARS).collect();
    tracing::info!(
        client = ctx.caller.name(),
        message = %crate::audit::escape_controls(&line),
        "KMIP Log"
    );
    empty_answer()
}
