//! Sign: a signature over the data under a managed private key that stays in
//! the server: RSA with PKCS#1 v1.5 or PSS padding, ECDSA on P-256/P-384.
//! The scheme comes from Cryptographic Parameters (the request's, else the
//! key's): a Digital Signature Algorithm, or padding and hash; none is guessed.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaEncoding};

use super::asymmetric::{self, Curve, PrivateKey};
use super::cipher::{self, MAX_DATA_BYTES};
use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::kmip::object::ManagedObject;
use crate::kmip::payload::Payload;
use crate::kmip::payload::crypt::CryptographicParameters;
use crate::kmip::payload::proof::{SignRequest, SignResponse};
use crate::kmip::{
    CryptographicAlgorithm, CryptographicUsageMask, DigitalSignatureAlgorithm, HashingAlgorithm, ObjectType,
    PaddingMethod, ResultReason, tags,
};
use crate::ttlv::Item;

pub(super) async fn run(ctx: &Context<'_>, request: SignRequest) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let response = sign(ctx, &uid, request).await.map_err(about(&uid))?;
    Ok((Some(response.to_payload()), Some(uid)))
}

/// A signature scheme keyward runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    RsaPkcs1(Hash),
    RsaPss(Hash),
    Ecdsa(Hash),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

fn unsupported(what: &str) -> OpError {
    OpError::new(ResultReason::CRYPTOGRAPHIC_FAILURE, what)
}

fn hash_of(h: Option<HashingAlgorithm>) -> Result<Hash, OpError> {
    match h {
        Some(HashingAlgorithm::SHA_256) => Ok(Hash::Sha256),
        Some(HashingAlgorithm::SHA_384) => Ok(Hash::Sha384),
        Some(HashingAlgorithm::SHA_512) => Ok(Hash::Sha512),
        Some(_) => Err(unsupported("signatures use SHA-256, SHA-384 or SHA-512 here")),
        None => Err(OpError::invalid_field("give a Hashing Algorithm")),
    }
}

/// The scheme the parameters ask for, for a key of `family` (RSA or EC).
pub(super) fn scheme(
    params: Option<&CryptographicParameters>,
    family: CryptographicAlgorithm,
) -> Result<Scheme, OpError> {
    let params = params.ok_or_else(|| {
        OpError::invalid_field(
            "give Cryptographic Parameters: a Digital Signature Algorithm, or padding and hash",
        )
    })?;
    let scheme = match params.digital_signature_algorithm {
        Some(DigitalSignatureAlgorithm::SHA_256_WITH_RSA_ENCRYPTION) => Scheme::RsaPkcs1(Hash::Sha256),
        Some(DigitalSignatureAlgorithm::SHA_384_WITH_RSA_ENCRYPTION) => Scheme::RsaPkcs1(Hash::Sha384),
        Some(DigitalSignatureAlgorithm::SHA_512_WITH_RSA_ENCRYPTION) => Scheme::RsaPkcs1(Hash::Sha512),
        Some(DigitalSignatureAlgorithm::RSASSA_PSS) => Scheme::RsaPss(hash_of(
            params.hashing_algorithm.or(Some(HashingAlgorithm::SHA_256)),
        )?),
        Some(DigitalSignatureAlgorithm::ECDSA_WITH_SHA256) => Scheme::Ecdsa(Hash::Sha256),
        Some(DigitalSignatureAlgorithm::ECDSA_WITH_SHA384) => Scheme::Ecdsa(Hash::Sha384),
        Some(DigitalSignatureAlgorithm::ECDSA_WITH_SHA512) => Scheme::Ecdsa(Hash::Sha512),
        Some(_) => {
            return Err(unsupported(
                "signatures here: SHA-256/384/512 with RSA (PKCS#1 v1.5 or PSS) or ECDSA",
            ));
        }
        None => match (family, params.padding_method) {
            (CryptographicAlgorithm::RSA, Some(PaddingMethod::PSS)) => {
                Scheme::RsaPss(hash_of(params.hashing_algorithm)?)
            }
            (CryptographicAlgorithm::RSA, Some(PaddingMethod::PKCS1_V1_5)) => {
                Scheme::RsaPkcs1(hash_of(params.hashing_algorithm)?)
            }
            (CryptographicAlgorithm::RSA, _) => {
                return Err(OpError::invalid_field(
                    "give a Padding Method (PSS or PKCS1 v1.5) for RSA",
                ));
            }
            _ => Scheme::Ecdsa(hash_of(params.hashing_algorithm)?),
        },
    };
    if let Some(asked) = params.cryptographic_algorithm {
        let fits = match scheme {
            Scheme::RsaPkcs1(_) | Scheme::RsaPss(_) => asked == CryptographicAlgorithm::RSA,
            Scheme::Ecdsa(_) => matches!(asked, CryptographicAlgorithm::EC | CryptographicAlgorithm::ECDSA),
        };
        if !fits {
            return Err(OpError::invalid_field(
                "the parameters' algorithm is not the scheme's",
            ));
        }
    }
    Ok(scheme)
}

/// ECDSA signs with the curve's own hash (P-256 with SHA-256, P-384 with
/// SHA-384): the pairs aws-lc signs with.
pub(super) fn ec_hash_fits(curve: Curve, hash: Hash) -> Result<(), OpError> {
    match (curve, hash) {
        (Curve::P256, Hash::Sha256) | (Curve::P384, Hash::Sha384) => Ok(()),
        _ => Err(unsupported("ECDSA here: P-256 with SHA-256, P-384 with SHA-384")),
    }
}

/// Refuses streaming and pre-hashed data (Digested Data): keyward hashes.
pub(super) fn request_checks(extra: &[Item], data_len: usize) -> Result<(), OpError> {
    if extra.iter().any(|i| i.tag == tags::DIGESTED_DATA) {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "Digested Data is not taken: send the Data",
        ));
    }
    cipher::request_checks(extra, data_len, MAX_DATA_BYTES)
}

async fn sign(ctx: &Context<'_>, uid: &str, request: SignRequest) -> Result<SignResponse, OpError> {
    request_checks(&request.extra, request.data.len())?;
    let stored = ctx.keys.load(ctx.caller, uid, ctx.now).await?;
    if stored.object_type != ObjectType::PRIVATE_KEY {
        return Err(unsupported("signatures are made with private keys"));
    }
    cipher::check_state_and_mask(&stored, CryptographicUsageMask::SIGN, true, ctx.now)?;
    let params = cipher::parameters(request.cryptographic_parameters, &stored)?;
    let ManagedObject::PrivateKey { key_block } = ctx.keys.open(&stored).await? else {
        return Err(unsupported("the object is not a private key"));
    };
    let key = asymmetric::read_private(&key_block)?;
    let family = match key {
        PrivateKey::Rsa(_) => CryptographicAlgorithm::RSA,
        PrivateKey::Ec(..) => CryptographicAlgorithm::EC,
    };
    let scheme = scheme(params.as_ref(), family)?;
    let data = request.data.expose();
    let rng = SystemRandom::new();
    let signature = match (key, scheme) {
        (PrivateKey::Rsa(pair), Scheme::RsaPkcs1(h) | Scheme::RsaPss(h)) => {
            let encoding: &'static dyn RsaEncoding = match (scheme, h) {
                (Scheme::RsaPss(_), Hash::Sha256) => &signature::RSA_PSS_SHA256,
                (Scheme::RsaPss(_), Hash::Sha384) => &signature::RSA_PSS_SHA384,
                (Scheme::RsaPss(_), Hash::Sha512) => &signature::RSA_PSS_SHA512,
                (_, Hash::Sha256) => &signature::RSA_PKCS1_SHA256,
                (_, Hash::Sha384) => &signature::RSA_PKCS1_SHA384,
                (_, Hash::Sha512) => &signature::RSA_PKCS1_SHA512,
            };
            let mut out = vec![0; pair.public_modulus_len()];
            pair.sign(encoding, &rng, data, &mut out)
                .map_err(|_| unsupported("signing failed"))?;
            out
        }
        (PrivateKey::Ec(curve, pair), Scheme::Ecdsa(h)) => {
            ec_hash_fits(curve, h)?;
            pair.sign(&rng, data)
                .map_err(|_| unsupported("signing failed"))?
                .as_ref()
                .to_vec()
        }
        _ => return Err(unsupported("the scheme does not fit the key (RSA or EC)")),
    };
    Ok(SignResponse {
        unique_identifier: uid.to_owned(),
        proof: signature,
        extra: Vec::new(),
    })
}
