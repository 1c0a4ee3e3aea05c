//! Encrypt: AES under a managed key that never leaves the server (see
//! `cipher` for the modes). The plaintext and the key live for the call only.

use super::cipher::{self, MAX_DATA_BYTES};
use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::kmip::CryptographicUsageMask;
use crate::kmip::payload::Payload;
use crate::kmip::payload::crypt::{EncryptRequest, EncryptResponse};

pub(super) async fn run(ctx: &Context<'_>, request: EncryptRequest) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let response = encrypt(ctx, &uid, request).await.map_err(about(&uid))?;
    Ok((Some(response.to_payload()), Some(uid)))
}

async fn encrypt(ctx: &Context<'_>, uid: &str, request: EncryptRequest) -> Result<EncryptResponse, OpError> {
    cipher::request_checks(&request.extra, request.data.len(), MAX_DATA_BYTES)?;
    let stored = ctx.keys.load(ctx.caller, uid, ctx.now).await?;
    cipher::check_usable(&stored, CryptographicUsageMask::ENCRYPT, ctx.now)?;
    let mode = cipher::mode(cipher::parameters(request.cryptographic_parameters, &stored)?.as_ref())?;
    let key = cipher::key_bytes(ctx.keys.open(&stored).await?)?;
    let sealed = cipher::encrypt(
        mode,
        key.expose(),
        request.iv_counter_nonce.as_deref(),
        request.aad.as_deref().unwrap_or_default(),
        request.data.expose(),
    )?;
    Ok(EncryptResponse {
        unique_identifier: uid.to_owned(),
        data: sealed.data,
        iv_counter_nonce: sealed.made_iv,
        tag: sealed.tag,
        extra: Vec::new(),
    })
}
