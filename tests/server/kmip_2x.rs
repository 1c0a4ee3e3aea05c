//! KMIP 2.0 and 2.1 beside 1.x on the running server: one key store under
//! both — a key made over 1.1 (custom attribute included) is read over 2.1,
//! one made over 2.1 (Vendor Attribute included) over 1.1 — the 2.x forms of
//! the attribute operations, the 2.x-only Interop and Log, and refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::TestServer;
use common::admin::{failure, runtime};
use common::kmip_client::Client;
use common::vcenter::expect_success;
use keyward::kmip::attribute::{Attribute, TemplateAttribute};
use keyward::kmip::message::ProtocolVersion;
use keyward::kmip::payload::Payload;
use keyward::kmip::{CryptographicAlgorithm, ObjectType, Operation, ResultReason, tags};
use keyward::ttlv::{Item, Value};

fn text(tag: keyward::ttlv::Tag, v: &str) -> Item {
    Item::new(tag, Value::TextString(v.to_owned()))
}

fn payload(children: Vec<Item>) -> Item {
    Item::structure(tags::REQUEST_PAYLOAD, children)
}

fn vendor(name: &str, value: &str) -> Item {
    Item::structure(
        tags::ATTRIBUTE,
        vec![
            text(tags::VENDOR_IDENTIFICATION, "x"),
            text(tags::ATTRIBUTE_NAME, name),
            Item::new(tags::ATTRIBUTE_VALUE, Value::TextString(value.to_owned())),
        ],
    )
}

fn name_item(name: &str) -> Item {
    Item::structure(
        tags::NAME,
        vec![
            text(tags::NAME_VALUE, name),
            Item::new(tags::NAME_TYPE, Value::Enumeration(1)),
        ],
    )
}

fn uid_of(answer: &Item) -> String {
    answer
        .child(tags::UNIQUE_IDENTIFIER)
        .and_then(Item::as_text)
        .unwrap()
        .to_owned()
}

async fn client(server: &TestServer, version: ProtocolVersion) -> Client {
    let mut c = server.client().await;
    c.set_version(version);
    c
}

#[test]
fn one_key_store_under_kmip_1_and_2() {
    let server = TestServer::start();
    let rt = runtime();
    rt.block_on(async {
        let mut v11 = client(&server, ProtocolVersion::V1_1).await;
        let mut v21 = client(&server, ProtocolVersion::V2_1).await;

        // Discover Versions offers 2.1 and 2.0 beside 1.4-1.0.
        let answer = v11
            .call(Operation::DISCOVER_VERSIONS, payload(Vec::new()))
            .await
            .unwrap();
        let offered: Vec<(i32, i32)> = expect_success(&answer)
            .children_with(tags::PROTOCOL_VERSION)
            .map(|v| {
                let v = ProtocolVersion::from_item(v).unwrap();
                (v.major, v.minor)
            })
            .collect();
        assert_eq!(offered, [(2, 1), (2, 0), (1, 4), (1, 3), (1, 2), (1, 1), (1, 0)]);

        // Made over 1.1 with a custom attribute ...
        let create = keyward::kmip::payload::create::Request {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: TemplateAttribute::new(vec![
                Attribute::new(
                    "Cryptographic Algorithm",
                    Value::Enumeration(CryptographicAlgorithm::AES.0),
                ),
                Attribute::new("Cryptographic Length", Value::Integer(256)),
                Attribute::new("Cryptographic Usage Mask", Value::Integer(12)),
                Attribute::new("x-vm", Value::TextString("db-01".into())),
            ]),
            extra: Vec::new(),
        };
        let made = v11.call(Operation::CREATE, create.to_payload()).await.unwrap();
        let old = uid_of(expect_success(&made));

        // ... read over 2.1: attributes by reference, the custom one as a
        // Vendor Attribute.
        let ask = payload(vec![
            text(tags::UNIQUE_IDENTIFIER, &old),
            Item::new(
                tags::ATTRIBUTE_REFERENCE,
                Value::Enumeration(tags::CRYPTOGRAPHIC_LENGTH.0),
            ),
            Item::new(tags::ATTRIBUTE_REFERENCE, Value::Enumeration(tags::STATE.0)),
            Item::structure(
                tags::ATTRIBUTE_REFERENCE,
                vec![
                    text(tags::VENDOR_IDENTIFICATION, "x"),
                    text(tags::ATTRIBUTE_NAME, "vm"),
                ],
            ),
        ]);
        let got = v21.call(Operation::GET_ATTRIBUTES, ask).await.unwrap();
        let attributes = expect_success(&got)
            .child(tags::ATTRIBUTES)
            .expect("an Attributes structure");
        assert_eq!(
            attributes
                .child(tags::CRYPTOGRAPHIC_LENGTH)
                .and_then(Item::as_i32),
            Some(256)
        );
        assert_eq!(attributes.child(tags::STATE).and_then(Item::as_enum), Some(1));
        let custom = attributes.child(tags::ATTRIBUTE).expect("the Vendor Attribute");
        assert_eq!(
            custom.child(tags::ATTRIBUTE_NAME).and_then(Item::as_text),
            Some("vm")
        );
        assert_eq!(
            custom.child(tags::ATTRIBUTE_VALUE).and_then(Item::as_text),
            Some("db-01")
        );
        assert!(
            expect_success(&got).child(tags::ATTRIBUTE).is_none(),
            "no 1.x Attribute in 2.x"
        );
        let key = v21
            .call(Operation::GET, payload(vec![text(tags::UNIQUE_IDENTIFIER, &old)]))
            .await
            .unwrap();
        expect_success(&key);

        // Made over 2.1 with Attributes, a Name and a Vendor Attribute ...
        let create21 = payload(vec![
            Item::new(tags::OBJECT_TYPE, Value::Enumeration(ObjectType::SYMMETRIC_KEY.0)),
            Item::structure(
                tags::ATTRIBUTES,
                vec![
                    Item::new(
                        tags::CRYPTOGRAPHIC_ALGORITHM,
                        Value::Enumeration(CryptographicAlgorithm::AES.0),
                    ),
                    Item::new(tags::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                    Item::new(tags::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(12)),
                    name_item("made-over-2.1"),
                    vendor("owner", "storage team"),
                ],
            ),
        ]);
        let made = v21.call(Operation::CREATE, create21).await.unwrap();
        let made = expect_success(&made);
        assert!(made.child(tags::TEMPLATE_ATTRIBUTE).is_none());
        let new = uid_of(made);

        // ... read over 1.1 by its 1.x names, and found over 2.1 by Name.
        let ask = payload(vec![
            text(tags::UNIQUE_IDENTIFIER, &new),
            text(tags::ATTRIBUTE_NAME, "x-owner"),
            text(tags::ATTRIBUTE_NAME, "Name"),
        ]);
        let got = v11.call(Operation::GET_ATTRIBUTES, ask).await.unwrap();
        let names: Vec<Attribute> = expect_success(&got)
            .children_with(tags::ATTRIBUTE)
            .map(|a| Attribute::from_item(a).unwrap())
            .collect();
        assert!(
            names
                .iter()
                .any(|a| a.name == "x-owner" && a.value.as_text() == Some("storage team"))
        );
        assert!(names.iter().any(|a| a.name == "Name"
            && a.value.child(tags::NAME_VALUE).and_then(Item::as_text) == Some("made-over-2.1")));
        let found = v21
            .call(
                Operation::LOCATE,
                payload(vec![Item::structure(
                    tags::ATTRIBUTES,
                    vec![name_item("made-over-2.1")],
                )]),
            )
            .await
            .unwrap();
        let found: Vec<&str> = expect_success(&found)
            .children_with(tags::UNIQUE_IDENTIFIER)
            .filter_map(Item::as_text)
            .collect();
        assert_eq!(found, [new.as_str()]);

        // Get Attribute List over 2.1: references, by tag and by vendor.
        let list = v21
            .call(
                Operation::GET_ATTRIBUTE_LIST,
                payload(vec![text(tags::UNIQUE_IDENTIFIER, &new)]),
            )
            .await
            .unwrap();
        let refs: Vec<&Item> = expect_success(&list)
            .children_with(tags::ATTRIBUTE_REFERENCE)
            .collect();
        assert!(
            refs.iter()
                .any(|r| r.as_enum() == Some(tags::CRYPTOGRAPHIC_LENGTH.0))
        );
        assert!(
            refs.iter()
                .any(|r| r.child(tags::ATTRIBUTE_NAME).and_then(Item::as_text) == Some("owner"))
        );

        // Add, Modify (Current Attribute names the instance) and Delete over 2.1.
        let add = payload(vec![
            text(tags::UNIQUE_IDENTIFIER, &new),
            Item::structure(tags::NEW_ATTRIBUTE, vec![vendor("note", "first")]),
        ]);
        let added = v21.call(Operation::ADD_ATTRIBUTE, add).await.unwrap();
        assert!(expect_success(&added).child(tags::ATTRIBUTE).is_none());
        let add = payload(vec![
            text(tags::UNIQUE_IDENTIFIER, &new),
            Item::structure(tags::NEW_ATTRIBUTE, vec![vendor("note", "second")]),
        ]);
        expect_success(&v21.call(Operation::ADD_ATTRIBUTE, add).await.unwrap());
        let modify = payload(vec![
            text(tags::UNIQUE_IDENTIFIER, &new),
            Item::structure(tags::CURRENT_ATTRIBUTE, vec![vendor("note", "second")]),
            Item::structure(tags::NEW_ATTRIBUTE, vec![vendor("note", "second, edited")]),
        ]);
        expect_success(&v21.call(Operation::MODIFY_ATTRIBUTE, modify).await.unwrap());
        let delete = payload(vec![
            text(tags::UNIQUE_IDENTIFIER, &new),
            Item::structure(tags::CURRENT_ATTRIBUTE, vec![vendor("note", "first")]),
        ]);
        expect_success(&v21.call(Operation::DELETE_ATTRIBUTE, delete).await.unwrap());
        let got = v11
            .call(
                Operation::GET_ATTRIBUTES,
                payload(vec![
                    text(tags::UNIQUE_IDENTIFIER, &new),
                    text(tags::ATTRIBUTE_NAME, "x-note"),
                ]),
            )
            .await
            .unwrap();
        let notes: Vec<String> = expect_success(&got)
            .children_with(tags::ATTRIBUTE)
            .filter_map(|a| Attribute::from_item(a).ok())
            .filter_map(|a| a.value.as_text().map(str::to_owned))
            .collect();
        assert_eq!(notes, ["second, edited"]);
        let gone = payload(vec![
            text(tags::UNIQUE_IDENTIFIER, &new),
            Item::structure(tags::CURRENT_ATTRIBUTE, vec![vendor("note", "never there")]),
        ]);
        let answer = v21.call(Operation::DELETE_ATTRIBUTE, gone).await.unwrap();
        assert_eq!(failure(&answer), ResultReason::ATTRIBUTE_NOT_FOUND);

        // Refused: a reference to something that is no attribute.
        let bad = payload(vec![
            text(tags::UNIQUE_IDENTIFIER, &new),
            Item::new(tags::ATTRIBUTE_REFERENCE, Value::Enumeration(tags::BATCH_COUNT.0)),
        ]);
        let answer = v21.call(Operation::GET_ATTRIBUTES, bad).await.unwrap();
        assert_eq!(failure(&answer), ResultReason::INVALID_FIELD);

        // Interop and Log answer with empty payloads; a long Log line is taken.
        for (op, body) in [
            (
                Operation::INTEROP,
                vec![
                    Item::new(tags::INTEROP_FUNCTION, Value::Enumeration(1)),
                    text(tags::INTEROP_IDENTIFIER, "case-1"),
                ],
            ),
            (
                Operation::LOG,
                vec![text(tags::LOG_MESSAGE, &"line ".repeat(2000))],
            ),
        ] {
            let answer = v21.call(op, payload(body)).await.unwrap();
            assert!(expect_success(&answer).children().is_empty());
        }
    });
    let log = server.log();
    let logged = log
        .lines()
        .find(|l| l.contains("KMIP Log"))
        .expect("the Log line");
    assert!(logged.len() < 1000, "the Log line is cut: {} bytes", logged.len());
}
