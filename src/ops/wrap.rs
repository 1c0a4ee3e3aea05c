//! Get with a Key Wrapping Specification: the key handed out encrypted under
//! another managed key (AES key wrap, RFC 3394, or with padding, RFC 5649),
//! so that it leaves the server only wrapped. The wrapping key is loaded for
//! the same client as the key (its group, its credential), must be an Active
//! AES key whose usage mask allows Wrap Key, and never leaves the server.

use aws_lc_rs::key_wrap::{self, KeyEncryptionKey, KeyWrap, KeyWrapPadded};
use zeroize::Zeroizing;

use super::cipher;
use super::context::Context;
use super::error::OpError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::object::{KeyMaterial, KeyValue, ManagedObject};
use crate::kmip::{
    BlockCipherMode, CryptographicUsageMask, EncodingOption, ResultReason, WrappingMethod, tags,
};
use crate::secret::SecretBytes;
use crate::ttlv::Item;

/// What a Key Wrapping Specification asks for.
pub(super) struct WrapSpec {
    wrapping_uid: String,
    /// RFC 5649 (padding) rather than RFC 3394.
    padded: bool,
    /// Echoed in the Key Wrapping Data.
    encryption_key_information: Item,
    encoding_option: Option<EncodingOption>,
}

fn unsupported(what: &str) -> OpError {
    OpError::new(ResultReason::FEATURE_NOT_SUPPORTED, what)
}

/// Reads the specification; what keyward does not do is refused by name.
pub(super) fn read_spec(item: &Item) -> Result<WrapSpec, OpError> {
    let bad = |e: crate::kmip::error::MessageError| {
        OpError::invalid_field(format!("Key Wrapping Specification: {e}"))
    };
    let mut f = Fields::of(item, tags::KEY_WRAPPING_SPECIFICATION).map_err(bad)?;
    let method: WrappingMethod = f.req(tags::WRAPPING_METHOD).map_err(bad)?;
    let encryption = f.opt_item(tags::ENCRYPTION_KEY_INFORMATION).map_err(bad)?;
    let mac_sign = f.opt_item(tags::MAC_SIGNATURE_KEY_INFORMATION).map_err(bad)?;
    let attribute_names = f.all_items(tags::ATTRIBUTE_NAME);
    let encoding_option: Option<EncodingOption> = f.opt(tags::ENCODING_OPTION).map_err(bad)?;
    if method != WrappingMethod::ENCRYPT || mac_sign.is_some() {
        return Err(unsupported(
            "keys are wrapped by encryption only (Wrapping Method Encrypt)",
        ));
    }
    if !attribute_names.is_empty() {
        return Err(unsupported("wrapping attributes with the key is not offered"));
    }
    if encoding_option.is_some_and(|e| e != EncodingOption::NO_ENCODING) {
        return Err(OpError::new(
            ResultReason::ENCODING_OPTION_ERROR,
            "keys are wrapped without TTLV encoding (Encoding Option NoEncoding)",
        ));
    }
    let encryption = encryption
        .ok_or_else(|| OpError::invalid_field("name the wrapping key (Encryption Key Information)"))?;
    let mut e = Fields::of(encryption, tags::ENCRYPTION_KEY_INFORMATION).map_err(bad)?;
    let wrapping_uid: String = e.req(tags::UNIQUE_IDENTIFIER).map_err(bad)?;
    let params: Option<crate::kmip::payload::crypt::CryptographicParameters> =
        e.opt(tags::CRYPTOGRAPHIC_PARAMETERS).map_err(bad)?;
    let padded = match params.and_then(|p| p.block_cipher_mode) {
        None | Some(BlockCipherMode::NISTKEYWRAP) => false,
        Some(BlockCipherMode::AESKEYWRAPPADDING) => true,
        Some(_) => {
            return Err(unsupported(
                "keys are wrapped with AES key wrap (NISTKeyWrap or AESKeyWrapPadding)",
            ));
        }
    };
    Ok(WrapSpec {
        wrapping_uid,
        padded,
        encryption_key_information: encryption.clone(),
        encoding_option,
    })
}

/// Wraps the key of `object` (the Get's answer) as `spec` asks.
pub(super) async fn wrap(
    ctx: &Context<'_>,
    uid: &str,
    spec: &WrapSpec,
    object: ManagedObject,
) -> Result<ManagedObject, OpError> {
    if spec.wrapping_uid == uid {
        return Err(OpError::invalid_field("a key is not wrapped under itself"));
    }
    let ManagedObject::SymmetricKey { mut key_block } = object else {
        return Err(unsupported("only symmetric keys are handed out wrapped"));
    };
    let key = match key_block.key_value.take() {
        Some(KeyValue::Plain {
            key_material: KeyMaterial::Bytes(key) | KeyMaterial::TransparentSymmetric { key },
            ..
        }) => key,
        _ => return Err(unsupported("this key's value cannot be wrapped")),
    };
    let kek_bytes = wrapping_key(ctx, &spec.wrapping_uid, CryptographicUsageMask::WRAP_KEY).await?;
    let wrapped = wrap_bytes(kek_bytes.expose(), key.expose(), spec.padded)?;
    key_block.key_value = Some(KeyValue::Wrapped(wrapped));
    let mut data = Builder::new();
    data.put(tags::WRAPPING_METHOD, &WrappingMethod::ENCRYPT)
        .push(spec.encryption_key_information.clone())
        .opt(tags::ENCODING_OPTION, &spec.encoding_option);
    key_block.key_wrapping_data = Some(data.finish(tags::KEY_WRAPPING_DATA));
    Ok(ManagedObject::SymmetricKey { key_block })
}

/// Register of wrapped material: a symmetric key whose Key Value arrives
/// wrapped under a managed key (Key Wrapping Data naming it) is unwrapped here,
/// so that it is stored sealed under the root key like any other. The
/// unwrapping key is loaded for the same client and must allow Unwrap Key.
pub(super) async fn unwrap_registered(
    ctx: &Context<'_>,
    object: ManagedObject,
) -> Result<ManagedObject, OpError> {
    let ManagedObject::SymmetricKey { mut key_block } = object else {
        return Err(unsupported("only symmetric keys are registered wrapped"));
    };
    let (Some(KeyValue::Wrapped(wrapped)), Some(data)) =
        (key_block.key_value.take(), key_block.key_wrapping_data.take())
    else {
        return Err(OpError::invalid_field(
            "a wrapped Key Value goes with its Key Wrapping Data",
        ));
    };
    // The Key Wrapping Data reads like a Key Wrapping Specification.
    let spec = read_spec(&Item::structure(
        tags::KEY_WRAPPING_SPECIFICATION,
        data.children().to_vec(),
    ))?;
    let kek = wrapping_key(ctx, &spec.wrapping_uid, CryptographicUsageMask::UNWRAP_KEY).await?;
    let key = unwrap_bytes(kek.expose(), wrapped.expose(), spec.padded)?;
    key_block.key_value = Some(KeyValue::Plain {
        key_material: KeyMaterial::Bytes(key),
        attributes: Vec::new(),
    });
    Ok(ManagedObject::SymmetricKey { key_block })
}

/// The bytes of the managed AES key `uid`, loaded for the client, for `usage`
/// (Wrap Key: Active only; Unwrap Key: also Deactivated or Compromised).
async fn wrapping_key(
    ctx: &Context<'_>,
    uid: &str,
    usage: CryptographicUsageMask,
) -> Result<SecretBytes, OpError> {
    let key = ctx.keys.load(ctx.caller, uid, ctx.now).await?;
    cipher::check_key_use(&key, usage, usage == CryptographicUsageMask::WRAP_KEY, ctx.now)?;
    cipher::require_aes(&key, "the wrapping key is not an AES key")?;
    cipher::key_bytes(ctx.keys.open(&key).await?)
}

fn kek(kek: &[u8]) -> Result<KeyEncryptionKey<key_wrap::AesBlockCipher>, OpError> {
    let failure = |what: &str| OpError::new(ResultReason::CRYPTOGRAPHIC_FAILURE, what);
    let cipher = match kek.len() {
        16 => &key_wrap::AES_128,
        32 => &key_wrap::AES_256,
        _ => return Err(failure("wrapping keys are AES-128 or AES-256")),
    };
    KeyEncryptionKey::new(cipher, kek).map_err(|_| failure("bad wrapping key"))
}

/// The inverse of [`wrap_bytes`]; a wrapped value that does not check is a
/// Cryptographic Failure.
fn unwrap_bytes(kek_bytes: &[u8], wrapped: &[u8], padded: bool) -> Result<SecretBytes, OpError> {
    let failure = || {
        OpError::new(
            ResultReason::CRYPTOGRAPHIC_FAILURE,
            "the wrapped key does not unwrap",
        )
    };
    let kek = kek(kek_bytes)?;
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let key = if padded {
        kek.unwrap_with_padding(wrapped, &mut out[..])
            .map_err(|_| failure())?
    } else {
        kek.unwrap(wrapped, &mut out[..]).map_err(|_| failure())?
    };
    Ok(SecretBytes::from_slice(key))
}

/// RFC 3394 (a whole number of 64-bit blocks, at least two) or RFC 5649.
fn wrap_bytes(kek: &[u8], key: &[u8], padded: bool) -> Result<SecretBytes, OpError> {
    let failure = |what: &str| OpError::new(ResultReason::CRYPTOGRAPHIC_FAILURE, what);
    let kek = self::kek(kek)?;
    let mut out = Zeroizing::new(vec![0u8; key.len() + 16]);
    let written = if padded {
        kek.wrap_with_padding(key, &mut out[..])
            .map_err(|_| failure("key wrap failed"))?
            .len()
    } else {
        if key.len() < 16 || !key.len().is_multiple_of(8) {
            return Err(OpError::invalid_field(
                "AES key wrap without padding takes whole 64-bit blocks (use AESKeyWrapPadding)",
            ));
        }
        kek.wrap(key, &mut out[..])
            .map_err(|_| failure("key wrap failed"))?
            .len()
    };
    Ok(SecretBytes::from_slice(&out[..written]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3394 §4.1 (128-bit key data under a 128-bit KEK) and §4.6 (256 under 256).
    #[test]
    fn aes_key_wrap_matches_rfc_3394() {
        let kek = hex::decode("000102030405060708090A0B0C0D0E0F").unwrap();
        let key = hex::decode("00112233445566778899AABBCCDDEEFF").unwrap();
        let wrapped = wrap_bytes(&kek, &key, false).unwrap();
        assert_eq!(
            hex::encode(wrapped.expose()),
            "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5"
        );
        let kek = hex::decode("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F").unwrap();
        let key = hex::decode("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F").unwrap();
        let wrapped = wrap_bytes(&kek, &key, false).unwrap();
        assert_eq!(
            hex::encode(wrapped.expose()),
            "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21"
        );
        assert!(wrap_bytes(&kek, &key[..20], false).is_err(), "not whole blocks");
        let padded = wrap_bytes(&kek, &key[..20], true).unwrap();
        assert_eq!(padded.len(), 32, "RFC 5649 pads");
        assert_eq!(
            unwrap_bytes(&kek, padded.expose(), true).unwrap().expose(),
            &key[..20]
        );
        let mut forged = wrapped.expose().to_vec();
        forged[9] ^= 1;
        assert_eq!(
            unwrap_bytes(&kek, &forged, false).unwrap_err().reason,
            ResultReason::CRYPTOGRAPHIC_FAILURE
        );
    }
}
