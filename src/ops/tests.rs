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

fn operations_with_quota(quota: usize) -> Operations {
    let hsm = Arc::new(FakeHsm {
        broken: AtomicBool::new(false),
    });
    let async_hsm = AsyncHsm::new(hsm as Arc<dyn Hsm>, Duration::from_secs(5));
    let keys =
        KeyService::new(async_hsm, Arc::new(MemoryStore::new()), CrkVersion(1)).with_object_quota(quota);
    Operations::new(Arc::new(keys), ServerInfo::default(), DecodeLimits::default())
}

fn create_with_tag(tag: &str) -> RequestBatchItem {
    let mut item = create_item();
    let mut request = create::Request::from_payload(item.payload.as_ref().unwrap()).unwrap();
    request
        .template_attribute
        .attributes
        .push(Attribute::new("x-Tag", Value::TextString(tag.to_owned())));
    item.payload = Some(request.to_payload());
    item
}

fn locate_item(
    filter: Vec<Attribute>,
    maximum_items: Option<i32>,
    offset_items: Option<i32>,
) -> RequestBatchItem {
    let request = crate::kmip::payload::locate::Request {
        maximum_items,
        offset_items,
        attributes: filter,
        ..Default::default()
    };
    RequestBatchItem::new(Operation::LOCATE, request.to_payload())
}

fn located(item: &crate::kmip::message::ResponseBatchItem) -> Vec<String> {
    assert_eq!(
        item.result_status,
        ResultStatus::SUCCESS,
        "{:?}",
        item.result_message
    );
    crate::kmip::payload::locate::Response::from_payload(item.payload.as_ref().unwrap())
        .unwrap()
        .unique_identifiers
}

#[tokio::test]
async fn an_oversized_template_is_refused_before_any_hsm_call() {
    let (ops, hsm) = operations();
    let alice = Caller::for_tests("alice", "g1");
    // Every HSM call fails: a refusal that reaches the HSM says General Failure.
    hsm.broken.store(true, Ordering::SeqCst);
    let mut item = create_item();
    let mut request = create::Request::from_payload(item.payload.as_ref().unwrap()).unwrap();
    let big = "b".repeat(1024);
    for i in 0..400 {
        request
            .template_attribute
            .attributes
            .push(Attribute::new(format!("x-{i}"), Value::TextString(big.clone())));
    }
    item.payload = Some(request.to_payload());
    let handled = ops.handle(&alice, &message(vec![item])).await;
    let answer = &response(&handled).batch_items[0];
    assert_eq!(
        answer.result_reason,
        Some(ResultReason::INVALID_FIELD),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_full_group_refuses_new_objects_and_other_groups_are_not_affected() {
    let ops = operations_with_quota(2);
    let alice = Caller::for_tests("alice", "g1");
    let handled = ops
        .handle(
            &alice,
            &message(vec![create_item(), create_item(), create_item()]),
        )
        .await;
    let items = response(&handled).batch_items;
    assert_eq!(items[0].result_status, ResultStatus::SUCCESS);
    assert_eq!(items[1].result_status, ResultStatus::SUCCESS);
    assert_eq!(items[2].result_reason, Some(ResultReason::PERMISSION_DENIED));
    let text = items[2].result_message.clone().unwrap();
    assert!(text.contains("maximum of 2 objects"), "{text}");
    let bob = Caller::for_tests("bob", "g2");
    let handled = ops.handle(&bob, &message(vec![create_item()])).await;
    assert_eq!(
        response(&handled).batch_items[0].result_status,
        ResultStatus::SUCCESS
    );
}

#[tokio::test]
async fn locate_answers_the_same_from_the_store_query_and_from_checked_candidates() {
    let (ops, _hsm) = operations();
    let alice = Caller::for_tests("alice", "g1");
    let creates = (0..7)
        .map(|i| create_with_tag(if i % 2 == 0 { "even" } else { "odd" }))
        .collect();
    let handled = ops.handle(&alice, &message(creates)).await;
    let uids: Vec<String> = handled
        .outcomes
        .iter()
        .map(|o| o.unique_identifier.clone().unwrap())
        .collect();
    let mut even: Vec<String> = uids.iter().step_by(2).cloned().collect();
    even.sort();
    let mut order: Option<Vec<String>> = None;
    let tag = Attribute::new("x-Tag", Value::TextString("even".into()));
    // Said whole by the store query (an x- tag) …
    let exact = vec![tag.clone()];
    // … and not (a usage mask is checked on each candidate; every key has 0).
    let checked = vec![tag, Attribute::new("Cryptographic Usage Mask", Value::Integer(0))];
    for filter in [exact, checked] {
        let handled = ops
            .handle(
                &alice,
                &message(vec![
                    locate_item(filter.clone(), None, None),
                    locate_item(filter.clone(), Some(2), Some(1)),
                    locate_item(filter.clone(), Some(0), None),
                ]),
            )
            .await;
        let items = response(&handled).batch_items;
        // In (creation second, uid) order: compare as sets, then page by it.
        let all = located(&items[0]);
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, even, "{filter:?}");
        let order = order.get_or_insert_with(|| all.clone());
        assert_eq!(&all, order, "{filter:?}");
        assert_eq!(located(&items[1]), all[1..3].to_vec(), "{filter:?}");
        assert!(located(&items[2]).is_empty());
        // 1.2: no Located Items.
        let page =
            crate::kmip::payload::locate::Response::from_payload(items[1].payload.as_ref().unwrap()).unwrap();
        assert_eq!(page.located_items, None);
    }
    // Another group finds nothing.
    let bob = Caller::for_tests("bob", "g2");
    let handled = ops
        .handle(&bob, &message(vec![locate_item(Vec::new(), None, None)]))
        .await;
    assert!(located(&response(&handled).batch_items[0]).is_empty());
}

#[tokio::test]
async fn the_response_budget_fails_the_items_that_do_not_fit() {
    let (keys_ops, _hsm) = operations();
    let budget = 16 * 1024;
    let ops = Operations::new(
        Arc::clone(&keys_ops.keys),
        ServerInfo::default(),
        DecodeLimits {
            max_message_bytes: budget,
            ..DecodeLimits::default()
        },
    );
    let alice = Caller::for_tests("alice", "g1");
    let handled = ops
        .handle(&alice, &message((0..30).map(|_| create_item()).collect()))
        .await;
    assert!(
        response(&handled)
            .batch_items
            .iter()
            .all(|i| i.result_status == ResultStatus::SUCCESS)
    );
    // 30 Locates of 30 ids (~1.5 KB each), then a Create: the Locates that do
    // not fit fail, and so does the Create, without running.
    let mut batch: Vec<RequestBatchItem> = (0..30).map(|_| locate_item(Vec::new(), None, None)).collect();
    batch.push(create_item());
    let handled = ops.handle(&alice, &message(batch)).await;
    let bytes = handled.response.as_ref().unwrap().len();
    assert!(bytes <= budget, "{bytes}");
    let items = response(&handled).batch_items;
    assert_eq!(items.len(), 31);
    let ok = items
        .iter()
        .take_while(|i| i.result_status == ResultStatus::SUCCESS)
        .count();
    assert!(ok > 0 && ok < 30, "{ok}");
    assert!(
        items[ok..]
            .iter()
            .all(|i| i.result_reason == Some(ResultReason::RESPONSE_TOO_LARGE))
    );
    let handled = ops
        .handle(&alice, &message(vec![locate_item(Vec::new(), None, None)]))
        .await;
    assert_eq!(
        located(&response(&handled).batch_items[0]).len(),
        30,
        "the Create did not run"
    );
}
