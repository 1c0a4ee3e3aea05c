//! Issue 10, attack 1: attribute-name checks that cost quadratic CPU. One Get
//! Attributes naming ~60,000 distinct attributes, or one Create whose template
//! holds 24,000 `x-` attributes, used to keep the executor busy for seconds
//! before the object was even looked up. Both are now refused at parse time
//! (Invalid Field) and the server goes on serving another client.
//!
//! Timings are printed (for the report), never asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Instant;

use common::TestServer;
use common::admin::{call, failure, runtime};
use common::vcenter::{Vcenter, create_payload};
use keyward::kmip::{CryptographicAlgorithm, ObjectType, Operation, ResultReason, tags};
use keyward::limits;
use keyward::ttlv::{Item, Value};

/// User plus system CPU seconds the server process has used so far.
fn cpu_seconds(server: &TestServer) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).unwrap();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
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

fn create_with(extra: impl Iterator<Item = Item>) -> Item {
    let mut template = vec![
        attribute(
            "Cryptographic Algorithm",
            Value::Enumeration(CryptographicAlgorithm::AES.0),
        ),
        attribute("Cryptographic Length", Value::Integer(256)),
    ];
    template.extend(extra);
    Item::structure(
        tags::REQUEST_PAYLOAD,
        vec![
            Item::new(tags::OBJECT_TYPE, Value::Enumeration(ObjectType::SYMMETRIC_KEY.0)),
            Item::structure(tags::TEMPLATE_ATTRIBUTE, template),
        ],
    )
}

/// Another client is still served: a vCenter-style Create on a fresh connection.
fn still_serves(server: &TestServer) {
    let rt = runtime();
    let vc = Vcenter::new(server.addr, server.client_tls());
    let uid = rt.block_on(vc.create());
    assert!(!uid.is_empty());
    let answer = rt.block_on(call(
        server.addr,
        &server.client_tls(),
        None,
        Operation::CREATE,
        create_payload(),
    ));
    assert_eq!(answer.result_status, keyward::kmip::ResultStatus::SUCCESS);
}

#[test]
fn sixty_thousand_attribute_names_are_refused_at_parse_time() {
    let server = TestServer::start();
    let names = 60_000;
    let mut payload = vec![text(
        tags::UNIQUE_IDENTIFIER,
        "00000000-0000-4000-8000-000000000000",
    )];
    payload.extend((0..names).map(|i| text(tags::ATTRIBUTE_NAME, &format!("x-{i:05}"))));
    let payload = Item::structure(tags::REQUEST_PAYLOAD, payload);
    let rt = runtime();
    let cpu = cpu_seconds(&server);
    let started = Instant::now();
    let answer = rt.block_on(call(
        server.addr,
        &server.client_tls(),
        None,
        Operation::GET_ATTRIBUTES,
        payload,
    ));
    let cpu = cpu_seconds(&server) - cpu;
    eprintln!(
        "Get Attributes with {names} names: {:?} wall, {cpu:.2} s server CPU, {:?} {:?}",
        started.elapsed(),
        answer.result_reason,
        answer.result_message
    );
    assert_eq!(
        failure(&answer),
        ResultReason::INVALID_FIELD,
        "{:?}",
        answer.result_message
    );
    let message = answer.result_message.unwrap_or_default();
    assert!(
        message.contains(&limits::MAX_ATTRIBUTE_NAMES_PER_REQUEST.to_string()),
        "{message}"
    );
    still_serves(&server);
}

#[test]
fn templates_of_24000_attributes_are_refused_before_any_hsm_work() {
    let server = TestServer::start();
    let count = 24_000;
    let payload =
        create_with((0..count).map(|i| attribute(&format!("x-{i:05}"), Value::TextString("v".into()))));
    let rt = runtime();
    let cpu = cpu_seconds(&server);
    let started = Instant::now();
    let answer = rt.block_on(call(
        server.addr,
        &server.client_tls(),
        None,
        Operation::CREATE,
        payload,
    ));
    let cpu = cpu_seconds(&server) - cpu;
    eprintln!(
        "Create with {count} x- attributes: {:?} wall, {cpu:.2} s server CPU, {:?} {:?}",
        started.elapsed(),
        answer.result_reason,
        answer.result_message
    );
    assert_eq!(
        failure(&answer),
        ResultReason::INVALID_FIELD,
        "{:?}",
        answer.result_message
    );
    // Refused by the parse-time cap, not by the object bound after the seal.
    let message = answer.result_message.unwrap_or_default();
    assert!(
        message.contains(&format!("at most {}", limits::MAX_ATTRIBUTES_PER_TEMPLATE))
            && message.contains("Template"),
        "{message}"
    );

    // Under the count cap but over the byte bound: refused too, before the HSM
    // is asked for random bytes (the order is checked by the unit tests in ops).
    let big = "b".repeat(1024);
    let payload =
        create_with((0..400).map(|i| attribute(&format!("x-{i:03}"), Value::TextString(big.clone()))));
    let answer = rt.block_on(call(
        server.addr,
        &server.client_tls(),
        None,
        Operation::CREATE,
        payload,
    ));
    eprintln!(
        "Create with 400 KiB of x- attributes: {:?} {:?}",
        answer.result_reason, answer.result_message
    );
    assert_eq!(
        failure(&answer),
        ResultReason::INVALID_FIELD,
        "{:?}",
        answer.result_message
    );
    still_serves(&server);
}
