//! Encrypt and Decrypt (KMIP 1.4 §4.29, §4.30): the data, the key by
//! identifier, and how to use it (Cryptographic Parameters). One file for
//! both, since their payloads differ by a field or two.
//!
//! Streaming (Correlation Value, Init/Final Indicator) is kept in `extra`, so
//! the server can refuse it by name.

use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, FieldValue, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{
    BlockCipherMode, CryptographicAlgorithm, DigitalSignatureAlgorithm, HashingAlgorithm, Operation,
    PaddingMethod, tags,
};
use crate::secret::SecretBytes;
use crate::ttlv::{Item, Tag, Value};

/// Cryptographic Parameters (KMIP 1.4 §3.6): the fields Encrypt and Decrypt
/// read; the others are kept in `extra`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CryptographicParameters {
    pub block_cipher_mode: Option<BlockCipherMode>,
    pub padding_method: Option<PaddingMethod>,
    /// Sign and Signature Verify: the hash (with RSA or ECDSA).
    pub hashing_algorithm: Option<HashingAlgorithm>,
    /// Sign and Signature Verify: algorithm and hash in one name.
    pub digital_signature_algorithm: Option<DigitalSignatureAlgorithm>,
    pub cryptographic_algorithm: Option<CryptographicAlgorithm>,
    /// Whether the server makes the IV.
    pub random_iv: Option<bool>,
    /// IV length in bits.
    pub iv_length: Option<i32>,
    /// Authentication tag length in bytes.
    pub tag_length: Option<i32>,
    pub extra: Vec<Item>,
}

impl CryptographicParameters {
    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::CRYPTOGRAPHIC_PARAMETERS)?;
        Ok(CryptographicParameters {
            block_cipher_mode: f.opt(tags::BLOCK_CIPHER_MODE)?,
            padding_method: f.opt(tags::PADDING_METHOD)?,
            hashing_algorithm: f.opt(tags::HASHING_ALGORITHM)?,
            digital_signature_algorithm: f.opt(tags::DIGITAL_SIGNATURE_ALGORITHM)?,
            cryptographic_algorithm: f.opt(tags::CRYPTOGRAPHIC_ALGORITHM)?,
            random_iv: f.opt(tags::RANDOM_IV)?,
            iv_length: f.opt(tags::IV_LENGTH)?,
            tag_length: f.opt(tags::TAG_LENGTH)?,
            extra: f.rest(),
        })
    }

    pub fn to_item(&self) -> Item {
        Builder::new()
            .opt(tags::BLOCK_CIPHER_MODE, &self.block_cipher_mode)
            .opt(tags::PADDING_METHOD, &self.padding_method)
            .opt(tags::HASHING_ALGORITHM, &self.hashing_algorithm)
            .opt(
                tags::DIGITAL_SIGNATURE_ALGORITHM,
                &self.digital_signature_algorithm,
            )
            .opt(tags::CRYPTOGRAPHIC_ALGORITHM, &self.cryptographic_algorithm)
            .opt(tags::RANDOM_IV, &self.random_iv)
            .opt(tags::IV_LENGTH, &self.iv_length)
            .opt(tags::TAG_LENGTH, &self.tag_length)
            .items(&self.extra)
            .finish(tags::CRYPTOGRAPHIC_PARAMETERS)
    }
}

impl FieldValue for CryptographicParameters {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        CryptographicParameters::from_item(item)
    }
    fn to_value(&self) -> Value {
        self.to_item().value
    }
}

/// What Encrypt and Decrypt requests carry; `tag` only in Decrypt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptRequest<const OP: u32> {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub cryptographic_parameters: Option<CryptographicParameters>,
    pub data: SecretBytes,
    pub iv_counter_nonce: Option<Vec<u8>>,
    /// KMIP 1.4: AEAD additional data.
    pub aad: Option<Vec<u8>>,
    /// KMIP 1.4: the AEAD tag to check (Decrypt).
    pub tag: Option<Vec<u8>>,
    pub extra: Vec<Item>,
}

/// Encrypt's request: `data` is the plaintext.
pub type EncryptRequest = CryptRequest<{ Operation::ENCRYPT.0 }>;
/// Decrypt's request: `data` is the ciphertext.
pub type DecryptRequest = CryptRequest<{ Operation::DECRYPT.0 }>;

impl<const OP: u32> Payload for CryptRequest<OP> {
    const OPERATION: Operation = Operation(OP);
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(CryptRequest {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            cryptographic_parameters: f.opt(tags::CRYPTOGRAPHIC_PARAMETERS)?,
            data: f.req(tags::DATA)?,
            iv_counter_nonce: f.opt(tags::IV_COUNTER_NONCE)?,
            aad: f.opt(tags::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA)?,
            tag: f.opt(tags::AUTHENTICATED_ENCRYPTION_TAG)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .opt(tags::CRYPTOGRAPHIC_PARAMETERS, &self.cryptographic_parameters)
            .put(tags::DATA, &self.data)
            .opt(tags::IV_COUNTER_NONCE, &self.iv_counter_nonce)
            .opt(tags::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA, &self.aad)
            .opt(tags::AUTHENTICATED_ENCRYPTION_TAG, &self.tag)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

/// Encrypt's and Decrypt's response: the data, the IV the server made
/// (Encrypt), the AEAD tag (Encrypt, KMIP 1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptResponse<const OP: u32> {
    pub unique_identifier: String,
    pub data: SecretBytes,
    pub iv_counter_nonce: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
    pub extra: Vec<Item>,
}

pub type EncryptResponse = CryptResponse<{ Operation::ENCRYPT.0 }>;
pub type DecryptResponse = CryptResponse<{ Operation::DECRYPT.0 }>;

impl<const OP: u32> Payload for CryptResponse<OP> {
    const OPERATION: Operation = Operation(OP);
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(CryptResponse {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            data: f.req(tags::DATA)?,
            iv_counter_nonce: f.opt(tags::IV_COUNTER_NONCE)?,
            tag: f.opt(tags::AUTHENTICATED_ENCRYPTION_TAG)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .put(tags::DATA, &self.data)
            .opt(tags::IV_COUNTER_NONCE, &self.iv_counter_nonce)
            .opt(tags::AUTHENTICATED_ENCRYPTION_TAG, &self.tag)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;

    #[test]
    fn payloads_round_trip() {
        round_trip(&EncryptRequest {
            unique_identifier: Some("k-1".into()),
            cryptographic_parameters: Some(CryptographicParameters {
                block_cipher_mode: Some(BlockCipherMode::GCM),
                tag_length: Some(16),
                random_iv: Some(true),
                ..CryptographicParameters::default()
            }),
            data: SecretBytes::from_slice(b"attack at dawn"),
            iv_counter_nonce: None,
            aad: Some(b"header".to_vec()),
            tag: None,
            extra: Vec::new(),
        });
        round_trip(&DecryptResponse {
            unique_identifier: "k-1".into(),
            data: SecretBytes::from_slice(b"attack at dawn"),
            iv_counter_nonce: None,
            tag: None,
            extra: Vec::new(),
        });
    }
}
