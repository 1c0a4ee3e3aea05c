//! Issue 10, attack 2: batch amplification. A 240 KiB `x-` attribute on one's
//! own key, then 256 Get Attributes items for it in one small request, used to
//! make the server build a ~61 MB response whole in memory (8 connections took
//! RSS past 1 GiB). The response budget now stops the batch once it is spent:
//! the item that does not fit fails with Response Too Large.
//!
//! Figures are printed (for the report); the asserts are on sizes and reasons.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::TestServer;
use common::admin::runtime;
use common::kmip_client::Client;
use common::vcenter::{Vcenter, add_attribute_payload, get_attributes_payload};
use keyward::kmip::message::{ProtocolVersion, RequestBatchItem, RequestHeader, RequestMessage};
use keyward::kmip::{BatchErrorContinuationOption, Operation, ResultReason, ResultStatus};

const BLOB: usize = 240 * 1024;

fn request(uid: &str, items: usize, max_response: Option<i32>, keep_going: bool) -> RequestMessage {
    let mut header = RequestHeader::new(ProtocolVersion::V1_1, items as i32);
    header.maximum_response_size = max_response;
    if keep_going {
        header.batch_error_continuation_option = Some(BatchErrorContinuationOption::CONTINUE);
    }
    RequestMessage {
        header,
        batch_items: (0..items)
            .map(|_| RequestBatchItem::new(Operation::GET_ATTRIBUTES, get_attributes_payload(uid, "x-blob")))
            .collect(),
        unknown: Vec::new(),
    }
}

#[test]
fn a_batch_of_large_get_attributes_stays_within_the_response_budget() {
    let server = TestServer::start();
    let rt = runtime();
    let vc = Vcenter::new(server.addr, server.client_tls());
    let uid = rt.block_on(vc.create());
    let blob = "a".repeat(BLOB);
    let added = rt.block_on(vc.step(vec![(
        Operation::ADD_ATTRIBUTE,
        add_attribute_payload(&uid, "x-blob", &blob),
    )]));
    assert_eq!(
        added[0].result_status,
        ResultStatus::SUCCESS,
        "{:?}",
        added[0].result_message
    );

    let rss_before = server.proc_status("VmRSS");
    let hwm_before = server.proc_status("VmHWM");
    let wire = keyward::ttlv::encode_to_vec(&request(&uid, 256, None, true).to_item()).len();
    // Eight connections at once, each asking for 256 copies.
    let tls = server.client_tls();
    let answers: Vec<(usize, Vec<ResultReason>, usize)> = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let tls = tls.clone();
            let addr = server.addr;
            let uid = uid.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr, &tls).await.unwrap();
                let bytes = keyward::ttlv::encode_to_vec(&request(&uid, 256, None, true).to_item());
                let response = client.round_trip_bytes(&bytes).await.unwrap();
                let tree = keyward::ttlv::decode_with(
                    &response,
                    &keyward::ttlv::DecodeLimits {
                        max_message_bytes: keyward::limits::MAX_MESSAGE_BYTES_CEILING,
                        ..Default::default()
                    },
                )
                .unwrap();
                let message = keyward::kmip::message::ResponseMessage::from_item(&tree).unwrap();
                let ok = message
                    .batch_items
                    .iter()
                    .filter(|i| i.result_status == ResultStatus::SUCCESS)
                    .count();
                let reasons = message
                    .batch_items
                    .iter()
                    .filter_map(|i| i.result_reason)
                    .collect();
                (response.len(), reasons, ok)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let rss_after = server.proc_status("VmRSS");
    let hwm_after = server.proc_status("VmHWM");
    eprintln!(
        "request {wire} bytes; responses {:?} bytes; RSS {rss_before} -> {rss_after} kB, peak {hwm_before} -> {hwm_after} kB",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    for (len, reasons, ok) in &answers {
        assert!(
            *len <= keyward::limits::MAX_MESSAGE_BYTES,
            "response of {len} bytes"
        );
        assert!(*ok >= 1, "the items that fit are answered");
        assert!(*ok < 256);
        assert_eq!(reasons.len(), 256 - ok, "every other item failed");
        assert!(
            reasons.iter().all(|r| *r == ResultReason::RESPONSE_TOO_LARGE),
            "{reasons:?}"
        );
    }
    // Eight 1 MiB budgets and their transients, not eight 61 MB responses.
    let growth_kib = hwm_after.saturating_sub(hwm_before);
    assert!(growth_kib < 192 * 1024, "peak RSS grew by {growth_kib} KiB");

    // Another client is still served.
    let other = rt.block_on(vc.create());
    assert!(!other.is_empty());
}

#[test]
fn the_clients_maximum_response_size_is_enforced_while_building() {
    let server = TestServer::start();
    let rt = runtime();
    let vc = Vcenter::new(server.addr, server.client_tls());
    let uid = rt.block_on(vc.create());
    let blob = "a".repeat(BLOB);
    rt.block_on(vc.step(vec![(
        Operation::ADD_ATTRIBUTE,
        add_attribute_payload(&uid, "x-blob", &blob),
    )]));
    // Room for one copy, not two: the first item answers, the others fail.
    let max = (BLOB + BLOB / 2) as i32;
    let message = rt.block_on(async {
        let mut client = Client::connect(server.addr, &server.client_tls()).await.unwrap();
        client.send(&request(&uid, 4, Some(max), true)).await.unwrap()
    });
    let statuses: Vec<_> = message
        .batch_items
        .iter()
        .map(|i| (i.result_status, i.result_reason))
        .collect();
    eprintln!("{statuses:?}");
    assert_eq!(statuses[0], (ResultStatus::SUCCESS, None));
    for s in &statuses[1..] {
        assert_eq!(
            *s,
            (
                ResultStatus::OPERATION_FAILED,
                Some(ResultReason::RESPONSE_TOO_LARGE)
            )
        );
    }
    // Stop (the default) ends the batch at the item that did not fit.
    let message = rt.block_on(async {
        let mut client = Client::connect(server.addr, &server.client_tls()).await.unwrap();
        client.send(&request(&uid, 4, Some(max), false)).await.unwrap()
    });
    assert_eq!(message.batch_items.len(), 2);
    assert_eq!(
        message.batch_items[1].result_reason,
        Some(ResultReason::RESPONSE_TOO_LARGE)
    );
}
