//! KMIP 1.0–1.4 request and response messages (KMIP 1.4 §7): header, batch
//! items and the envelope around each operation's payload.
//!
//! Parsing is strict where the specification is (the outer tag, the header
//! first, a Batch Count that matches the items) and lenient with fields it does
//! not know, which are kept and written back after the known ones. Payloads stay
//! raw [`Item`]s here; `kmip::payload` gives them types.

use super::enums::{
    AttestationType, BatchErrorContinuationOption, CredentialType, Operation, ResultReason, ResultStatus,
};
use super::error::MessageError;
use super::fields::{Builder, DateTime, Fields};
use super::tags;
use crate::limits::MAX_BATCH_ITEMS;
use crate::secret::SecretString;
use crate::ttlv::{Item, Value};

/// A protocol version, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    pub major: i32,
    pub minor: i32,
}

impl ProtocolVersion {
    pub const V1_0: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };
    pub const V1_1: ProtocolVersion = ProtocolVersion { major: 1, minor: 1 };
    pub const V1_2: ProtocolVersion = ProtocolVersion { major: 1, minor: 2 };
    pub const V1_3: ProtocolVersion = ProtocolVersion { major: 1, minor: 3 };
    pub const V1_4: ProtocolVersion = ProtocolVersion { major: 1, minor: 4 };
    pub const V2_0: ProtocolVersion = ProtocolVersion { major: 2, minor: 0 };
    pub const V2_1: ProtocolVersion = ProtocolVersion { major: 2, minor: 1 };

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::PROTOCOL_VERSION)?;
        Ok(ProtocolVersion {
            major: f.req(tags::PROTOCOL_VERSION_MAJOR)?,
            minor: f.req(tags::PROTOCOL_VERSION_MINOR)?,
        })
    }

    pub fn to_item(&self) -> Item {
        Builder::new()
            .put(tags::PROTOCOL_VERSION_MAJOR, &self.major)
            .put(tags::PROTOCOL_VERSION_MINOR, &self.minor)
            .finish(tags::PROTOCOL_VERSION)
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The protocol version of a request tree, read as leniently as possible so
/// that an error response can still be sent in the request's version.
/// `None` when the tree does not hold a readable one.
pub fn request_protocol_version(tree: &Item) -> Option<ProtocolVersion> {
    let header = tree.child(tags::REQUEST_HEADER)?;
    let version = header.child(tags::PROTOCOL_VERSION)?;
    Some(ProtocolVersion {
        major: version.child(tags::PROTOCOL_VERSION_MAJOR)?.as_i32()?,
        minor: version.child(tags::PROTOCOL_VERSION_MINOR)?.as_i32()?,
    })
}

/// The value of a Credential.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialValue {
    /// Credential Type Username and Password. The Password is optional in KMIP.
    UsernamePassword {
        username: String,
        password: Option<SecretString>,
    },
    /// Any other credential type, its Credential Value kept as it is. It may
    /// hold a password as a Text String, so `Debug` does not show it.
    Other(Item),
}

impl std::fmt::Debug for CredentialValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialValue::UsernamePassword { username, password } => f
                .debug_struct("UsernamePassword")
                .field("username", username)
                .field("password", password)
                .finish(),
            CredentialValue::Other(_) => f.write_str("Other(<redacted>)"),
        }
    }
}

/// Wipes every Password in a decoded tree. Byte strings wipe themselves
/// (they are `SecretBytes`), text strings do not: the model keeps its own copy
/// of a password as a `SecretString`, and this wipes the tree's before it is
/// dropped.
pub fn wipe_passwords(item: &mut Item) {
    use zeroize::Zeroize;
    match &mut item.value {
        Value::Structure(children) => children.iter_mut().for_each(wipe_passwords),
        Value::TextString(text) if item.tag == tags::PASSWORD => text.zeroize(),
        _ => {}
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub credential_type: CredentialType,
    pub value: CredentialValue,
}

impl Credential {
    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::CREDENTIAL)?;
        let credential_type: CredentialType = f.req(tags::CREDENTIAL_TYPE)?;
        let raw = f.req_item(tags::CREDENTIAL_VALUE)?;
        let value = if credential_type == CredentialType::USERNAME_AND_PASSWORD {
            let mut v = Fields::of(raw, tags::CREDENTIAL_VALUE)?;
            CredentialValue::UsernamePassword {
                username: v.req(tags::USERNAME)?,
                password: v.opt::<String>(tags::PASSWORD)?.map(SecretString::new),
            }
        } else {
            CredentialValue::Other(raw.clone())
        };
        Ok(Credential {
            credential_type,
            value,
        })
    }

    pub fn to_item(&self) -> Item {
        let value = match &self.value {
            CredentialValue::UsernamePassword { username, password } => {
                let mut b = Builder::new();
                b.put(tags::USERNAME, username);
                if let Some(p) = password {
                    b.push(Item::new(
                        tags::PASSWORD,
                        Value::TextString(p.expose().to_owned()),
                    ));
                }
                b.finish(tags::CREDENTIAL_VALUE)
            }
            CredentialValue::Other(item) => item.clone(),
        };
        Builder::new()
            .put(tags::CREDENTIAL_TYPE, &self.credential_type)
            .push(value)
            .finish(tags::CREDENTIAL)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authentication {
    /// One in KMIP 1.x; several allowed from 2.0 on.
    pub credentials: Vec<Credential>,
}

impl Authentication {
    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::AUTHENTICATION)?;
        let credentials = f
            .all_items(tags::CREDENTIAL)
            .into_iter()
            .map(Credential::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        if credentials.is_empty() {
            return Err(MessageError::Missing {
                parent: tags::AUTHENTICATION,
                tag: tags::CREDENTIAL,
            });
        }
        Ok(Authentication { credentials })
    }

    pub fn to_item(&self) -> Item {
        let mut b = Builder::new();
        for c in &self.credentials {
            b.push(c.to_item());
        }
        b.finish(tags::AUTHENTICATION)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub protocol_version: ProtocolVersion,
    pub maximum_response_size: Option<i32>,
    /// KMIP 1.4.
    pub client_correlation_value: Option<String>,
    /// KMIP 1.4.
    pub server_correlation_value: Option<String>,
    pub asynchronous_indicator: Option<bool>,
    /// KMIP 1.2.
    pub attestation_capable_indicator: Option<bool>,
    /// KMIP 1.2.
    pub attestation_types: Vec<AttestationType>,
    pub authentication: Option<Authentication>,
    pub batch_error_continuation_option: Option<BatchErrorContinuationOption>,
    pub batch_order_option: Option<bool>,
    pub time_stamp: Option<DateTime>,
    pub batch_count: i32,
    /// Fields this model does not know, kept in their order.
    pub unknown: Vec<Item>,
}

impl RequestHeader {
    /// A header with only the version and the count, as vCenter sends it.
    pub fn new(protocol_version: ProtocolVersion, batch_count: i32) -> Self {
        RequestHeader {
            protocol_version,
            maximum_response_size: None,
            client_correlation_value: None,
            server_correlation_value: None,
            asynchronous_indicator: None,
            attestation_capable_indicator: None,
            attestation_types: Vec::new(),
            authentication: None,
            batch_error_continuation_option: None,
            batch_order_option: None,
            time_stamp: None,
            batch_count,
            unknown: Vec::new(),
        }
    }

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::REQUEST_HEADER)?;
        Ok(RequestHeader {
            protocol_version: ProtocolVersion::from_item(f.req_item(tags::PROTOCOL_VERSION)?)?,
            maximum_response_size: f.opt(tags::MAXIMUM_RESPONSE_SIZE)?,
            client_correlation_value: f.opt(tags::CLIENT_CORRELATION_VALUE)?,
            server_correlation_value: f.opt(tags::SERVER_CORRELATION_VALUE)?,
            asynchronous_indicator: f.opt(tags::ASYNCHRONOUS_INDICATOR)?,
            attestation_capable_indicator: f.opt(tags::ATTESTATION_CAPABLE_INDICATOR)?,
            attestation_types: f.all(tags::ATTESTATION_TYPE)?,
            authentication: f
                .opt_item(tags::AUTHENTICATION)?
                .map(Authentication::from_item)
                .transpose()?,
            batch_error_continuation_option: f.opt(tags::BATCH_ERROR_CONTINUATION_OPTION)?,
            batch_order_option: f.opt(tags::BATCH_ORDER_OPTION)?,
            time_stamp: f.opt(tags::TIME_STAMP)?,
            batch_count: f.req(tags::BATCH_COUNT)?,
            unknown: f.rest(),
        })
    }

    pub fn to_item(&self) -> Item {
        let mut b = Builder::new();
        b.push(self.protocol_version.to_item())
            .opt(tags::MAXIMUM_RESPONSE_SIZE, &self.maximum_response_size)
            .opt(tags::CLIENT_CORRELATION_VALUE, &self.client_correlation_value)
            .opt(tags::SERVER_CORRELATION_VALUE, &self.server_correlation_value)
            .opt(tags::ASYNCHRONOUS_INDICATOR, &self.asynchronous_indicator)
            .opt(
                tags::ATTESTATION_CAPABLE_INDICATOR,
                &self.attestation_capable_indicator,
            )
            .all(tags::ATTESTATION_TYPE, &self.attestation_types);
        if let Some(a) = &self.authentication {
            b.push(a.to_item());
        }
        b.opt(
            tags::BATCH_ERROR_CONTINUATION_OPTION,
            &self.batch_error_continuation_option,
        )
        .opt(tags::BATCH_ORDER_OPTION, &self.batch_order_option)
        .opt(tags::TIME_STAMP, &self.time_stamp)
        .put(tags::BATCH_COUNT, &self.batch_count)
        .items(&self.unknown)
        .finish(tags::REQUEST_HEADER)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestBatchItem {
    pub operation: Operation,
    /// Required when the batch has more than one item; vCenter's first
    /// Discover Versions has none.
    pub unique_batch_item_id: Option<Vec<u8>>,
    /// The raw Request Payload structure.
    pub payload: Option<Item>,
    pub message_extension: Option<Item>,
    pub unknown: Vec<Item>,
}

impl RequestBatchItem {
    pub fn new(operation: Operation, payload: Item) -> Self {
        RequestBatchItem {
            operation,
            unique_batch_item_id: None,
            payload: Some(payload),
            message_extension: None,
            unknown: Vec::new(),
        }
    }

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::BATCH_ITEM)?;
        Ok(RequestBatchItem {
            operation: f.req(tags::OPERATION)?,
            unique_batch_item_id: f.opt(tags::UNIQUE_BATCH_ITEM_ID)?,
            payload: f
                .opt::<Item>(tags::REQUEST_PAYLOAD)?
                .map(structure(tags::REQUEST_PAYLOAD))
                .transpose()?,
            message_extension: f.opt(tags::MESSAGE_EXTENSION)?,
            unknown: f.rest(),
        })
    }

    pub fn to_item(&self) -> Item {
        Builder::new()
            .put(tags::OPERATION, &self.operation)
            .opt(tags::UNIQUE_BATCH_ITEM_ID, &self.unique_batch_item_id)
            .opt_item(&self.payload)
            .opt_item(&self.message_extension)
            .items(&self.unknown)
            .finish(tags::BATCH_ITEM)
    }
}

/// A check that an item is a Structure, for `Option::map`.
fn structure(tag: crate::ttlv::Tag) -> impl Fn(Item) -> Result<Item, MessageError> {
    move |item| match item.value {
        Value::Structure(_) => Ok(item),
        ref v => Err(MessageError::wrong_type(
            tag,
            crate::ttlv::ItemType::Structure,
            v.item_type(),
        )),
    }
}

/// Checks a Batch Count against the limit and the items actually present.
fn check_batch_count(parent: crate::ttlv::Tag, declared: i32, actual: usize) -> Result<(), MessageError> {
    if actual > MAX_BATCH_ITEMS {
        return Err(MessageError::TooManyBatchItems {
            count: actual,
            max: MAX_BATCH_ITEMS,
        });
    }
    if usize::try_from(declared).ok() != Some(actual) {
        return Err(MessageError::BatchCountMismatch { declared, actual });
    }
    if actual == 0 {
        return Err(MessageError::Missing {
            parent,
            tag: tags::BATCH_ITEM,
        });
    }
    Ok(())
}

/// The first child must be the header (KMIP 1.4 §7.1: fields in order).
fn check_header_first(item: &Item, header: crate::ttlv::Tag) -> Result<(), MessageError> {
    match item.children().first() {
        Some(first) if first.tag == header => Ok(()),
        Some(first) => Err(MessageError::UnexpectedTag {
            expected: header,
            found: first.tag,
        }),
        None => Err(MessageError::Missing {
            parent: item.tag,
            tag: header,
        }),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMessage {
    pub header: RequestHeader,
    pub batch_items: Vec<RequestBatchItem>,
    pub unknown: Vec<Item>,
}

impl RequestMessage {
    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::REQUEST_MESSAGE)?;
        check_header_first(item, tags::REQUEST_HEADER)?;
        let header = RequestHeader::from_item(f.req_item(tags::REQUEST_HEADER)?)?;
        let items = f.all_items(tags::BATCH_ITEM);
        check_batch_count(tags::REQUEST_MESSAGE, header.batch_count, items.len())?;
        let batch_items = items
            .into_iter()
            .map(RequestBatchItem::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RequestMessage {
            header,
            batch_items,
            unknown: f.rest(),
        })
    }

    pub fn to_item(&self) -> Item {
        let mut b = Builder::new();
        b.push(self.header.to_item());
        for i in &self.batch_items {
            b.push(i.to_item());
        }
        b.items(&self.unknown).finish(tags::REQUEST_MESSAGE)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHeader {
    pub protocol_version: ProtocolVersion,
    pub time_stamp: DateTime,
    /// KMIP 1.2: the Nonce structure, kept as it is.
    pub nonce: Option<Item>,
    /// KMIP 1.2.
    pub attestation_types: Vec<AttestationType>,
    /// KMIP 1.4.
    pub client_correlation_value: Option<String>,
    /// KMIP 1.4.
    pub server_correlation_value: Option<String>,
    pub batch_count: i32,
    pub unknown: Vec<Item>,
}

impl ResponseHeader {
    pub fn new(protocol_version: ProtocolVersion, time_stamp: DateTime, batch_count: i32) -> Self {
        ResponseHeader {
            protocol_version,
            time_stamp,
            nonce: None,
            attestation_types: Vec::new(),
            client_correlation_value: None,
            server_correlation_value: None,
            batch_count,
            unknown: Vec::new(),
        }
    }

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::RESPONSE_HEADER)?;
        Ok(ResponseHeader {
            protocol_version: ProtocolVersion::from_item(f.req_item(tags::PROTOCOL_VERSION)?)?,
            time_stamp: f.req(tags::TIME_STAMP)?,
            nonce: f.opt(tags::NONCE)?,
            attestation_types: f.all(tags::ATTESTATION_TYPE)?,
            client_correlation_value: f.opt(tags::CLIENT_CORRELATION_VALUE)?,
            server_correlation_value: f.opt(tags::SERVER_CORRELATION_VALUE)?,
            batch_count: f.req(tags::BATCH_COUNT)?,
            unknown: f.rest(),
        })
    }

    pub fn to_item(&self) -> Item {
        Builder::new()
            .push(self.protocol_version.to_item())
            .put(tags::TIME_STAMP, &self.time_stamp)
            .opt_item(&self.nonce)
            .all(tags::ATTESTATION_TYPE, &self.attestation_types)
            .opt(tags::CLIENT_CORRELATION_VALUE, &self.client_correlation_value)
            .opt(tags::SERVER_CORRELATION_VALUE, &self.server_correlation_value)
            .put(tags::BATCH_COUNT, &self.batch_count)
            .items(&self.unknown)
            .finish(tags::RESPONSE_HEADER)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseBatchItem {
    /// Required when the request item had one; absent when the server could
    /// not tell which operation failed.
    pub operation: Option<Operation>,
    pub unique_batch_item_id: Option<Vec<u8>>,
    pub result_status: ResultStatus,
    pub result_reason: Option<ResultReason>,
    pub result_message: Option<String>,
    pub asynchronous_correlation_value: Option<Vec<u8>>,
    /// The raw Response Payload structure.
    pub payload: Option<Item>,
    pub message_extension: Option<Item>,
    pub unknown: Vec<Item>,
}

impl ResponseBatchItem {
    /// A successful item answering `operation`, echoing the request's id.
    pub fn success(
        operation: Operation,
        unique_batch_item_id: Option<Vec<u8>>,
        payload: Option<Item>,
    ) -> Self {
        ResponseBatchItem {
            operation: Some(operation),
            unique_batch_item_id,
            result_status: ResultStatus::SUCCESS,
            result_reason: None,
            result_message: None,
            asynchronous_correlation_value: None,
            payload,
            message_extension: None,
            unknown: Vec::new(),
        }
    }

    /// A failed item. `message` goes to the client: keep secrets out of it.
    pub fn failure(
        operation: Option<Operation>,
        unique_batch_item_id: Option<Vec<u8>>,
        reason: ResultReason,
        message: impl Into<String>,
    ) -> Self {
        ResponseBatchItem {
            operation,
            unique_batch_item_id,
            result_status: ResultStatus::OPERATION_FAILED,
            result_reason: Some(reason),
            result_message: Some(message.into()),
            asynchronous_correlation_value: None,
            payload: None,
            message_extension: None,
            unknown: Vec::new(),
        }
    }

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::BATCH_ITEM)?;
        Ok(ResponseBatchItem {
            operation: f.opt(tags::OPERATION)?,
            unique_batch_item_id: f.opt(tags::UNIQUE_BATCH_ITEM_ID)?,
            result_status: f.req(tags::RESULT_STATUS)?,
            result_reason: f.opt(tags::RESULT_REASON)?,
            result_message: f.opt(tags::RESULT_MESSAGE)?,
            asynchronous_correlation_value: f.opt(tags::ASYNCHRONOUS_CORRELATION_VALUE)?,
            payload: f
                .opt::<Item>(tags::RESPONSE_PAYLOAD)?
                .map(structure(tags::RESPONSE_PAYLOAD))
                .transpose()?,
            message_extension: f.opt(tags::MESSAGE_EXTENSION)?,
            unknown: f.rest(),
        })
    }

    pub fn to_item(&self) -> Item {
        Builder::new()
            .opt(tags::OPERATION, &self.operation)
            .opt(tags::UNIQUE_BATCH_ITEM_ID, &self.unique_batch_item_id)
            .put(tags::RESULT_STATUS, &self.result_status)
            .opt(tags::RESULT_REASON, &self.result_reason)
            .opt(tags::RESULT_MESSAGE, &self.result_message)
            .opt(
                tags::ASYNCHRONOUS_CORRELATION_VALUE,
                &self.asynchronous_correlation_value,
            )
            .opt_item(&self.payload)
            .opt_item(&self.message_extension)
            .items(&self.unknown)
            .finish(tags::BATCH_ITEM)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseMessage {
    pub header: ResponseHeader,
    pub batch_items: Vec<ResponseBatchItem>,
    pub unknown: Vec<Item>,
}

impl ResponseBatchItem {
    /// Like [`ResponseBatchItem::to_item`], moving the payload instead of copying it.
    pub fn into_item(self) -> Item {
        let mut b = Builder::new();
        b.opt(tags::OPERATION, &self.operation)
            .opt(tags::UNIQUE_BATCH_ITEM_ID, &self.unique_batch_item_id)
            .put(tags::RESULT_STATUS, &self.result_status)
            .opt(tags::RESULT_REASON, &self.result_reason)
            .opt(tags::RESULT_MESSAGE, &self.result_message)
            .opt(
                tags::ASYNCHRONOUS_CORRELATION_VALUE,
                &self.asynchronous_correlation_value,
            );
        if let Some(payload) = self.payload {
            b.push(payload);
        }
        if let Some(extension) = self.message_extension {
            b.push(extension);
        }
        for item in self.unknown {
            b.push(item);
        }
        b.finish(tags::BATCH_ITEM)
    }
}

impl ResponseMessage {
    /// Like [`ResponseMessage::to_item`], moving the batch items' payloads
    /// (a Get's key material) into the tree instead of copying them.
    pub fn into_item(self) -> Item {
        let mut b = Builder::new();
        b.push(self.header.to_item());
        for i in self.batch_items {
            b.push(i.into_item());
        }
        for item in self.unknown {
            b.push(item);
        }
        b.finish(tags::RESPONSE_MESSAGE)
    }

    pub fn from_item(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, tags::RESPONSE_MESSAGE)?;
        check_header_first(item, tags::RESPONSE_HEADER)?;
        let header = ResponseHeader::from_item(f.req_item(tags::RESPONSE_HEADER)?)?;
        let items = f.all_items(tags::BATCH_ITEM);
        check_batch_count(tags::RESPONSE_MESSAGE, header.batch_count, items.len())?;
        let batch_items = items
            .into_iter()
            .map(ResponseBatchItem::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResponseMessage {
            header,
            batch_items,
            unknown: f.rest(),
        })
    }

    pub fn to_item(&self) -> Item {
        let mut b = Builder::new();
        b.push(self.header.to_item());
        for i in &self.batch_items {
            b.push(i.to_item());
        }
        b.items(&self.unknown).finish(tags::RESPONSE_MESSAGE)
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
