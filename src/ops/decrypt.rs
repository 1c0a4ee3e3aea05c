//! Decrypt: AES under a managed key that never leaves the server (see
//! `cipher`). Every failure of the data itself (tag, padding, IV) is one
//! answer, Cryptographic Failure, so the answers are no padding oracle.

use super::cipher::{self, MAX_DATA_BYTES};
use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::kmip::CryptographicUsageMask;
use crate::kmip::payload::Payload;
use crate::kmip::payload::crypt::{DecryptRequest, DecryptResponse};

pub(super) async fn run(ctx: &Context<'_>, request: DecryptRequest) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let response = decrypt(ctx, &uid, request).await.map_err(about(&uid))?;
    Ok((Some(response.to_payload()), Some(uid)))
}

async fn decrypt(ctx: &Context<'_>, uid: &str, request: DecryptRequest) -> Result<DecryptResponse, OpError> {
    // GCM's tag travels apart from the data: allow for it.
    cipher::request_checks(&request.extra, request.data.len(), MAX_DATA_BYTES + 16)?;
    let stored = ctx.keys.load(ctx.caller, uid, ctx.now).await?;
    cipher::check_usable(&stored, CryptographicUsageMask::DECRYPT, ctx.now)?;
    let mode = cipher::mode(cipher::parameters(request.cryptographic_parameters, &stored)?.as_ref())?;
    let key = cipher::key_bytes(ctx.keys.open(&stored).await?)?;
    let data = cipher::decrypt(
        mode,
        key.expose(),
        request.iv_counter_nonce.as_deref(),
        request.aad.as_deref().unwrap_or_default(),
        request.tag.as_deref(),
        request.data.expose(),
    )?;
    Ok(DecryptResponse {
        unique_identifier: uid.to_owned(),
        data,
        iv_counter_nonce: None,
        tag: None,
        extra: Vec::new(),
    })
}
