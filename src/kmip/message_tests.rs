//! Message parsing against hand-built trees mirroring vCenter's traffic.

use super::*;
use crate::kmip::attribute::attr;
use crate::kmip::payload::{Payload, add_attribute, create, discover_versions, get};
use crate::kmip::{CryptographicAlgorithm, CryptographicUsageMask, ObjectType};
use crate::secret::SecretBytes;
use crate::ttlv::{Tag, Value, decode, encode_to_vec};

fn int(tag: Tag, v: i32) -> Item {
    Item::new(tag, Value::Integer(v))
}

fn text(tag: Tag, s: &str) -> Item {
    Item::new(tag, Value::TextString(s.into()))
}

fn header(batch_count: i32) -> Item {
    Item::structure(
        tags::REQUEST_HEADER,
        vec![
            Item::structure(
                tags::PROTOCOL_VERSION,
                vec![
                    int(tags::PROTOCOL_VERSION_MAJOR, 1),
                    int(tags::PROTOCOL_VERSION_MINOR, 1),
                ],
            ),
            int(tags::BATCH_COUNT, batch_count),
        ],
    )
}

fn batch_item(op: Operation, id: Option<&[u8]>, payload: Vec<Item>) -> Item {
    let mut items = vec![Item::new(tags::OPERATION, Value::Enumeration(op.0))];
    if let Some(id) = id {
        items.push(Item::new(
            tags::UNIQUE_BATCH_ITEM_ID,
            Value::ByteString(SecretBytes::from_slice(id)),
        ));
    }
    items.push(Item::structure(tags::REQUEST_PAYLOAD, payload));
    Item::structure(tags::BATCH_ITEM, items)
}

fn request(items: Vec<Item>) -> Item {
    let mut all = vec![header(items.len() as i32)];
    all.extend(items);
    Item::structure(tags::REQUEST_MESSAGE, all)
}

fn attribute(name: &str, value: Value) -> Item {
    Item::structure(
        tags::ATTRIBUTE,
        vec![
            text(tags::ATTRIBUTE_NAME, name),
            Item::new(tags::ATTRIBUTE_VALUE, value),
        ],
    )
}

/// Parses, checks that writing gives back the same tree and the same bytes.
fn parse(tree: &Item) -> RequestMessage {
    let msg = RequestMessage::from_item(tree).unwrap();
    assert_eq!(&msg.to_item(), tree);
    let bytes = encode_to_vec(tree);
    assert_eq!(decode(&bytes).unwrap(), msg.to_item());
    msg
}

fn qlkc(n: u32) -> Vec<u8> {
    let mut id = b"QLKC".to_vec();
    id.extend_from_slice(&n.to_le_bytes());
    id
}

#[test]
fn vcenter_discover_versions_without_batch_item_id() {
    let tree = request(vec![batch_item(Operation::DISCOVER_VERSIONS, None, vec![])]);
    let msg = parse(&tree);
    assert_eq!(msg.header.protocol_version, ProtocolVersion::V1_1);
    assert_eq!(msg.header.batch_count, 1);
    assert!(msg.header.authentication.is_none());
    let item = &msg.batch_items[0];
    assert_eq!(item.operation, Operation::DISCOVER_VERSIONS);
    assert_eq!(item.unique_batch_item_id, None);
    let payload = discover_versions::Request::from_payload(item.payload.as_ref().unwrap()).unwrap();
    assert!(payload.protocol_versions.is_empty());
    assert_eq!(request_protocol_version(&tree), Some(ProtocolVersion::V1_1));
}

#[test]
fn vcenter_create_with_three_attributes() {
    let tree = request(vec![batch_item(
        Operation::CREATE,
        Some(&qlkc(1)),
        vec![
            Item::new(tags::OBJECT_TYPE, Value::Enumeration(ObjectType::SYMMETRIC_KEY.0)),
            Item::structure(
                tags::TEMPLATE_ATTRIBUTE,
                vec![
                    attribute(
                        attr::CRYPTOGRAPHIC_ALGORITHM,
                        Value::Enumeration(CryptographicAlgorithm::AES.0),
                    ),
                    attribute(attr::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(12)),
                    attribute(attr::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
                ],
            ),
        ],
    )]);
    let msg = parse(&tree);
    let item = &msg.batch_items[0];
    assert_eq!(item.unique_batch_item_id.as_deref(), Some(&qlkc(1)[..]));
    let create = create::Request::from_payload(item.payload.as_ref().unwrap()).unwrap();
    assert_eq!(create.object_type, ObjectType::SYMMETRIC_KEY);
    let t = &create.template_attribute;
    assert_eq!(t.attributes.len(), 3);
    assert_eq!(
        t.get(attr::CRYPTOGRAPHIC_ALGORITHM).unwrap().value.as_enum(),
        Some(3)
    );
    let mask = t
        .get(attr::CRYPTOGRAPHIC_USAGE_MASK)
        .unwrap()
        .value
        .as_i32()
        .unwrap();
    assert_eq!(
        mask as u32,
        (CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT).0
    );
    assert_eq!(
        t.get(attr::CRYPTOGRAPHIC_LENGTH).unwrap().value.as_i32(),
        Some(256)
    );
    for a in &t.attributes {
        crate::kmip::attribute::validate_value(a).unwrap();
    }
    assert_eq!(create.to_payload(), *item.payload.as_ref().unwrap());
}

#[test]
fn vcenter_get_with_only_the_id() {
    let tree = request(vec![batch_item(
        Operation::GET,
        Some(&qlkc(2)),
        vec![text(
            tags::UNIQUE_IDENTIFIER,
            "6a1f2c3e-0000-4000-8000-000000000001",
        )],
    )]);
    let msg = parse(&tree);
    let get = get::Request::from_payload(msg.batch_items[0].payload.as_ref().unwrap()).unwrap();
    assert_eq!(
        get.unique_identifier.as_deref(),
        Some("6a1f2c3e-0000-4000-8000-000000000001")
    );
    assert_eq!(get.key_format_type, None);
}

#[test]
fn vcenter_batch_of_three_add_attributes() {
    let adds = [
        ("x-Vendor", "VMware vSphere"),
        ("x-Product", "Virtual Machine"),
        ("x-Name", "vm-01"),
    ];
    let items = adds
        .iter()
        .enumerate()
        .map(|(i, (n, v))| {
            batch_item(
                Operation::ADD_ATTRIBUTE,
                Some(&qlkc(10 + i as u32)),
                vec![
                    text(tags::UNIQUE_IDENTIFIER, "k1"),
                    attribute(n, Value::TextString((*v).into())),
                ],
            )
        })
        .collect();
    let msg = parse(&request(items));
    assert_eq!(msg.header.batch_count, 3);
    for (i, item) in msg.batch_items.iter().enumerate() {
        assert_eq!(
            item.unique_batch_item_id.as_deref(),
            Some(&qlkc(10 + i as u32)[..])
        );
        let add = add_attribute::Request::from_payload(item.payload.as_ref().unwrap()).unwrap();
        assert_eq!(add.attribute.name, adds[i].0);
        assert_eq!(add.attribute.value.as_text(), Some(adds[i].1));
    }
}

#[test]
fn credentials_are_typed_and_redacted() {
    let auth = Item::structure(
        tags::AUTHENTICATION,
        vec![Item::structure(
            tags::CREDENTIAL,
            vec![
                Item::new(tags::CREDENTIAL_TYPE, Value::Enumeration(1)),
                Item::structure(
                    tags::CREDENTIAL_VALUE,
                    vec![text(tags::USERNAME, "vcenter"), text(tags::PASSWORD, "hunter2")],
                ),
            ],
        )],
    );
    let mut h = header(1);
    if let Value::Structure(items) = &mut h.value {
        items.insert(1, auth);
    }
    let tree = Item::structure(
        tags::REQUEST_MESSAGE,
        vec![h, batch_item(Operation::DISCOVER_VERSIONS, None, vec![])],
    );
    let msg = parse(&tree);
    let cred = &msg.header.authentication.as_ref().unwrap().credentials[0];
    match &cred.value {
        CredentialValue::UsernamePassword { username, password } => {
            assert_eq!(username, "vcenter");
            assert_eq!(password.as_ref().unwrap().expose(), "hunter2");
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{msg:?}").contains("hunter2"));
    let device = CredentialValue::Other(Item::structure(
        tags::CREDENTIAL_VALUE,
        vec![text(tags::PASSWORD, "hunter2")],
    ));
    assert_eq!(format!("{device:?}"), "Other(<redacted>)");

    // The tree's own copy is wiped once the model holds the password; the
    // username and everything else stay as they were.
    let mut tree = tree;
    wipe_passwords(&mut tree);
    let wiped = encode_to_vec(&tree);
    assert!(!wiped.windows(7).any(|w| w == b"hunter2"));
    assert!(wiped.windows(7).any(|w| w == b"vcenter"));
    assert_eq!(parse(&tree).header.batch_count, 1);
}

#[test]
fn unknown_fields_are_kept() {
    let mut tree = request(vec![batch_item(Operation::GET, None, vec![])]);
    if let Value::Structure(items) = &mut tree.value {
        if let Value::Structure(h) = &mut items[0].value {
            h.push(int(Tag(0x540001), 5));
        }
        if let Value::Structure(b) = &mut items[1].value {
            b.push(text(Tag(0x540002), "v"));
        }
    }
    let msg = parse(&tree);
    assert_eq!(msg.header.unknown.len(), 1);
    assert_eq!(msg.batch_items[0].unknown.len(), 1);
}

#[test]
fn missing_operation_is_invalid_message() {
    let bad = Item::structure(
        tags::BATCH_ITEM,
        vec![Item::structure(tags::REQUEST_PAYLOAD, vec![])],
    );
    let err = RequestMessage::from_item(&request(vec![bad])).unwrap_err();
    assert_eq!(
        err,
        MessageError::Missing {
            parent: tags::BATCH_ITEM,
            tag: tags::OPERATION
        }
    );
    assert_eq!(err.result_reason(), ResultReason::INVALID_MESSAGE);
}

#[test]
fn batch_count_must_match() {
    let mut tree = request(vec![batch_item(Operation::GET, None, vec![])]);
    if let Value::Structure(items) = &mut tree.value {
        items.push(batch_item(Operation::GET, None, vec![]));
    }
    let err = RequestMessage::from_item(&tree).unwrap_err();
    assert_eq!(
        err,
        MessageError::BatchCountMismatch {
            declared: 1,
            actual: 2
        }
    );
    let empty = Item::structure(tags::REQUEST_MESSAGE, vec![header(0)]);
    assert!(matches!(
        RequestMessage::from_item(&empty),
        Err(MessageError::Missing { .. })
    ));
    let negative = Item::structure(tags::REQUEST_MESSAGE, vec![header(-1)]);
    assert!(matches!(
        RequestMessage::from_item(&negative),
        Err(MessageError::BatchCountMismatch { .. })
    ));
}

#[test]
fn wrong_field_type_is_reported() {
    let mut h = header(1);
    if let Value::Structure(items) = &mut h.value {
        items[1] = text(tags::BATCH_COUNT, "1");
    }
    let tree = Item::structure(
        tags::REQUEST_MESSAGE,
        vec![h, batch_item(Operation::GET, None, vec![])],
    );
    let err = RequestMessage::from_item(&tree).unwrap_err();
    assert_eq!(
        err,
        MessageError::WrongType {
            tag: tags::BATCH_COUNT,
            expected: crate::ttlv::ItemType::Integer,
            found: crate::ttlv::ItemType::TextString
        }
    );
    // The version can still be read for the error response.
    assert_eq!(request_protocol_version(&tree), Some(ProtocolVersion::V1_1));
}

#[test]
fn too_many_batch_items() {
    let n = crate::limits::MAX_BATCH_ITEMS + 1;
    let items = (0..n)
        .map(|_| batch_item(Operation::DISCOVER_VERSIONS, None, vec![]))
        .collect();
    let err = RequestMessage::from_item(&request(items)).unwrap_err();
    assert_eq!(
        err,
        MessageError::TooManyBatchItems {
            count: n,
            max: crate::limits::MAX_BATCH_ITEMS
        }
    );
}

#[test]
fn structure_errors() {
    let not_request = Item::structure(tags::RESPONSE_MESSAGE, vec![]);
    assert!(matches!(
        RequestMessage::from_item(&not_request),
        Err(MessageError::UnexpectedTag { .. })
    ));
    let header_last = Item::structure(
        tags::REQUEST_MESSAGE,
        vec![batch_item(Operation::GET, None, vec![]), header(1)],
    );
    assert!(matches!(
        RequestMessage::from_item(&header_last),
        Err(MessageError::UnexpectedTag { .. })
    ));
    assert_eq!(request_protocol_version(&not_request), None);
    let payload_not_structure = Item::structure(
        tags::BATCH_ITEM,
        vec![
            Item::new(tags::OPERATION, Value::Enumeration(10)),
            int(tags::REQUEST_PAYLOAD, 1),
        ],
    );
    assert!(matches!(
        RequestMessage::from_item(&request(vec![payload_not_structure])),
        Err(MessageError::WrongType { .. })
    ));
}

#[test]
fn response_round_trip() {
    let msg = ResponseMessage {
        header: ResponseHeader::new(ProtocolVersion::V1_1, DateTime(1_700_000_000), 2),
        batch_items: vec![
            ResponseBatchItem::success(
                Operation::DISCOVER_VERSIONS,
                None,
                Some(
                    discover_versions::Response {
                        protocol_versions: vec![ProtocolVersion::V1_1],
                        extra: vec![],
                    }
                    .to_payload(),
                ),
            ),
            ResponseBatchItem::failure(
                Some(Operation::GET),
                Some(qlkc(3)),
                ResultReason::ITEM_NOT_FOUND,
                "no such object",
            ),
        ],
        unknown: vec![],
    };
    let tree = msg.to_item();
    assert_eq!(ResponseMessage::from_item(&tree).unwrap(), msg);
    assert_eq!(decode(&encode_to_vec(&tree)).unwrap(), tree);
}
