//! Discover Versions: vCenter's opening message and 5-minute health check.

use super::SUPPORTED_VERSIONS;
use super::context::{Context, ItemResult, parse};
use crate::kmip::payload::Payload;
use crate::kmip::payload::discover_versions::{Request, Response};
use crate::ttlv::Item;

pub(super) async fn run(_ctx: &mut Context<'_>, payload: &Item) -> ItemResult {
    let request: Request = parse(payload)?;
    // The versions both sides speak, in the server's order of preference; all of
    // ours when the client lists none.
    let protocol_versions = SUPPORTED_VERSIONS
        .iter()
        .copied()
        .filter(|v| request.protocol_versions.is_empty() || request.protocol_versions.contains(v))
        .collect();
    let response = Response {
        protocol_versions,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), None))
}
