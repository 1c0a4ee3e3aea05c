//! Discover Versions: vCenter's opening message and 5-minute health check.

use super::context::{Context, ItemResult};
use super::support::SUPPORTED_VERSIONS;
use crate::kmip::payload::Payload;
use crate::kmip::payload::discover_versions::{Request, Response};

pub(super) async fn run(_ctx: &Context<'_>, request: Request) -> ItemResult {
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
