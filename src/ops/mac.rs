//! MAC: HMAC-SHA-256/384/512 under a managed HMAC key that stays in the
//! server (see `hmac_key`).

use super::cipher::{self, MAX_DATA_BYTES};
use super::context::{Context, ItemResult, about};
use super::error::OpError;
use super::mac_verify::hmac_key;
use crate::kmip::CryptographicUsageMask;
use crate::kmip::payload::Payload;
use crate::kmip::payload::proof::{MacRequest, MacResponse};

pub(super) async fn run(ctx: &Context<'_>, request: MacRequest) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let response = mac(ctx, &uid, request).await.map_err(about(&uid))?;
    Ok((Some(response.to_payload()), Some(uid)))
}

async fn mac(ctx: &Context<'_>, uid: &str, request: MacRequest) -> Result<MacResponse, OpError> {
    cipher::request_checks(&request.extra, request.data.len(), MAX_DATA_BYTES)?;
    let key = hmac_key(
        ctx,
        uid,
        request.cryptographic_parameters,
        CryptographicUsageMask::MAC_GENERATE,
    )
    .await?;
    let tag = aws_lc_rs::hmac::sign(&key, request.data.expose());
    Ok(MacResponse {
        unique_identifier: uid.to_owned(),
        proof: tag.as_ref().to_vec(),
        extra: Vec::new(),
    })
}
