//! MAC and MAC Verify (KMIP 1.4 §4.33, §4.34), Sign and Signature Verify
//! (§4.31, §4.32): data, the key by identifier and how to use it
//! (Cryptographic Parameters); a proof over the data back — a MAC or a
//! signature — or whether a given proof holds. The four payloads have one
//! shape and differ only by operation and by the tag the proof travels under
//! (MAC Data, Signature Data). Streaming and Digested Data stay in `extra`,
//! where the server refuses them by name.

use super::crypt::CryptographicParameters;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, ValidityIndicator, tags};
use crate::secret::SecretBytes;
use crate::ttlv::{Item, Tag};

/// Asks for a proof over `data` (MAC, Sign).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProveRequest<const OP: u32> {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub cryptographic_parameters: Option<CryptographicParameters>,
    pub data: SecretBytes,
    pub extra: Vec<Item>,
}

/// The proof, under tag `PROOF` (MAC Data, Signature Data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProveResponse<const OP: u32, const PROOF: u32> {
    pub unique_identifier: String,
    pub proof: Vec<u8>,
    pub extra: Vec<Item>,
}

/// Asks whether `proof` holds over `data` (MAC Verify, Signature Verify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRequest<const OP: u32, const PROOF: u32> {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub cryptographic_parameters: Option<CryptographicParameters>,
    pub data: SecretBytes,
    pub proof: Vec<u8>,
    pub extra: Vec<Item>,
}

/// Whether the proof holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResponse<const OP: u32> {
    pub unique_identifier: String,
    pub validity_indicator: ValidityIndicator,
    pub extra: Vec<Item>,
}

pub type MacRequest = ProveRequest<{ Operation::MAC.0 }>;
pub type MacResponse = ProveResponse<{ Operation::MAC.0 }, { tags::MAC_DATA.0 }>;
pub type MacVerifyRequest = CheckRequest<{ Operation::MAC_VERIFY.0 }, { tags::MAC_DATA.0 }>;
pub type MacVerifyResponse = CheckResponse<{ Operation::MAC_VERIFY.0 }>;
pub type SignRequest = ProveRequest<{ Operation::SIGN.0 }>;
pub type SignResponse = ProveResponse<{ Operation::SIGN.0 }, { tags::SIGNATURE_DATA.0 }>;
pub type VerifyRequest = CheckRequest<{ Operation::SIGNATURE_VERIFY.0 }, { tags::SIGNATURE_DATA.0 }>;
pub type VerifyResponse = CheckResponse<{ Operation::SIGNATURE_VERIFY.0 }>;

impl<const OP: u32> Payload for ProveRequest<OP> {
    const OPERATION: Operation = Operation(OP);
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(ProveRequest {
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

impl<const OP: u32, const PROOF: u32> Payload for ProveResponse<OP, PROOF> {
    const OPERATION: Operation = Operation(OP);
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(ProveResponse {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            proof: f.req(Tag(PROOF))?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .put(Tag(PROOF), &self.proof)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

impl<const OP: u32, const PROOF: u32> Payload for CheckRequest<OP, PROOF> {
    const OPERATION: Operation = Operation(OP);
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(CheckRequest {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            cryptographic_parameters: f.opt(tags::CRYPTOGRAPHIC_PARAMETERS)?,
            data: f.req(tags::DATA)?,
            proof: f.req(Tag(PROOF))?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .opt(tags::CRYPTOGRAPHIC_PARAMETERS, &self.cryptographic_parameters)
            .put(tags::DATA, &self.data)
            .put(Tag(PROOF), &self.proof)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

impl<const OP: u32> Payload for CheckResponse<OP> {
    const OPERATION: Operation = Operation(OP);
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(CheckResponse {
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
    fn payloads_round_trip_and_carry_their_proof_tag() {
        round_trip(&SignRequest {
            unique_identifier: Some("k".into()),
            cryptographic_parameters: None,
            data: SecretBytes::from_slice(b"message"),
            extra: Vec::new(),
        });
        let mac = MacResponse {
            unique_identifier: "k".into(),
            proof: vec![1; 32],
            extra: Vec::new(),
        };
        round_trip(&mac);
        assert!(mac.to_payload().child(tags::MAC_DATA).is_some());
        let check = VerifyRequest {
            unique_identifier: Some("k".into()),
            cryptographic_parameters: None,
            data: SecretBytes::from_slice(b"message"),
            proof: vec![2; 64],
            extra: Vec::new(),
        };
        round_trip(&check);
        assert!(check.to_payload().child(tags::SIGNATURE_DATA).is_some());
        // A MAC Verify payload does not read as a Signature Verify one.
        assert!(MacVerifyRequest::from_payload(&check.to_payload()).is_err());
        round_trip(&MacVerifyResponse {
            unique_identifier: "k".into(),
            validity_indicator: ValidityIndicator::INVALID,
            extra: Vec::new(),
        });
    }
}
