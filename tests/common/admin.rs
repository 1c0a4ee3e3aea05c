//! Helpers for the administration tests (groups, client passwords, key
//! inventory): run `keyward` against a [`TestServer`], issue clients into
//! groups, and speak KMIP as one of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::kmip_client::{Client, ClientTls};
use keyward::kmip::message::ResponseBatchItem;
use keyward::kmip::{Operation, ResultReason, ResultStatus, RevocationReasonCode, tags};
use keyward::ttlv::{Item, Value};

use super::TestServer;
use super::vcenter::{Outgoing, V1_1, exchange};

/// Adds an audit file (`audit.log` beside the configuration) to `keyward.toml`.
pub(crate) fn with_audit_file(text: &mut String) {
    text.push_str("\n[audit]\npath = \"audit.log\"\n");
}

/// Runs `keyward ARGS --config <env>`: (success, stdout, stderr).
pub(crate) fn kw(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let config = server.config();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    let out = server.keyward(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn kw_ok(server: &TestServer, args: &[&str]) -> String {
    let (ok, stdout, stderr) = kw(server, args);
    assert!(ok, "keyward {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Runs a command that must fail with one error line; returns that line.
pub(crate) fn kw_err(server: &TestServer, args: &[&str]) -> String {
    let (ok, stdout, stderr) = kw(server, args);
    assert!(!ok, "keyward {args:?} should fail:\n{stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("audit ")).collect();
    assert_eq!(lines.len(), 1, "one error line for {args:?}: {stderr}");
    lines[0].to_owned()
}

/// `keyward clients issue NAME --group G [extra]`; returns the client's TLS settings
/// once the running server trusts it.
pub(crate) fn issue_client(server: &TestServer, name: &str, group: &str, extra: &[&str]) -> ClientTls {
    let out = server.path("issued");
    std::fs::create_dir_all(&out).unwrap();
    let mut args = vec![
        "clients",
        "issue",
        name,
        "--group",
        group,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kw_ok(server, &args);
    let tls = ClientTls::from_pem_files(
        &server.path("pki/ca.pem"),
        &out.join(format!("{name}.pem")),
        &out.join(format!("{name}.key")),
    )
    .unwrap();
    wait_trusted(server.addr, &tls);
    tls
}

/// Waits (up to 10 s) until the server answers Discover Versions for `tls`.
pub(crate) fn wait_trusted(addr: SocketAddr, tls: &ClientTls) {
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = rt.block_on(async {
            let Ok(mut c) = Client::connect(addr, tls).await else {
                return false;
            };
            c.call(Operation::DISCOVER_VERSIONS, super::kmip_client::empty_payload())
                .await
                .is_ok_and(|r| r.result_status == ResultStatus::SUCCESS)
        });
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "the server never trusted the client");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One KMIP request on its own connection (after vCenter's Discover Versions).
pub(crate) async fn call(
    addr: SocketAddr,
    tls: &ClientTls,
    credential: Option<(&str, &str)>,
    operation: Operation,
    payload: Item,
) -> ResponseBatchItem {
    let mut client = Client::connect(addr, tls).await.unwrap();
    let answer = exchange(
        &mut client,
        V1_1,
        credential,
        &[Outgoing {
            operation,
            id: Some(b"QLKC\x01\x00\x00\x00".to_vec()),
            payload,
        }],
    )
    .await
    .remove(0);
    client.close().await;
    answer
}

/// The result reason of a failed item (panics on success).
pub(crate) fn failure(item: &ResponseBatchItem) -> ResultReason {
    assert_eq!(
        item.result_status,
        ResultStatus::OPERATION_FAILED,
        "{:?} should have failed",
        item.operation
    );
    item.result_reason.unwrap()
}

fn text(tag: keyward::ttlv::Tag, v: &str) -> Item {
    Item::new(tag, Value::TextString(v.to_owned()))
}

pub(crate) fn revoke_payload(uid: &str, code: RevocationReasonCode) -> Item {
    Item::structure(
        tags::REQUEST_PAYLOAD,
        vec![
            text(tags::UNIQUE_IDENTIFIER, uid),
            Item::structure(
                tags::REVOCATION_REASON,
                vec![Item::new(
                    tags::REVOCATION_REASON_CODE,
                    Value::Enumeration(code.0),
                )],
            ),
        ],
    )
}

/// Locate by one text attribute (an `x-` tag).
pub(crate) fn locate_payload(name: &str, value: &str) -> Item {
    Item::structure(
        tags::REQUEST_PAYLOAD,
        vec![Item::structure(
            tags::ATTRIBUTE,
            vec![
                text(tags::ATTRIBUTE_NAME, name),
                text(tags::ATTRIBUTE_VALUE, value),
            ],
        )],
    )
}

/// The Unique Identifiers a Locate answered.
pub(crate) fn located(item: &ResponseBatchItem) -> Vec<String> {
    assert_eq!(
        item.result_status,
        ResultStatus::SUCCESS,
        "{:?}",
        item.result_message
    );
    item.payload
        .as_ref()
        .unwrap()
        .children_with(tags::UNIQUE_IDENTIFIER)
        .filter_map(Item::as_text)
        .map(str::to_owned)
        .collect()
}

/// A command's standard output and standard error, as text.
pub(crate) fn output_text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A one-line error and a non-zero exit.
pub(crate) fn assert_refused(out: &std::process::Output, needle: &str) {
    let (stdout, stderr) = output_text(out);
    assert!(!out.status.success(), "expected a refusal, got success: {stdout}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
}

/// A command that must succeed; its stdout and stderr.
pub(crate) fn assert_ok(out: &std::process::Output) -> (String, String) {
    let (stdout, stderr) = output_text(out);
    assert!(out.status.success(), "failed: {stdout}{stderr}");
    (stdout, stderr)
}

/// A multi-threaded runtime for tests that drive load while commands run.
pub(crate) fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The server's audit file once its text satisfies `wanted` (the server writes
/// its events from a queue, after it answered): polled until then, at most
/// 10 s, then the test fails naming `what`.
pub(crate) fn audit_file_once(server: &TestServer, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(server.path("audit.log")).unwrap_or_default();
        if wanted(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} in the audit file:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
