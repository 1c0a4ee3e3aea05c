//! Create: a new symmetric key, generated from the HSM's random number
//! generator and stored sealed under the root key.

use super::attributes::{client_attributes, stamp_creator};
use super::context::{Context, ItemResult};
use super::error::OpError;
use crate::keys::names;
use crate::kmip::attribute::Attribute;
use crate::kmip::object::{KeyBlock, ManagedObject};
use crate::kmip::payload::Payload;
use crate::kmip::payload::create::{Request, Response};
use crate::kmip::{CryptographicAlgorithm, ObjectType, ResultReason};
use crate::secret::SecretBytes;
use crate::ttlv::Value;

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = create(ctx, request).await.map_err(|e| (e, None))?;
    Ok((
        Some(
            Response {
                object_type: ObjectType::SYMMETRIC_KEY,
                unique_identifier: uid.clone(),
                template_attribute: None,
                extra: Vec::new(),
            }
            .to_payload(),
        ),
        Some(uid),
    ))
}

async fn create(ctx: &Context<'_>, request: Request) -> Result<String, OpError> {
    if request.object_type != ObjectType::SYMMETRIC_KEY {
        return Err(OpError::new(
            ResultReason::INVALID_FIELD,
            "Create makes symmetric keys only",
        ));
    }
    if !request.template_attribute.names.is_empty() {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "templates are not supported",
        ));
    }
    let mut attributes = client_attributes(request.template_attribute.attributes)?;
    stamp_creator(&mut attributes, ctx.caller.name());
    let (algorithm, length) = algorithm_and_length(&attributes)?;
    // Every bound before the HSM is asked for anything.
    ctx.keys.check_new(ctx.caller.group(), &attributes).await?;
    let material = generate_material(ctx, algorithm, length).await?;
    let mut block = KeyBlock::raw(algorithm, material);
    block.cryptographic_length = Some(length as i32);
    let object = ManagedObject::SymmetricKey { key_block: block }.into_item();
    Ok(ctx
        .keys
        .create(
            ctx.caller.group(),
            ObjectType::SYMMETRIC_KEY,
            &object,
            attributes,
            ctx.now,
        )
        .await?)
}

/// The algorithm and length of a new symmetric key, from its attributes:
/// AES of 128, 192 or 256 bits (what vCenter uses), and the other algorithms of
/// the Symmetric Key Foundry profile: two- and three-key Triple DES (112 and
/// 168 bits) and SKIPJACK (80 bits), Camellia, IDEA and ChaCha20 keys, and
/// HMAC keys.
pub(super) fn algorithm_and_length(
    attributes: &[Attribute],
) -> Result<(CryptographicAlgorithm, usize), OpError> {
    let find = |name: &str| attributes.iter().find(|a| a.name == name).map(|a| &a.value.value);
    let algorithm = match find(names::CRYPTOGRAPHIC_ALGORITHM) {
        Some(Value::Enumeration(v)) => CryptographicAlgorithm(*v),
        Some(_) => {
            return Err(OpError::invalid_field(
                "Cryptographic Algorithm must be an enumeration",
            ));
        }
        None => {
            return Err(OpError::new(
                ResultReason::INVALID_FIELD,
                "Cryptographic Algorithm is required",
            ));
        }
    };
    let length = match find(names::CRYPTOGRAPHIC_LENGTH) {
        Some(Value::Integer(v)) => *v,
        Some(_) => return Err(OpError::invalid_field("Cryptographic Length must be an integer")),
        None => return Err(OpError::invalid_field("Cryptographic Length is required")),
    };
    if material_len(algorithm, length).is_none() {
        return Err(OpError::invalid_field(format!(
            "{} keys of {length} bits are not supported",
            algorithm.name().unwrap_or("unknown")
        )));
    }
    Ok((algorithm, length as usize))
}

/// The bytes of key material for `algorithm` at `length` bits, if supported.
/// Triple DES keys carry a parity bit per byte: 112 and 168 bits are 16 and 24
/// bytes.
fn material_len(algorithm: CryptographicAlgorithm, length: i32) -> Option<usize> {
    match (algorithm, length) {
        (CryptographicAlgorithm::AES, 128 | 192 | 256) => Some(length as usize / 8),
        (CryptographicAlgorithm::DES3, 112) => Some(16),
        (CryptographicAlgorithm::DES3, 168) => Some(24),
        (CryptographicAlgorithm::SKIPJACK, 80) => Some(10),
        // Keys for ciphers keyward does not run itself, generated for clients
        // that do (PyKMIP's suite creates IDEA keys).
        (CryptographicAlgorithm::CAMELLIA, 128 | 192 | 256) => Some(length as usize / 8),
        (CryptographicAlgorithm::IDEA, 128) => Some(16),
        (CryptographicAlgorithm::CHACHA20, 256) => Some(32),
        // HMAC keys (MAC, MAC Verify): 128 to 1024 bits, whole bytes.
        (
            CryptographicAlgorithm::HMAC_SHA256
            | CryptographicAlgorithm::HMAC_SHA384
            | CryptographicAlgorithm::HMAC_SHA512,
            128..=1024,
        ) if length % 8 == 0 => Some(length as usize / 8),
        _ => None,
    }
}

/// Fresh key material from the HSM's generator for a key that
/// [`algorithm_and_length`] accepted; DES keys get odd parity in each byte.
pub(super) async fn generate_material(
    ctx: &Context<'_>,
    algorithm: CryptographicAlgorithm,
    length: usize,
) -> Result<SecretBytes, OpError> {
    let bits = i32::try_from(length).unwrap_or(i32::MAX);
    let len = material_len(algorithm, bits)
        .ok_or_else(|| OpError::invalid_field("unsupported algorithm or length"))?;
    let material = ctx.keys.generate_material(len).await?;
    if algorithm != CryptographicAlgorithm::DES3 {
        return Ok(material);
    }
    // The copy moves into a SecretBytes, which wipes it on drop.
    let mut bytes = material.expose().to_vec();
    set_odd_parity(&mut bytes);
    Ok(SecretBytes::new(bytes))
}

/// DES keys carry odd parity in the low bit of each byte (FIPS 46-3).
fn set_odd_parity(bytes: &mut [u8]) {
    for b in bytes {
        let high = *b & 0xFE;
        *b = high | u8::from(high.count_ones() % 2 == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_keys_get_odd_parity() {
        let mut bytes = [0x00, 0x01, 0xFE, 0xFF, 0xEA, 0x9C];
        set_odd_parity(&mut bytes);
        assert_eq!(bytes, [0x01, 0x01, 0xFE, 0xFE, 0xEA, 0x9D]);
        assert!(bytes.iter().all(|b| b.count_ones() % 2 == 1));
    }

    #[test]
    fn supported_algorithms_and_lengths() {
        use CryptographicAlgorithm as A;
        assert_eq!(material_len(A::AES, 256), Some(32));
        assert_eq!(material_len(A::DES3, 168), Some(24));
        assert_eq!(material_len(A::DES3, 112), Some(16));
        assert_eq!(material_len(A::SKIPJACK, 80), Some(10));
        assert_eq!(material_len(A::AES, 64), None);
        assert_eq!(material_len(A::DES3, 192), None);
    }
}
