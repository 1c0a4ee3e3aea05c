//! MAC and MAC Verify (KMIP 1.4 §4.33, §4.34): data, the key by identifier,
//! the algorithm in Cryptographic Parameters; a MAC back, or whether it holds.

use super::crypt::CryptographicParameters;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, ValidityIndicator, tags};
use crate::secret::SecretBytes;
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacRequest {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub cryptographic_parameters: Option<CryptographicParameters>,
    pub data: SecretBytes,
    pub extra: Vec<Item>,
}

impl Payload for MacRequest {
    const OPERATION: Operation = Operation::MAC;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(MacRequest {
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
pub struct MacResponse {
    pub unique_identifier: String,
    pub mac_data: Vec<u8>,
    pub extra: Vec<Item>,
}

impl Payload for MacResponse {
    const OPERATION: Operation = Operation::MAC;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(MacResponse {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            mac_data: f.req(tags::MAC_DATA)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .put(tags::MAC_DATA, &self.mac_data)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacVerifyRequest {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub cryptographic_parameters: Option<CryptographicParameters>,
    pub data: SecretBytes,
    pub mac_data: Vec<u8>,
    pub extra: Vec<Item>,
}

impl Payload for MacVerifyRequest {
    const OPERATION: Operation = Operation::MAC_VERIFY;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(MacVerifyRequest {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            cryptographic_parameters: f.opt(tags::CRYPTOGRAPHIC_PARAMETERS)?,
            data: f.req(tags::DATA)?,
            mac_data: f.req(tags::MAC_DATA)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .opt(tags::CRYPTOGRAPHIC_PARAMETERS, &self.cryptographic_parameters)
            .put(tags::DATA, &self.data)
            .put(tags::MAC_DATA, &self.mac_data)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacVerifyResponse {
    pub unique_identifier: String,
    pub validity_indicator: ValidityIndicator,
    pub extra: Vec<Item>,
}

impl Payload for MacVerifyResponse {
    const OPERATION: Operation = Operation::MAC_VERIFY;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(MacVerifyResponse {
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
        round_trip(&MacVerifyRequest {
            unique_identifier: Some("k".into()),
            cryptographic_parameters: None,
            data: SecretBytes::from_slice(b"message"),
            mac_data: vec![1; 32],
            extra: Vec::new(),
        });
        round_trip(&MacVerifyResponse {
            unique_identifier: "k".into(),
            validity_indicator: ValidityIndicator::VALID,
            extra: Vec::new(),
        });
    }
}
