//! MAC Verify: whether a MAC over the data holds under a managed HMAC key,
//! compared in constant time. A MAC that does not hold is an answer (Invalid),
//! not a failure.

use aws_lc_rs::hmac;

use super::cipher::{self, MAX_DATA_BYTES};
use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::keys::StoredObject;
use crate::kmip::payload::Payload;
use crate::kmip::payload::crypt::CryptographicParameters;
use crate::kmip::payload::proof::{MacVerifyRequest, MacVerifyResponse};
use crate::kmip::{CryptographicAlgorithm, CryptographicUsageMask, ResultReason, ValidityIndicator};
use crate::secret::SecretBytes;

pub(super) async fn run(ctx: &Context<'_>, request: MacVerifyRequest) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let response = verify(ctx, &uid, request).await.map_err(about(&uid))?;
    Ok((Some(response.to_payload()), Some(uid)))
}

async fn verify(
    ctx: &Context<'_>,
    uid: &str,
    request: MacVerifyRequest,
) -> Result<MacVerifyResponse, OpError> {
    cipher::request_checks(&request.extra, request.data.len(), MAX_DATA_BYTES)?;
    let key = hmac_key(
        ctx,
        uid,
        request.cryptographic_parameters,
        CryptographicUsageMask::MAC_VERIFY,
    )
    .await?;
    let holds = hmac::verify(&key, request.data.expose(), &request.proof).is_ok();
    Ok(MacVerifyResponse {
        unique_identifier: uid.to_owned(),
        validity_indicator: ValidityIndicator::of(holds),
        extra: Vec::new(),
    })
}

/// The HMAC key `uid` for `usage` (MAC Generate protects, MAC Verify
/// processes): loaded for the client, its mask and state checked, its
/// algorithm HMAC-SHA-256, -384 or -512 and the same as the parameters name,
/// if they name one (a key is made for one hash).
pub(super) async fn hmac_key(
    ctx: &Context<'_>,
    uid: &str,
    params: Option<CryptographicParameters>,
    usage: CryptographicUsageMask,
) -> Result<hmac::Key, OpError> {
    let stored = ctx.keys.load(ctx.caller, uid, ctx.now).await?;
    cipher::check_key_use(
        &stored,
        usage,
        usage == CryptographicUsageMask::MAC_GENERATE,
        ctx.now,
    )?;
    let params = cipher::parameters(params, &stored)?;
    let bytes = cipher::key_bytes(ctx.keys.open(&stored).await?)?;
    hmac_of(&stored, params.as_ref(), bytes)
}

fn hmac_of(
    key: &StoredObject,
    params: Option<&CryptographicParameters>,
    bytes: SecretBytes,
) -> Result<hmac::Key, OpError> {
    let algorithm = cipher::algorithm_of(key);
    let hash = match algorithm {
        Some(CryptographicAlgorithm::HMAC_SHA256) => hmac::HMAC_SHA256,
        Some(CryptographicAlgorithm::HMAC_SHA384) => hmac::HMAC_SHA384,
        Some(CryptographicAlgorithm::HMAC_SHA512) => hmac::HMAC_SHA512,
        _ => {
            return Err(OpError::new(
                ResultReason::CRYPTOGRAPHIC_FAILURE,
                "MACs are made with HMAC-SHA256, -384 or -512 keys here",
            ));
        }
    };
    if let Some(asked) = params.and_then(|p| p.cryptographic_algorithm)
        && Some(asked) != algorithm
    {
        return Err(OpError::invalid_field(
            "the parameters name another algorithm than the key's",
        ));
    }
    Ok(hmac::Key::new(hash, bytes.expose()))
}
