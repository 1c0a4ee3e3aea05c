//! AES for Encrypt and Decrypt: the modes keyward runs for clients that never
//! take a key out (a database encrypting through KMIP, say), and the checks
//! before a key is used.
//!
//! Modes: GCM (96-bit IV, 128-bit tag, additional data) and CBC with PKCS#5
//! padding or none. ECB, CTR and the rest are refused by name: ECB leaks
//! patterns, and a mode not offered cannot be misused. The key's bytes live
//! in `SecretBytes` for the call only.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    self, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroizing;

use super::error::OpError;
use crate::keys::StoredObject;
use crate::keys::names;
use crate::kmip::object::{KeyMaterial, KeyValue, ManagedObject};
use crate::kmip::payload::crypt::CryptographicParameters;
use crate::kmip::tags;
use crate::kmip::{
    BlockCipherMode, CryptographicAlgorithm, CryptographicUsageMask, ObjectType, PaddingMethod, ResultReason,
    State,
};
use crate::secret::SecretBytes;
use crate::ttlv::Item;

/// GCM's IV and tag, the only sizes offered.
const GCM_IV_BYTES: usize = 12;
const GCM_TAG_BYTES: usize = 16;
const CBC_IV_BYTES: usize = 16;
/// Largest Data one Encrypt or Decrypt takes (a bulk cipher service this is
/// not: larger data belongs in a local key's hands).
pub(super) const MAX_DATA_BYTES: usize = 64 * 1024;

/// A mode keyward runs, as the client's parameters chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Gcm,
    CbcPkcs5,
    CbcNoPadding,
}

/// What an encryption gives back.
pub(super) struct Sealed {
    pub data: SecretBytes,
    /// The IV the server made (none when the client gave one).
    pub made_iv: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
}

/// The mode the parameters ask for; they are required (no mode is guessed).
pub(super) fn mode(params: Option<&CryptographicParameters>) -> Result<Mode, OpError> {
    let params = params.ok_or_else(|| {
        OpError::invalid_field("give Cryptographic Parameters with a Block Cipher Mode (GCM or CBC)")
    })?;
    if let Some(algorithm) = params.cryptographic_algorithm
        && algorithm != CryptographicAlgorithm::AES
    {
        return Err(OpError::new(
            ResultReason::CRYPTOGRAPHIC_FAILURE,
            "only AES keys encrypt and decrypt here",
        ));
    }
    let mode = match (params.block_cipher_mode, params.padding_method) {
        (Some(BlockCipherMode::GCM), None | Some(PaddingMethod::NONE)) => Mode::Gcm,
        (Some(BlockCipherMode::CBC), Some(PaddingMethod::PKCS5)) => Mode::CbcPkcs5,
        (Some(BlockCipherMode::CBC), None | Some(PaddingMethod::NONE)) => Mode::CbcNoPadding,
        (Some(BlockCipherMode::GCM | BlockCipherMode::CBC), Some(_)) => {
            return Err(OpError::invalid_field(
                "padding: PKCS5 or None with CBC, None with GCM",
            ));
        }
        (None, _) => return Err(OpError::invalid_field("give a Block Cipher Mode (GCM or CBC)")),
        (Some(other), _) => {
            return Err(OpError::new(
                ResultReason::FEATURE_NOT_SUPPORTED,
                format!(
                    "block cipher mode {} is not offered (GCM or CBC)",
                    other.name().unwrap_or("unknown")
                ),
            ));
        }
    };
    if mode == Mode::Gcm {
        if params.tag_length.is_some_and(|t| t != GCM_TAG_BYTES as i32) {
            return Err(OpError::invalid_field("GCM tags are 16 bytes here"));
        }
        if params.iv_length.is_some_and(|l| l != (GCM_IV_BYTES * 8) as i32) {
            return Err(OpError::invalid_field("GCM IVs are 96 bits here"));
        }
    } else if params.iv_length.is_some_and(|l| l != (CBC_IV_BYTES * 8) as i32) {
        return Err(OpError::invalid_field("CBC IVs are 128 bits"));
    }
    Ok(mode)
}

/// The parameters a request gives, else those the key carries (its
/// Cryptographic Parameters attribute, KMIP 1.4 §4.29: "if not specified, the
/// server uses the key's").
pub(super) fn parameters(
    given: Option<CryptographicParameters>,
    key: &StoredObject,
) -> Result<Option<CryptographicParameters>, OpError> {
    if given.is_some() {
        return Ok(given);
    }
    let Some(attribute) = key.attribute(names::CRYPTOGRAPHIC_PARAMETERS) else {
        return Ok(None);
    };
    let as_parameters = Item::new(tags::CRYPTOGRAPHIC_PARAMETERS, attribute.value.value.clone());
    CryptographicParameters::from_item(&as_parameters)
        .map(Some)
        .map_err(|_| failure("the key's Cryptographic Parameters do not read"))
}

/// The object may be used for `usage` now: an AES symmetric key whose usage
/// mask allows it, in a state that allows it (see [`check_key_use`]).
pub(super) fn check_usable(
    object: &StoredObject,
    usage: CryptographicUsageMask,
    now: i64,
) -> Result<(), OpError> {
    check_key_use(object, usage, usage == CryptographicUsageMask::ENCRYPT, now)?;
    require_aes(object, "only AES keys encrypt and decrypt here")
}

/// The key's Cryptographic Algorithm attribute.
pub(super) fn algorithm_of(object: &StoredObject) -> Option<CryptographicAlgorithm> {
    object
        .attribute(names::CRYPTOGRAPHIC_ALGORITHM)
        .and_then(|a| a.value.as_enum())
        .map(CryptographicAlgorithm)
}

/// Refuses, with `why`, a key that is not an AES key.
pub(super) fn require_aes(object: &StoredObject, why: &'static str) -> Result<(), OpError> {
    if algorithm_of(object) == Some(CryptographicAlgorithm::AES) {
        Ok(())
    } else {
        Err(OpError::new(ResultReason::CRYPTOGRAPHIC_FAILURE, why))
    }
}

/// A symmetric key whose usage mask holds `usage`, in a state that allows it
/// (KMIP 1.4 §3.22: to protect — encrypt, make a MAC — only while Active; to
/// process — decrypt, verify — also while Deactivated or Compromised).
pub(super) fn check_key_use(
    object: &StoredObject,
    usage: CryptographicUsageMask,
    protecting: bool,
    now: i64,
) -> Result<(), OpError> {
    if object.object_type != ObjectType::SYMMETRIC_KEY {
        return Err(OpError::new(
            ResultReason::CRYPTOGRAPHIC_FAILURE,
            "only symmetric keys are used for this here",
        ));
    }
    check_state_and_mask(object, usage, protecting, now)
}

/// Any key (symmetric, public, private) whose usage mask holds `usage`, in a
/// state that allows it (see [`check_key_use`]), inside its usage window:
/// nothing is protected after the Protect Stop Date, nothing processed
/// before the Process Start Date (KMIP 1.4 §3.25, §3.26).
pub(super) fn check_state_and_mask(
    object: &StoredObject,
    usage: CryptographicUsageMask,
    protecting: bool,
    now: i64,
) -> Result<(), OpError> {
    let date = |name: &str| match object.attribute(name).map(|a| &a.value.value) {
        Some(crate::ttlv::Value::DateTime(t)) => Some(*t),
        _ => None,
    };
    if protecting && date(crate::kmip::attribute::attr::PROTECT_STOP_DATE).is_some_and(|t| now >= t) {
        return Err(OpError::permission_denied(
            "the key's Protect Stop Date has passed",
        ));
    }
    if !protecting && date(crate::kmip::attribute::attr::PROCESS_START_DATE).is_some_and(|t| now < t) {
        return Err(OpError::permission_denied(
            "the key's Process Start Date has not come",
        ));
    }
    let state_ok = object.state == State::ACTIVE
        || (!protecting && matches!(object.state, State::DEACTIVATED | State::COMPROMISED));
    if !state_ok {
        return Err(OpError::new(
            ResultReason::WRONG_KEY_LIFECYCLE_STATE,
            if protecting {
                "only an Active key is used for this"
            } else {
                "only an Active, Deactivated or Compromised key is used for this"
            },
        ));
    }
    let mask = object
        .attribute(names::CRYPTOGRAPHIC_USAGE_MASK)
        .and_then(|a| a.value.as_i32())
        .unwrap_or(0) as u32;
    if mask & usage.0 == 0 {
        return Err(OpError::new(
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
            format!(
                "the key's usage mask does not allow {}",
                CryptographicUsageMask::DEF.format(usage.0)
            ),
        ));
    }
    Ok(())
}

fn failure(what: &str) -> OpError {
    OpError::new(ResultReason::CRYPTOGRAPHIC_FAILURE, what)
}

fn aead_algorithm(key: &[u8]) -> Result<&'static aead::Algorithm, OpError> {
    match key.len() {
        16 => Ok(&aead::AES_128_GCM),
        24 => Ok(&aead::AES_192_GCM),
        32 => Ok(&aead::AES_256_GCM),
        _ => Err(failure("the key is not an AES key")),
    }
}

fn cipher_key(key: &[u8]) -> Result<UnboundCipherKey, OpError> {
    let algorithm = match key.len() {
        16 => &cipher::AES_128,
        24 => &cipher::AES_192,
        32 => &cipher::AES_256,
        _ => return Err(failure("the key is not an AES key")),
    };
    UnboundCipherKey::new(algorithm, key).map_err(|_| failure("the key is not an AES key"))
}

/// Encrypts `plaintext`; `iv` from the client, else made here.
pub(super) fn encrypt(
    mode: Mode,
    key: &[u8],
    iv: Option<&[u8]>,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, OpError> {
    // Plaintext until encrypted: wiped on every way out.
    let mut buf = Zeroizing::new(plaintext.to_vec());
    match mode {
        Mode::Gcm => {
            let (iv, made) = match iv {
                Some(iv) => (
                    <[u8; GCM_IV_BYTES]>::try_from(iv)
                        .map_err(|_| OpError::invalid_field("a GCM IV is 12 bytes"))?,
                    false,
                ),
                None => {
                    let mut iv = [0u8; GCM_IV_BYTES];
                    aws_lc_rs::rand::fill(&mut iv).map_err(|_| failure("no random IV"))?;
                    (iv, true)
                }
            };
            let key = LessSafeKey::new(
                UnboundKey::new(aead_algorithm(key)?, key)
                    .map_err(|_| failure("the key is not an AES key"))?,
            );
            let tag = key
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut buf)
                .map_err(|_| failure("encryption failed"))?;
            Ok(Sealed {
                data: SecretBytes::new(std::mem::take(&mut *buf)),
                made_iv: made.then(|| iv.to_vec()),
                tag: Some(tag.as_ref().to_vec()),
            })
        }
        Mode::CbcPkcs5 | Mode::CbcNoPadding => {
            if !aad.is_empty() {
                return Err(OpError::invalid_field("additional data goes with GCM only"));
            }
            let context = match iv {
                Some(iv) => EncryptionContext::Iv128(FixedLength::from(
                    <[u8; CBC_IV_BYTES]>::try_from(iv)
                        .map_err(|_| OpError::invalid_field("a CBC IV is 16 bytes"))?,
                )),
                None => {
                    let mut iv = [0u8; CBC_IV_BYTES];
                    aws_lc_rs::rand::fill(&mut iv).map_err(|_| failure("no random IV"))?;
                    EncryptionContext::Iv128(FixedLength::from(iv))
                }
            };
            let made_iv = match (&context, iv) {
                (EncryptionContext::Iv128(v), None) => Some(v.as_ref().to_vec()),
                _ => None,
            };
            if mode == Mode::CbcPkcs5 {
                let key =
                    PaddedBlockEncryptingKey::cbc_pkcs7(cipher_key(key)?).map_err(|_| failure("bad key"))?;
                key.less_safe_encrypt(&mut *buf, context)
                    .map_err(|_| failure("encryption failed"))?;
            } else {
                if !buf.len().is_multiple_of(CBC_IV_BYTES) {
                    return Err(OpError::invalid_field(
                        "CBC without padding needs whole 16-byte blocks",
                    ));
                }
                let key = EncryptingKey::cbc(cipher_key(key)?).map_err(|_| failure("bad key"))?;
                key.less_safe_encrypt(&mut buf[..], context)
                    .map_err(|_| failure("encryption failed"))?;
            }
            Ok(Sealed {
                data: SecretBytes::new(std::mem::take(&mut *buf)),
                made_iv,
                tag: None,
            })
        }
    }
}

/// Decrypts `ciphertext` with the IV (and, for GCM, the tag) the client gives.
/// A wrong key, tag, IV or padding is one answer: Cryptographic Failure.
pub(super) fn decrypt(
    mode: Mode,
    key: &[u8],
    iv: Option<&[u8]>,
    aad: &[u8],
    tag: Option<&[u8]>,
    ciphertext: &[u8],
) -> Result<SecretBytes, OpError> {
    let iv =
        iv.ok_or_else(|| OpError::invalid_field("give the IV/Counter/Nonce the data was encrypted with"))?;
    match mode {
        Mode::Gcm => {
            let iv = <[u8; GCM_IV_BYTES]>::try_from(iv)
                .map_err(|_| OpError::invalid_field("a GCM IV is 12 bytes"))?;
            let tag = tag.ok_or_else(|| OpError::invalid_field("give the Authenticated Encryption Tag"))?;
            if tag.len() != GCM_TAG_BYTES {
                return Err(OpError::invalid_field("GCM tags are 16 bytes here"));
            }
            let key = LessSafeKey::new(
                UnboundKey::new(aead_algorithm(key)?, key)
                    .map_err(|_| failure("the key is not an AES key"))?,
            );
            let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len() + tag.len()));
            buf.extend_from_slice(ciphertext);
            buf.extend_from_slice(tag);
            let plain = key
                .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut buf[..])
                .map_err(|_| failure("decryption failed"))?;
            Ok(SecretBytes::from_slice(plain))
        }
        Mode::CbcPkcs5 | Mode::CbcNoPadding => {
            if !aad.is_empty() || tag.is_some() {
                return Err(OpError::invalid_field(
                    "additional data and tags go with GCM only",
                ));
            }
            let iv = <[u8; CBC_IV_BYTES]>::try_from(iv)
                .map_err(|_| OpError::invalid_field("a CBC IV is 16 bytes"))?;
            if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(CBC_IV_BYTES) {
                return Err(failure("decryption failed"));
            }
            let context = DecryptionContext::Iv128(FixedLength::from(iv));
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            let plain = if mode == Mode::CbcPkcs5 {
                let key =
                    PaddedBlockDecryptingKey::cbc_pkcs7(cipher_key(key)?).map_err(|_| failure("bad key"))?;
                key.decrypt(&mut buf[..], context)
                    .map_err(|_| failure("decryption failed"))?
            } else {
                let key = DecryptingKey::cbc(cipher_key(key)?).map_err(|_| failure("bad key"))?;
                key.decrypt(&mut buf[..], context)
                    .map_err(|_| failure("decryption failed"))?
            };
            Ok(SecretBytes::from_slice(plain))
        }
    }
}

/// The AES key's bytes out of the opened object.
pub(super) fn key_bytes(object: ManagedObject) -> Result<SecretBytes, OpError> {
    match object {
        ManagedObject::SymmetricKey { key_block } => match key_block.key_value {
            Some(KeyValue::Plain {
                key_material: KeyMaterial::Bytes(key) | KeyMaterial::TransparentSymmetric { key },
                ..
            }) => Ok(key),
            _ => Err(failure("the key's material is not usable here")),
        },
        _ => Err(failure("only symmetric keys encrypt and decrypt here")),
    }
}

/// Refuses what the payload carries that keyward does not run (streaming:
/// Correlation Value, Init and Final Indicator) and data over `max` bytes.
pub(super) fn request_checks(extra: &[Item], data_len: usize, max: usize) -> Result<(), OpError> {
    let streaming = [
        tags::CORRELATION_VALUE,
        tags::INIT_INDICATOR,
        tags::FINAL_INDICATOR,
    ];
    if extra.iter().any(|i| streaming.contains(&i.tag)) {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "streaming encryption (Correlation Value, Init/Final Indicator) is not offered",
        ));
    }
    if data_len > max {
        return Err(OpError::invalid_field(format!(
            "Data is at most {max} bytes here"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: BlockCipherMode, padding: Option<PaddingMethod>) -> CryptographicParameters {
        CryptographicParameters {
            block_cipher_mode: Some(mode),
            padding_method: padding,
            ..CryptographicParameters::default()
        }
    }

    /// NIST SP 800-38D (the GCM specification's test case 16): AES-256, 96-bit IV,
    /// additional data; keyward's answer must be the standard's, bit for bit.
    #[test]
    fn gcm_matches_the_published_test_vector() {
        let key = hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308").unwrap();
        let iv = hex::decode("cafebabefacedbaddecaf888").unwrap();
        let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let plain = hex::decode(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        )
        .unwrap();
        let sealed = encrypt(Mode::Gcm, &key, Some(&iv), &aad, &plain).unwrap();
        assert_eq!(
            hex::encode(sealed.data.expose()),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        );
        assert_eq!(
            hex::encode(sealed.tag.as_deref().unwrap()),
            "76fc6ece0f4e1768cddf8853bb2d551b"
        );
        assert_eq!(sealed.made_iv, None, "the client's IV is used, not replaced");
        let back = decrypt(
            Mode::Gcm,
            &key,
            Some(&iv),
            &aad,
            sealed.tag.as_deref(),
            sealed.data.expose(),
        )
        .unwrap();
        assert_eq!(back.expose(), plain.as_slice());
        // Another AAD, a flipped tag bit or ciphertext bit: one refusal.
        let mut tag = sealed.tag.clone().unwrap();
        tag[0] ^= 1;
        for (aad, tag, data) in [
            (
                &b"other"[..],
                sealed.tag.as_deref().unwrap(),
                sealed.data.expose().to_vec(),
            ),
            (&aad[..], &tag[..], sealed.data.expose().to_vec()),
            (&aad[..], sealed.tag.as_deref().unwrap(), {
                let mut d = sealed.data.expose().to_vec();
                d[3] ^= 1;
                d
            }),
        ] {
            let e = decrypt(Mode::Gcm, &key, Some(&iv), aad, Some(tag), &data).unwrap_err();
            assert_eq!(e.reason, ResultReason::CRYPTOGRAPHIC_FAILURE);
        }
    }

    /// NIST SP 800-38A F.2.5 (CBC-AES256.Encrypt), first block; then PKCS#5
    /// adds a block of padding and comes off again.
    #[test]
    fn cbc_matches_the_published_test_vector_and_pads() {
        let key = hex::decode("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4").unwrap();
        let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let plain = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        let sealed = encrypt(Mode::CbcNoPadding, &key, Some(&iv), &[], &plain).unwrap();
        assert_eq!(
            hex::encode(sealed.data.expose()),
            "f58c4c04d6e5f1ba779eabfb5f7bfbd6"
        );
        let padded = encrypt(Mode::CbcPkcs5, &key, Some(&iv), &[], &plain).unwrap();
        assert_eq!(padded.data.len(), 32);
        assert_eq!(&padded.data.expose()[..16], sealed.data.expose());
        let back = decrypt(Mode::CbcPkcs5, &key, Some(&iv), &[], None, padded.data.expose()).unwrap();
        assert_eq!(back.expose(), plain.as_slice());
        // A server-made IV is returned and differs each time.
        let a = encrypt(Mode::CbcPkcs5, &key, None, &[], b"x").unwrap();
        let b = encrypt(Mode::CbcPkcs5, &key, None, &[], b"x").unwrap();
        assert!(a.made_iv.is_some() && a.made_iv != b.made_iv);
        // Bad padding and ragged data: the same refusal as a wrong key.
        let mut bad = padded.data.expose().to_vec();
        bad[31] ^= 0x5a;
        let e = decrypt(Mode::CbcPkcs5, &key, Some(&iv), &[], None, &bad).unwrap_err();
        assert_eq!(e.reason, ResultReason::CRYPTOGRAPHIC_FAILURE);
        let e = decrypt(Mode::CbcPkcs5, &key, Some(&iv), &[], None, &bad[..31]).unwrap_err();
        assert_eq!(e.reason, ResultReason::CRYPTOGRAPHIC_FAILURE);
        assert!(encrypt(Mode::CbcNoPadding, &key, Some(&iv), &[], b"not a block").is_err());
    }

    #[test]
    fn only_gcm_and_cbc_are_offered_and_parameters_are_required() {
        assert_eq!(
            mode(Some(&params(BlockCipherMode::GCM, None))).unwrap(),
            Mode::Gcm
        );
        assert_eq!(
            mode(Some(&params(BlockCipherMode::CBC, Some(PaddingMethod::PKCS5)))).unwrap(),
            Mode::CbcPkcs5
        );
        assert!(mode(None).is_err());
        let ecb = mode(Some(&params(BlockCipherMode::ECB, None))).unwrap_err();
        assert_eq!(ecb.reason, ResultReason::FEATURE_NOT_SUPPORTED);
        assert!(mode(Some(&params(BlockCipherMode::GCM, Some(PaddingMethod::PKCS5)))).is_err());
        let mut short_tag = params(BlockCipherMode::GCM, None);
        short_tag.tag_length = Some(8);
        assert!(mode(Some(&short_tag)).is_err());
    }
}
