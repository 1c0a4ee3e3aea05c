//! A request message decoded once, into the typed payload of each batch item.
//!
//! [`DecodedRequest::from_item`] reads the header and every batch item of a
//! request tree, and decodes each item's Request Payload, by reference, into a
//! [`Request`] — one variant per operation keyward implements, and
//! [`Request::Unknown`] for the others. The server's operations receive these
//! values and never look at the tree again.
//!
//! What fails the whole message (no header, a Batch Count that does not match,
//! a batch item without an Operation, a payload that is not a structure) is an
//! error here, as in [`RequestMessage::from_item`](super::message::RequestMessage::from_item).
//! A payload that does not decode fails only its own item: the error is kept in
//! [`DecodedItem::request`] so that Batch Error Continuation still applies.

use super::enums::Operation;
use super::error::MessageError;
use super::fields::Fields;
use super::message::{ProtocolVersion, RequestHeader};
use super::payload::{self, Payload};
use super::tags;
use crate::limits::MAX_BATCH_ITEMS;
use crate::ttlv::{Item, Value};

/// The typed request of one batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Activate(payload::activate::Request),
    AddAttribute(payload::add_attribute::Request),
    Check(payload::check::Request),
    Create(payload::create::Request),
    CreateKeyPair(payload::create_key_pair::Request),
    Decrypt(payload::crypt::DecryptRequest),
    DeleteAttribute(payload::delete_attribute::Request),
    Destroy(payload::destroy::Request),
    DiscoverVersions(payload::discover_versions::Request),
    Encrypt(payload::crypt::EncryptRequest),
    Get(payload::get::Request),
    GetAttributeList(payload::get_attribute_list::Request),
    GetAttributes(payload::get_attributes::Request),
    Locate(payload::locate::Request),
    Mac(payload::proof::MacRequest),
    MacVerify(payload::proof::MacVerifyRequest),
    ModifyAttribute(payload::modify_attribute::Request),
    Query(payload::query::Request),
    Register(payload::register::Request),
    ReKey(payload::rekey::Request),
    Revoke(payload::revoke::Request),
    Interop(payload::interop::InteropRequest),
    Log(payload::interop::LogRequest),
    Sign(payload::proof::SignRequest),
    SignatureVerify(payload::proof::VerifyRequest),
    /// An operation keyward does not implement; its payload is not read.
    Unknown(Operation),
}

impl Request {
    /// Decodes the payload of an item naming `operation`, in the message's
    /// protocol `version`. A missing payload reads as an empty one (vCenter's
    /// first Discover Versions has none).
    ///
    /// keyward's payload models are KMIP 1.0–1.4's, whose request payloads
    /// differ only by optional fields added in later versions; a 2.x payload
    /// is first read into the 1.x form of the same operation ([`super::v2`]).
    pub fn decode(
        operation: Operation,
        payload: Option<&Item>,
        version: ProtocolVersion,
    ) -> Result<Request, MessageError> {
        let empty;
        let converted;
        let item = match payload {
            Some(item) if super::v2::is_v2(version) => {
                converted = super::v2::request_to_v1(operation, item)?;
                &converted
            }
            Some(item) => item,
            None => {
                empty = Item::structure(tags::REQUEST_PAYLOAD, Vec::new());
                &empty
            }
        };
        fn read<P: Payload>(item: &Item, wrap: fn(P) -> Request) -> Result<Request, MessageError> {
            P::from_payload(item).map(wrap)
        }
        match operation {
            Operation::ACTIVATE => read(item, Request::Activate),
            Operation::ADD_ATTRIBUTE => read(item, Request::AddAttribute),
            Operation::CHECK => read(item, Request::Check),
            Operation::CREATE => read(item, Request::Create),
            Operation::DECRYPT => read(item, Request::Decrypt),
            Operation::DELETE_ATTRIBUTE => read(item, Request::DeleteAttribute),
            Operation::DESTROY => read(item, Request::Destroy),
            Operation::DISCOVER_VERSIONS => read(item, Request::DiscoverVersions),
            Operation::ENCRYPT => read(item, Request::Encrypt),
            Operation::GET => read(item, Request::Get),
            Operation::GET_ATTRIBUTE_LIST => read(item, Request::GetAttributeList),
            Operation::GET_ATTRIBUTES => read(item, Request::GetAttributes),
            Operation::LOCATE => read(item, Request::Locate),
            Operation::MAC => read(item, Request::Mac),
            Operation::INTEROP => read(item, Request::Interop),
            Operation::LOG => read(item, Request::Log),
            Operation::CREATE_KEY_PAIR => read(item, Request::CreateKeyPair),
            Operation::SIGN => read(item, Request::Sign),
            Operation::SIGNATURE_VERIFY => read(item, Request::SignatureVerify),
            Operation::MAC_VERIFY => read(item, Request::MacVerify),
            Operation::MODIFY_ATTRIBUTE => read(item, Request::ModifyAttribute),
            Operation::QUERY => read(item, Request::Query),
            Operation::REGISTER => read(item, Request::Register),
            Operation::RE_KEY => read(item, Request::ReKey),
            Operation::REVOKE => read(item, Request::Revoke),
            other => Ok(Request::Unknown(other)),
        }
    }

    /// The operation this request is for.
    pub fn operation(&self) -> Operation {
        match self {
            Request::Activate(_) => Operation::ACTIVATE,
            Request::AddAttribute(_) => Operation::ADD_ATTRIBUTE,
            Request::Check(_) => Operation::CHECK,
            Request::Create(_) => Operation::CREATE,
            Request::Decrypt(_) => Operation::DECRYPT,
            Request::DeleteAttribute(_) => Operation::DELETE_ATTRIBUTE,
            Request::Destroy(_) => Operation::DESTROY,
            Request::DiscoverVersions(_) => Operation::DISCOVER_VERSIONS,
            Request::Encrypt(_) => Operation::ENCRYPT,
            Request::Get(_) => Operation::GET,
            Request::GetAttributeList(_) => Operation::GET_ATTRIBUTE_LIST,
            Request::GetAttributes(_) => Operation::GET_ATTRIBUTES,
            Request::Locate(_) => Operation::LOCATE,
            Request::Mac(_) => Operation::MAC,
            Request::Interop(_) => Operation::INTEROP,
            Request::Log(_) => Operation::LOG,
            Request::CreateKeyPair(_) => Operation::CREATE_KEY_PAIR,
            Request::Sign(_) => Operation::SIGN,
            Request::SignatureVerify(_) => Operation::SIGNATURE_VERIFY,
            Request::MacVerify(_) => Operation::MAC_VERIFY,
            Request::ModifyAttribute(_) => Operation::MODIFY_ATTRIBUTE,
            Request::Query(_) => Operation::QUERY,
            Request::Register(_) => Operation::REGISTER,
            Request::ReKey(_) => Operation::RE_KEY,
            Request::Revoke(_) => Operation::REVOKE,
            Request::Unknown(op) => *op,
        }
    }
}

/// One batch item of a decoded request.
#[derive(Debug)]
pub struct DecodedItem {
    pub operation: Operation,
    pub unique_batch_item_id: Option<Vec<u8>>,
    /// The item carries a Message Extension whose Criticality Indicator is set.
    pub critical_extension: bool,
    /// The typed payload, or why it did not decode (which fails this item only).
    pub request: Result<Request, MessageError>,
}

/// A request message with every batch item decoded.
#[derive(Debug)]
pub struct DecodedRequest {
    pub header: RequestHeader,
    pub items: Vec<DecodedItem>,
}

impl DecodedRequest {
    /// Reads a Request Message tree; payloads are decoded in the header's
    /// protocol version, without copying the tree.
    pub fn from_item(tree: &Item) -> Result<DecodedRequest, MessageError> {
        let mut f = Fields::of(tree, tags::REQUEST_MESSAGE)?;
        match tree.children().first() {
            Some(first) if first.tag == tags::REQUEST_HEADER => {}
            Some(first) => {
                return Err(MessageError::UnexpectedTag {
                    expected: tags::REQUEST_HEADER,
                    found: first.tag,
                });
            }
            None => {
                return Err(MessageError::Missing {
                    parent: tree.tag,
                    tag: tags::REQUEST_HEADER,
                });
            }
        }
        let header = RequestHeader::from_item(f.req_item(tags::REQUEST_HEADER)?)?;
        let raw_items = f.all_items(tags::BATCH_ITEM);
        if raw_items.len() > MAX_BATCH_ITEMS {
            return Err(MessageError::TooManyBatchItems {
                count: raw_items.len(),
                max: MAX_BATCH_ITEMS,
            });
        }
        if usize::try_from(header.batch_count).ok() != Some(raw_items.len()) {
            return Err(MessageError::BatchCountMismatch {
                declared: header.batch_count,
                actual: raw_items.len(),
            });
        }
        if raw_items.is_empty() {
            return Err(MessageError::Missing {
                parent: tags::REQUEST_MESSAGE,
                tag: tags::BATCH_ITEM,
            });
        }
        let version = header.protocol_version;
        let items = raw_items
            .into_iter()
            .map(|item| decode_item(item, version))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DecodedRequest { header, items })
    }
}

fn decode_item(item: &Item, version: ProtocolVersion) -> Result<DecodedItem, MessageError> {
    let mut f = Fields::of(item, tags::BATCH_ITEM)?;
    let operation: Operation = f.req(tags::OPERATION)?;
    let unique_batch_item_id = f.opt(tags::UNIQUE_BATCH_ITEM_ID)?;
    let payload = f.opt_item(tags::REQUEST_PAYLOAD)?;
    if let Some(p) = payload
        && !matches!(p.value, Value::Structure(_))
    {
        return Err(MessageError::wrong_type(
            tags::REQUEST_PAYLOAD,
            crate::ttlv::ItemType::Structure,
            p.value.item_type(),
        ));
    }
    // keyward knows no vendor extensions: a critical one refuses the item, a
    // non-critical one is ignored (KMIP 1.4 §6.16).
    let critical_extension = f.opt_item(tags::MESSAGE_EXTENSION)?.is_some_and(|ext| {
        ext.child(tags::CRITICALITY_INDICATOR)
            .and_then(Item::as_bool)
            .unwrap_or(false)
    });
    Ok(DecodedItem {
        operation,
        unique_batch_item_id,
        critical_extension,
        request: Request::decode(operation, payload, version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::message::{RequestBatchItem, RequestMessage};
    use crate::kmip::payload::get;

    fn message(items: Vec<RequestBatchItem>) -> Item {
        let count = i32::try_from(items.len()).unwrap();
        RequestMessage {
            header: RequestHeader::new(ProtocolVersion::V1_2, count),
            batch_items: items,
            unknown: Vec::new(),
        }
        .to_item()
    }

    #[test]
    fn items_decode_to_their_typed_requests() {
        let get = get::Request {
            unique_identifier: Some("k1".into()),
            ..get::Request::default()
        };
        let mut unknown =
            RequestBatchItem::new(Operation(0x99), Item::structure(tags::REQUEST_PAYLOAD, vec![]));
        unknown.unique_batch_item_id = Some(vec![7]);
        let mut discover = RequestBatchItem::new(
            Operation::DISCOVER_VERSIONS,
            Item::structure(tags::REQUEST_PAYLOAD, vec![]),
        );
        discover.payload = None;
        let tree = message(vec![
            RequestBatchItem::new(Operation::GET, get.to_payload()),
            unknown,
            discover,
        ]);
        let decoded = DecodedRequest::from_item(&tree).unwrap();
        assert_eq!(decoded.header.protocol_version, ProtocolVersion::V1_2);
        assert_eq!(decoded.items[0].request, Ok(Request::Get(get)));
        assert_eq!(decoded.items[1].request, Ok(Request::Unknown(Operation(0x99))));
        assert_eq!(decoded.items[1].unique_batch_item_id, Some(vec![7]));
        assert!(matches!(
            decoded.items[2].request,
            Ok(Request::DiscoverVersions(_))
        ));
        for item in &decoded.items {
            assert_eq!(item.request.as_ref().unwrap().operation(), item.operation);
        }
    }

    #[test]
    fn a_bad_payload_fails_its_item_only() {
        let bad = Item::structure(
            tags::REQUEST_PAYLOAD,
            vec![Item::new(tags::UNIQUE_IDENTIFIER, Value::Integer(3))],
        );
        let tree = message(vec![
            RequestBatchItem::new(Operation::GET, bad),
            RequestBatchItem::new(Operation::QUERY, Item::structure(tags::REQUEST_PAYLOAD, vec![])),
        ]);
        let decoded = DecodedRequest::from_item(&tree).unwrap();
        assert!(decoded.items[0].request.is_err());
        assert!(decoded.items[1].request.is_ok());
    }

    #[test]
    fn a_payload_that_is_not_a_structure_fails_the_message() {
        let mut item = RequestBatchItem::new(Operation::GET, Item::structure(tags::REQUEST_PAYLOAD, vec![]));
        item.payload = Some(Item::new(tags::REQUEST_PAYLOAD, Value::Integer(1)));
        assert!(DecodedRequest::from_item(&message(vec![item])).is_err());
    }
}
