//! A client that talks the way vCenter does (DESIGN.md §2): KMIP 1.1, one step
//! per short TLS connection, each opened with a Discover Versions that has an
//! empty payload and no batch item id, then one request whose batch items carry
//! `QLKC` + a little-endian counter as Unique Batch Item IDs.
//!
//! Requests are built item by item (not through the typed payloads) so the wire
//! shape is exactly vCenter's: an Integer usage mask, named 1.x attributes, no
//! Name, a header with only Protocol Version, Batch Count and, on some steps,
//! an Authentication with Username and Password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::kmip_client::{Client, ClientTls};
use keyward::kmip::message::{ProtocolVersion, ResponseBatchItem, ResponseMessage};
use keyward::kmip::object::{KeyMaterial, KeyValue, ManagedObject};
use keyward::kmip::payload::Payload;
use keyward::kmip::payload::{discover_versions, get, get_attributes};
use keyward::kmip::{
    CredentialType, CryptographicAlgorithm, KeyFormatType, ObjectType, Operation, QueryFunction,
    ResultStatus, State, tags,
};
use keyward::secret::SecretBytes;
use keyward::ttlv::{self, Item, Value};

/// vCenter's protocol version.
pub(crate) const V1_1: ProtocolVersion = ProtocolVersion::V1_1;

/// The `x-` tags vCenter looks up one by one after activating a key.
pub(crate) const X_TAGS: [&str; 6] = [
    "x-Product_Version",
    "x-Vendor",
    "x-Product",
    "x-Identifier",
    "x-Component",
    "x-Name",
];

fn int(tag: keyward::ttlv::Tag, v: i32) -> Item {
    Item::new(tag, Value::Integer(v))
}

fn enumeration(tag: keyward::ttlv::Tag, v: u32) -> Item {
    Item::new(tag, Value::Enumeration(v))
}

fn text(tag: keyward::ttlv::Tag, v: &str) -> Item {
    Item::new(tag, Value::TextString(v.to_owned()))
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

fn payload(items: Vec<Item>) -> Item {
    Item::structure(tags::REQUEST_PAYLOAD, items)
}

/// Create's payload: Symmetric Key with exactly vCenter's three attributes.
pub(crate) fn create_payload() -> Item {
    payload(vec![
        enumeration(tags::OBJECT_TYPE, ObjectType::SYMMETRIC_KEY.0),
        Item::structure(
            tags::TEMPLATE_ATTRIBUTE,
            vec![
                attribute(
                    "Cryptographic Algorithm",
                    Value::Enumeration(CryptographicAlgorithm::AES.0),
                ),
                // vCenter sends the mask as an Integer, not an Enumeration or a mask type.
                attribute("Cryptographic Usage Mask", Value::Integer(12)),
                attribute("Cryptographic Length", Value::Integer(256)),
            ],
        ),
    ])
}

/// A payload holding only the Unique Identifier (Get, Activate).
pub(crate) fn uid_payload(uid: &str) -> Item {
    payload(vec![text(tags::UNIQUE_IDENTIFIER, uid)])
}

pub(crate) fn get_attributes_payload(uid: &str, name: &str) -> Item {
    payload(vec![
        text(tags::UNIQUE_IDENTIFIER, uid),
        text(tags::ATTRIBUTE_NAME, name),
    ])
}

pub(crate) fn add_attribute_payload(uid: &str, name: &str, value: &str) -> Item {
    payload(vec![
        text(tags::UNIQUE_IDENTIFIER, uid),
        attribute(name, Value::TextString(value.to_owned())),
    ])
}

pub(crate) fn query_server_information_payload() -> Item {
    payload(vec![enumeration(
        tags::QUERY_FUNCTION,
        QueryFunction::QUERY_SERVER_INFORMATION.0,
    )])
}

/// One batch item to send: operation, optional batch item id, payload.
pub(crate) struct Outgoing {
    pub operation: Operation,
    pub id: Option<Vec<u8>>,
    pub payload: Item,
}

/// A whole request message, item by item.
pub(crate) fn request_message(
    version: ProtocolVersion,
    credential: Option<(&str, &str)>,
    items: &[Outgoing],
) -> Vec<u8> {
    let mut header = vec![Item::structure(
        tags::PROTOCOL_VERSION,
        vec![
            int(tags::PROTOCOL_VERSION_MAJOR, version.major),
            int(tags::PROTOCOL_VERSION_MINOR, version.minor),
        ],
    )];
    if let Some((user, password)) = credential {
        header.push(Item::structure(
            tags::AUTHENTICATION,
            vec![Item::structure(
                tags::CREDENTIAL,
                vec![
                    enumeration(tags::CREDENTIAL_TYPE, CredentialType::USERNAME_AND_PASSWORD.0),
                    Item::structure(
                        tags::CREDENTIAL_VALUE,
                        vec![text(tags::USERNAME, user), text(tags::PASSWORD, password)],
                    ),
                ],
            )],
        ));
    }
    header.push(int(tags::BATCH_COUNT, items.len() as i32));
    let mut message = vec![Item::structure(tags::REQUEST_HEADER, header)];
    for item in items {
        let mut batch_item = vec![enumeration(tags::OPERATION, item.operation.0)];
        if let Some(id) = &item.id {
            batch_item.push(Item::new(
                tags::UNIQUE_BATCH_ITEM_ID,
                Value::ByteString(SecretBytes::from_slice(id)),
            ));
        }
        batch_item.push(item.payload.clone());
        message.push(Item::structure(tags::BATCH_ITEM, batch_item));
    }
    ttlv::encode_to_vec(&Item::structure(tags::REQUEST_MESSAGE, message))
}

/// Sends one message on `client` and checks the envelope: version echoed, one
/// response item per request item, operations and batch item ids echoed.
pub(crate) async fn exchange(
    client: &mut Client,
    version: ProtocolVersion,
    credential: Option<(&str, &str)>,
    items: &[Outgoing],
) -> Vec<ResponseBatchItem> {
    let bytes = request_message(version, credential, items);
    let response = client.round_trip_bytes(&bytes).await.expect("response");
    let tree = ttlv::decode(&response).expect("response is TTLV");
    let message = ResponseMessage::from_item(&tree).expect("response is a KMIP response");
    assert_eq!(
        message.header.protocol_version, version,
        "answered in the request's version"
    );
    assert_eq!(message.header.batch_count as usize, items.len(), "batch count");
    assert_eq!(message.batch_items.len(), items.len(), "one answer per item");
    for (sent, got) in items.iter().zip(&message.batch_items) {
        assert_eq!(got.unique_batch_item_id, sent.id, "batch item id echoed exactly");
        assert_eq!(got.operation, Some(sent.operation), "operation echoed");
    }
    message.batch_items
}

/// Panics with the result reason and message unless the item succeeded.
pub(crate) fn expect_success(item: &ResponseBatchItem) -> &Item {
    assert_eq!(
        item.result_status,
        ResultStatus::SUCCESS,
        "{:?} failed: {:?} {:?}",
        item.operation,
        item.result_reason,
        item.result_message
    );
    item.payload.as_ref().expect("a successful item has a payload")
}

/// Counter behind the `QLKC` ids, shared by every connection of one vCenter.
#[derive(Clone, Default)]
pub(crate) struct BatchIds(Arc<AtomicU32>);

impl BatchIds {
    pub(crate) fn next(&self) -> Vec<u8> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let mut id = b"QLKC".to_vec();
        id.extend_from_slice(&n.to_le_bytes());
        assert_eq!(id.len(), 8);
        id
    }
}

/// A 32-byte AES-256 key as Get returns it to vCenter.
pub(crate) struct FetchedKey(pub Vec<u8>);

/// vCenter, as seen by the server.
#[derive(Clone)]
pub(crate) struct Vcenter {
    pub addr: SocketAddr,
    pub tls: ClientTls,
    pub ids: BatchIds,
    /// "Password protection": sent on Create, Get and Add Attribute (only some
    /// operations of a flow carry it).
    pub credential: Option<(String, String)>,
}

impl Vcenter {
    pub(crate) fn new(addr: SocketAddr, tls: ClientTls) -> Self {
        Vcenter {
            addr,
            tls,
            ids: BatchIds::default(),
            credential: None,
        }
    }

    /// Opens a connection the way vCenter does: TLS, then Discover Versions with an
    /// empty payload and no batch item id; the answer must list 1.1.
    pub(crate) async fn open(&self) -> Client {
        let mut client = Client::connect(self.addr, &self.tls).await.expect("TLS connect");
        let items = exchange(
            &mut client,
            V1_1,
            None,
            &[Outgoing {
                operation: Operation::DISCOVER_VERSIONS,
                id: None,
                payload: payload(Vec::new()),
            }],
        )
        .await;
        let versions = discover_versions::Response::from_payload(expect_success(&items[0])).unwrap();
        assert!(
            versions.protocol_versions.contains(&V1_1),
            "Discover Versions must list 1.1: {:?}",
            versions.protocol_versions
        );
        client
    }

    /// One step: a fresh connection, Discover Versions, then one message with these
    /// items (ids assigned from the counter); the connection is then closed.
    pub(crate) async fn step(&self, items: Vec<(Operation, Item)>) -> Vec<ResponseBatchItem> {
        let mut client = self.open().await;
        let carries_credential = items
            .iter()
            .any(|(op, _)| matches!(*op, Operation::CREATE | Operation::GET | Operation::ADD_ATTRIBUTE));
        let credential = self
            .credential
            .as_ref()
            .filter(|_| carries_credential)
            .map(|(u, p)| (u.as_str(), p.as_str()));
        let outgoing: Vec<Outgoing> = items
            .into_iter()
            .map(|(operation, payload)| Outgoing {
                operation,
                id: Some(self.ids.next()),
                payload,
            })
            .collect();
        let answers = exchange(&mut client, V1_1, credential, &outgoing).await;
        client.close().await;
        answers
    }

    async fn one(&self, operation: Operation, payload: Item) -> ResponseBatchItem {
        self.step(vec![(operation, payload)]).await.remove(0)
    }

    /// Registering the KMS: DV ×2 on one connection, then DV + Query(server information).
    pub(crate) async fn register_kms(&self) -> String {
        let mut client = self.open().await;
        let items = exchange(
            &mut client,
            V1_1,
            None,
            &[Outgoing {
                operation: Operation::DISCOVER_VERSIONS,
                id: Some(self.ids.next()),
                payload: payload(Vec::new()),
            }],
        )
        .await;
        expect_success(&items[0]);
        client.close().await;
        let answer = self
            .one(Operation::QUERY, query_server_information_payload())
            .await;
        let p = expect_success(&answer);
        let vendor = p
            .child(tags::VENDOR_IDENTIFICATION)
            .and_then(Item::as_text)
            .expect("Query answers Vendor Identification");
        vendor.to_owned()
    }

    /// Create with vCenter's template; the answer needs only Object Type and id.
    pub(crate) async fn create(&self) -> String {
        let answer = self.one(Operation::CREATE, create_payload()).await;
        let p = expect_success(&answer);
        assert_eq!(
            p.child(tags::OBJECT_TYPE).and_then(Item::as_enum),
            Some(ObjectType::SYMMETRIC_KEY.0)
        );
        p.child(tags::UNIQUE_IDENTIFIER)
            .and_then(Item::as_text)
            .expect("Create answers the Unique Identifier")
            .to_owned()
    }

    /// Get with only the id: a Raw, unwrapped, 32-byte AES-256 key.
    pub(crate) async fn get(&self, uid: &str) -> FetchedKey {
        let answer = self.one(Operation::GET, uid_payload(uid)).await;
        check_get(&answer, uid)
    }

    pub(crate) async fn state(&self, uid: &str) -> State {
        let answer = self
            .one(Operation::GET_ATTRIBUTES, get_attributes_payload(uid, "State"))
            .await;
        let response = get_attributes::Response::from_payload(expect_success(&answer)).unwrap();
        assert_eq!(response.unique_identifier, uid);
        assert_eq!(response.attributes.len(), 1, "exactly the State asked for");
        assert_eq!(response.attributes[0].name, "State");
        State(
            response.attributes[0]
                .value
                .as_enum()
                .expect("State is an enumeration"),
        )
    }

    pub(crate) async fn activate(&self, uid: &str) {
        let answer = self.one(Operation::ACTIVATE, uid_payload(uid)).await;
        let p = expect_success(&answer);
        assert_eq!(
            p.child(tags::UNIQUE_IDENTIFIER).and_then(Item::as_text),
            Some(uid)
        );
    }

    /// Get Attributes naming one attribute; its text value, if set.
    pub(crate) async fn text_attribute(&self, uid: &str, name: &str) -> Option<String> {
        let answer = self
            .one(Operation::GET_ATTRIBUTES, get_attributes_payload(uid, name))
            .await;
        let p = expect_success(&answer);
        let attributes: Vec<&Item> = p.children_with(tags::ATTRIBUTE).collect();
        assert!(attributes.len() <= 1, "{name}: one value at most");
        attributes.first().map(|a| {
            assert_eq!(a.child(tags::ATTRIBUTE_NAME).and_then(Item::as_text), Some(name));
            a.child(tags::ATTRIBUTE_VALUE)
                .and_then(Item::as_text)
                .expect("x- tags are text")
                .to_owned()
        })
    }

    /// The one batch of three Add Attribute items vCenter sends.
    pub(crate) async fn tag(&self, uid: &str, tags_to_add: [(&str, &str); 3]) {
        let answers = self
            .step(
                tags_to_add
                    .iter()
                    .map(|(name, value)| (Operation::ADD_ATTRIBUTE, add_attribute_payload(uid, name, value)))
                    .collect(),
            )
            .await;
        for (answer, (name, value)) in answers.iter().zip(tags_to_add) {
            let p = expect_success(answer);
            assert_eq!(
                p.child(tags::UNIQUE_IDENTIFIER).and_then(Item::as_text),
                Some(uid)
            );
            let a = p
                .child(tags::ATTRIBUTE)
                .expect("Add Attribute answers the attribute");
            assert_eq!(a.child(tags::ATTRIBUTE_NAME).and_then(Item::as_text), Some(name));
            assert_eq!(
                a.child(tags::ATTRIBUTE_VALUE).and_then(Item::as_text),
                Some(value)
            );
        }
    }

    /// Encrypting one VM, start to end (DESIGN §2 steps 1–4). Returns the key's id
    /// and bytes.
    pub(crate) async fn encrypt_vm(&self, vm_uuid: &str, vm_name: &str) -> (String, FetchedKey) {
        let uid = self.create().await;
        let key = self.get(&uid).await;
        assert_eq!(self.state(&uid).await, State::PRE_ACTIVE);
        self.activate(&uid).await;
        assert_eq!(self.state(&uid).await, State::ACTIVE);
        for name in X_TAGS {
            assert_eq!(
                self.text_attribute(&uid, name).await,
                None,
                "{name} is not set yet"
            );
        }
        // One batch of three: the tags that link the key to its VM.
        self.tag(
            &uid,
            [
                ("x-Component", "Virtual Machine"),
                ("x-Identifier", vm_uuid),
                ("x-Name", vm_name),
            ],
        )
        .await;
        (uid, key)
    }

    /// Power-on: Get + Get Attributes(State), each on its own connection.
    pub(crate) async fn power_on(&self, uid: &str) -> FetchedKey {
        let key = self.get(uid).await;
        assert_eq!(self.state(uid).await, State::ACTIVE);
        key
    }
}

/// Checks a Get answer is what vCenter accepts and returns the key bytes.
pub(crate) fn check_get(answer: &ResponseBatchItem, uid: &str) -> FetchedKey {
    let response = get::Response::from_payload(expect_success(answer)).unwrap();
    assert_eq!(response.unique_identifier, uid);
    assert_eq!(response.object_type, ObjectType::SYMMETRIC_KEY);
    let ManagedObject::SymmetricKey { key_block } = response.object else {
        panic!("Get must return a Symmetric Key");
    };
    assert_eq!(key_block.key_format_type, KeyFormatType::RAW);
    assert_eq!(
        key_block.cryptographic_algorithm,
        Some(CryptographicAlgorithm::AES)
    );
    assert_eq!(key_block.cryptographic_length, Some(256));
    assert!(key_block.key_wrapping_data.is_none(), "no wrapping");
    let Some(KeyValue::Plain {
        key_material: KeyMaterial::Bytes(bytes),
        ..
    }) = key_block.key_value
    else {
        panic!("Raw key material as a byte string");
    };
    assert_eq!(bytes.len(), 32);
    FetchedKey(bytes.expose().to_vec())
}
