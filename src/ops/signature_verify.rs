//! Signature Verify: whether a signature over the data holds under a managed
//! public key. A signature that does not hold is an answer (Invalid), not a
//! failure.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

use super::asymmetric::{self, Curve, PublicKey};
use super::cipher;
use super::context::{Context, ItemResult, about};
use super::error::OpError;
use super::sign::{self, Hash, Scheme};
use crate::kmip::object::ManagedObject;
use crate::kmip::payload::Payload;
use crate::kmip::payload::proof::{VerifyRequest, VerifyResponse};
use crate::kmip::{
    CryptographicAlgorithm, CryptographicUsageMask, ObjectType, ResultReason, ValidityIndicator,
};

pub(super) async fn run(ctx: &Context<'_>, request: VerifyRequest) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let response = verify(ctx, &uid, request).await.map_err(about(&uid))?;
    Ok((Some(response.to_payload()), Some(uid)))
}

static PSS_MAX_SALT_SHA256: signature::RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(signature::RsaPssSaltLength::Max);
static PSS_MAX_SALT_SHA384: signature::RsaParameters =
    signature::RSA_PSS_2048_8192_SHA384.with_pss_salt_length(signature::RsaPssSaltLength::Max);
static PSS_MAX_SALT_SHA512: signature::RsaParameters =
    signature::RSA_PSS_2048_8192_SHA512.with_pss_salt_length(signature::RsaPssSaltLength::Max);

fn failure(what: &str) -> OpError {
    OpError::new(ResultReason::CRYPTOGRAPHIC_FAILURE, what)
}

async fn verify(ctx: &Context<'_>, uid: &str, request: VerifyRequest) -> Result<VerifyResponse, OpError> {
    sign::request_checks(&request.extra, request.data.len())?;
    let stored = ctx.keys.load(ctx.caller, uid, ctx.now).await?;
    if stored.object_type != ObjectType::PUBLIC_KEY {
        return Err(failure("signatures are verified with public keys"));
    }
    cipher::check_state_and_mask(&stored, CryptographicUsageMask::VERIFY, false, ctx.now)?;
    let params = cipher::parameters(request.cryptographic_parameters, &stored)?;
    let ManagedObject::PublicKey { key_block } = ctx.keys.open(&stored).await? else {
        return Err(failure("the object is not a public key"));
    };
    let key = asymmetric::read_public(&key_block)?;
    let family = match key {
        PublicKey::Rsa(_) => CryptographicAlgorithm::RSA,
        PublicKey::Ec(..) => CryptographicAlgorithm::EC,
    };
    let scheme = sign::scheme(params.as_ref(), family)?;
    let (algorithm, bytes): (&'static dyn VerificationAlgorithm, Vec<u8>) = match (key, scheme) {
        (PublicKey::Rsa(der), Scheme::RsaPkcs1(h)) => (
            match h {
                Hash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Hash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Hash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            },
            der,
        ),
        (PublicKey::Rsa(der), Scheme::RsaPss(h)) => (
            match h {
                Hash::Sha256 => &signature::RSA_PSS_2048_8192_SHA256,
                Hash::Sha384 => &signature::RSA_PSS_2048_8192_SHA384,
                Hash::Sha512 => &signature::RSA_PSS_2048_8192_SHA512,
            },
            der,
        ),
        (PublicKey::Ec(curve, point), Scheme::Ecdsa(h)) => {
            sign::ec_hash_fits(curve, h)?;
            (
                match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1,
                },
                point,
            )
        }
        _ => return Err(failure("the scheme does not fit the key (RSA or EC)")),
    };
    let check = |algorithm: &'static dyn VerificationAlgorithm| {
        UnparsedPublicKey::new(algorithm, &bytes)
            .verify(request.data.expose(), &request.proof)
            .is_ok()
    };
    // PSS signers pick the salt length: the digest's (RFC 8017's advice, what
    // keyward signs with) or the largest the key allows (OpenSSL's default,
    // what the OASIS reference server used). Both are taken.
    let holds = check(algorithm)
        || match scheme {
            Scheme::RsaPss(Hash::Sha256) => check(&PSS_MAX_SALT_SHA256),
            Scheme::RsaPss(Hash::Sha384) => check(&PSS_MAX_SALT_SHA384),
            Scheme::RsaPss(Hash::Sha512) => check(&PSS_MAX_SALT_SHA512),
            _ => false,
        };
    Ok(VerifyResponse {
        unique_identifier: uid.to_owned(),
        validity_indicator: ValidityIndicator::of(holds),
        extra: Vec::new(),
    })
}
