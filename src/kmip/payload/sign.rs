//! Sign and Signature Verify (KMIP 1.4 §4.31, §4.32): data, the key by
//! identifier, the algorithm in Cryptographic Parameters; a signature back,
//! or whether one holds. Streaming and Digested Data stay in `extra`, where
//! the server refuses them by name.

use super::crypt::CryptographicParameters;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, ValidityIndicator, tags};
use crate::secret::SecretBytes;
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignRequest {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub cryptographic_parameters: Option<CryptographicParameters>,
    pub data: SecretBytes,
    pub extra: Vec<Item>,
}

impl Payload for SignRequest {
    const OPERATION: Operation = Operation::SIGN;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(SignRequest {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            cryptographic_parameters: f.opt(tags::CRYPTOGRAPHIC_PARAMETERS)?,
            data: f.req(tags::DATA)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .opt(tags::CRYPTOGRAPHIC_PARAMETERS, &self.cryptographic_parameters)
            .put(tags::DATA, &self.data)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignResponse {
    pub unique_identifier: String,
    pub signature_data: Vec<u8>,
    pub extra: Vec<Item>,
}

impl Payload for SignResponse {
    const OPERATION: Operation = Operation::SIGN;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(SignResponse {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            signature_data: f.req(tags::SIGNATURE_DATA)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .put(tags::SIGNATURE_DATA, &self.signature_data)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyRequest {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub cryptographic_parameters: Option<CryptographicParameters>,
    pub data: SecretBytes,
    pub signature_data: Vec<u8>,
    pub extra: Vec<Item>,
}

impl Payload for VerifyRequest {
    const OPERATION: Operation = Operation::SIGNATURE_VERIFY;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(VerifyRequest {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            cryptographic_parameters: f.opt(tags::CRYPTOGRAPHIC_PARAMETERS)?,
            data: f.req(tags::DATA)?,
            signature_data: f.req(tags::SIGNATURE_DATA)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .opt(tags::CRYPTOGRAPHIC_PARAMETERS, &self.cryptographic_parameters)
            .put(tags::DATA, &self.data)
            .put(tags::SIGNATURE_DATA, &self.signature_data)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyResponse {
    pub unique_identifier: String,
    pub validity_indicator: ValidityIndicator,
    pub extra: Vec<Item>,
}

impl Payload for VerifyResponse {
    const OPERATION: Operation = Operation::SIGNATURE_VERIFY;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(VerifyResponse {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            validity_indicator: f.req(tags::VALIDITY_INDICATOR)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .put(tags::VALIDITY_INDICATOR, &self.validity_indicator)
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
        round_trip(&SignRequest {
            unique_identifier: Some("k".into()),
            cryptographic_parameters: None,
            data: SecretBytes::from_slice(b"message"),
            extra: Vec::new(),
        });
        round_trip(&SignResponse {
            unique_identifier: "k".into(),
            signature_data: vec![1; 256],
            extra: Vec::new(),
        });
        round_trip(&VerifyRequest {
            unique_identifier: Some("k".into()),
            cryptographic_parameters: None,
            data: SecretBytes::from_slice(b"message"),
            signature_data: vec![2; 64],
            extra: Vec::new(),
        });
        round_trip(&VerifyResponse {
            unique_identifier: "k".into(),
            validity_indicator: ValidityIndicator::INVALID,
            extra: Vec::new(),
        });
    }
}
