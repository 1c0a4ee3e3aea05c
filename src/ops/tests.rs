//! The dispatch end to end on a memory store and a stand-in HSM: typed
//! requests, the ID Placeholder, the group proof, and internal errors that stay
//! out of Result Messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;
use crate::hsm::{AsyncHsm, CrkVersion, Hsm, HsmError, HsmStatus};
use crate::kmip::ResultStatus;
use crate::kmip::attribute::{Attribute, TemplateAttribute};
use crate::kmip::message::{RequestBatchItem, RequestHeader, RequestMessage};
use crate::kmip::object::{KeyMaterial, KeyValue};
use crate::kmip::payload::{Payload, create, get};
use crate::kmip::{CryptographicAlgorithm, ObjectType};
use crate::secret::SecretBytes;
use crate::store::MemoryStore;
use crate::ttlv::Value;

/// Seals by prefixing the AAD's length (a stand-in, not cryptography); fails
/// every call with a PKCS#11-looking diagnostic while `broken` is set.
struct FakeHsm {
    broken: AtomicBool,
}

impl FakeHsm {
    fn check(&self) -> Result<(), HsmError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(HsmError::Other("CKR_DEVICE_ERROR in slot 7".into()))
        } else {
            Ok(())
        }
    }
}

impl Hsm for FakeHsm {
    fn seal(&self, _: CrkVersion, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.check()?;
        let mut out = aad.to_vec();
        out.extend_from_slice(plaintext);
        Ok(out)
    }
    fn unseal(&self, _: CrkVersion, aad: &[u8], blob: &[u8]) -> Result<SecretBytes, HsmError> {
        self.check()?;
        blob.strip_prefix(aad)
            .map(SecretBytes::from_slice)
            .ok_or(HsmError::BadBlob)
    }
    fn random(&self, len: usize) -> Result<SecretBytes, HsmError> {
        self.check()?;
        Ok(SecretBytes::new(vec![0x5A; len]))
    }
    fn crk_versions(&self) -> Result<Vec<CrkVersion>, HsmError> {
        Ok(vec![CrkVersion(1)])
    }
    fn create_crk(&self, _: CrkVersion) -> Result<(), HsmError> {
        Ok(())
    }
    fn destroy_crk(&self, _: CrkVersion) -> Result<(), HsmError> {
        Ok(())
    }
    fn health(&self) -> Result<HsmStatus, HsmError> {
        Err(HsmError::Unavailable("fake".into()))
    }
}

fn operations() -> (Operations, Arc<FakeHsm>) {
    let hsm = Arc::new(FakeHsm {
        broken: AtomicBool::new(false),
    });
    let async_hsm = AsyncHsm::new(Arc::clone(&hsm) as Arc<dyn Hsm>, Duration::from_secs(5));
    let keys = KeyService::new(async_hsm, Arc::new(MemoryStore::new()), CrkVersion(1));
    let ops = Operations::new(Arc::new(keys), ServerInfo::default(), DecodeLimits::default());
    (ops, hsm)
}

fn message(items: Vec<RequestBatchItem>) -> Vec<u8> {
    let count = i32::try_from(items.len()).unwrap();
    let mut header = RequestHeader::new(ProtocolVersion::V1_2, count);
    header.batch_error_continuation_option = Some(BatchErrorContinuationOption::CONTINUE);
    ttlv::encode_to_vec(
        &RequestMessage {
            header,
            batch_items: items,
            unknown: Vec::new(),
        }
        .to_item(),
    )
}

fn create_item() -> RequestBatchItem {
    let request = create::Request {
        object_type: ObjectType::SYMMETRIC_KEY,
        template_attribute: TemplateAttribute {
            names: Vec::new(),
            attributes: vec![
                Attribute::new(
                    "Cryptographic Algorithm",
                    Value::Enumeration(CryptographicAlgorithm::AES.0),
                ),
                Attribute::new("Cryptographic Length", Value::Integer(256)),
            ],
        },
        extra: Vec::new(),
    };
    RequestBatchItem::new(Operation::CREATE, request.to_payload())
}

fn get_item(uid: Option<&str>) -> RequestBatchItem {
    let request = get::Request {
        unique_identifier: uid.map(str::to_owned),
        ..get::Request::default()
    };
    RequestBatchItem::new(Operation::GET, request.to_payload())
}

fn response(handled: &Handled) -> ResponseMessage {
    let bytes = handled.response.as_ref().unwrap();
    ResponseMessage::from_item(&ttlv::decode(bytes).unwrap()).unwrap()
}

#[tokio::test]
async fn create_then_get_through_the_placeholder_and_only_in_the_group() {
    let (ops, _hsm) = operations();
    let alice = Caller::for_tests("alice", "g1");
    let handled = ops
        .handle(&alice, &message(vec![create_item(), get_item(None)]))
        .await;
    let answer = response(&handled);
    assert_eq!(answer.header.protocol_version, ProtocolVersion::V1_2);
    assert!(
        answer
            .batch_items
            .iter()
            .all(|i| i.result_status == ResultStatus::SUCCESS),
        "{answer:?}"
    );
    let got = get::Response::from_payload(answer.batch_items[1].payload.as_ref().unwrap()).unwrap();
    let uid = handled.outcomes[0].unique_identifier.clone().unwrap();
    assert_eq!(got.unique_identifier, uid);
    match got.object.key_block().and_then(|b| b.key_value.as_ref()) {
        Some(KeyValue::Plain {
            key_material: KeyMaterial::Bytes(key),
            ..
        }) => assert_eq!(key.expose(), &[0x5A; 32]),
        other => panic!("unexpected {other:?}"),
    }

    // Another group does not see it.
    let bob = Caller::for_tests("bob", "g2");
    let handled = ops.handle(&bob, &message(vec![get_item(Some(&uid))])).await;
    let item = &response(&handled).batch_items[0];
    assert_eq!(item.result_reason, Some(ResultReason::ITEM_NOT_FOUND));
}

#[tokio::test]
async fn internal_errors_name_a_reference_and_keep_the_detail_for_the_audit_trail() {
    let (ops, hsm) = operations();
    let alice = Caller::for_tests("alice", "g1");
    hsm.broken.store(true, Ordering::SeqCst);
    let handled = ops.handle(&alice, &message(vec![create_item()])).await;
    let item = &response(&handled).batch_items[0];
    assert_eq!(item.result_reason, Some(ResultReason::GENERAL_FAILURE));
    let text = item.result_message.clone().unwrap();
    assert!(!text.contains("CKR_") && !text.contains("slot"), "{text}");
    let internal = handled.outcomes[0].internal().unwrap();
    assert_eq!(text, format!("internal error; reference {}", internal.reference));
    assert!(
        internal.detail.contains("CKR_DEVICE_ERROR"),
        "{}",
        internal.detail
    );
}

#[tokio::test]
async fn an_unknown_operation_is_refused_with_its_batch_id_echoed() {
    let (ops, _hsm) = operations();
    let alice = Caller::for_tests("alice", "g1");
    let mut unknown = RequestBatchItem::new(
        Operation(0x7777),
        crate::ttlv::Item::structure(crate::kmip::tags::REQUEST_PAYLOAD, Vec::new()),
    );
    unknown.unique_batch_item_id = Some(vec![1, 2]);
    let handled = ops.handle(&alice, &message(vec![unknown])).await;
    let item = &response(&handled).batch_items[0];
    assert_eq!(item.result_reason, Some(ResultReason::OPERATION_NOT_SUPPORTED));
    assert_eq!(item.unique_batch_item_id, Some(vec![1, 2]));
}
