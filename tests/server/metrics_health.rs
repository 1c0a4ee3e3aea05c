//! The metrics and health listener of a running server (`[metrics] listen`,
//! loopback in the development config): counters move with the KMIP traffic,
//! keys are counted by state as they change, and readiness follows the HSM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::TestServer;
use common::admin::runtime;
use common::vcenter::Vcenter;

/// One HTTP/1.1 GET; the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample `name{labels}` (labels as exposed, in order), if present.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

#[test]
fn counters_move_with_traffic_and_keys_are_counted_by_state() {
    let server = TestServer::start();
    let metrics = server.metrics_addr.expect("the dev config serves metrics");
    let (status, body) = http_get(metrics, "/health/live");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(metrics, "/health/ready");
    assert_eq!(status, 200, "ready once serving with HSM and store: {body}");

    let (_, before) = http_get(metrics, "/metrics");
    let creates = |text: &str| {
        sample(
            text,
            r#"keyward_requests_total{operation="Create",reason="Success"}"#,
        )
        .unwrap_or(0.0)
    };
    assert_eq!(creates(&before), 0.0, "{before}");

    let rt = runtime();
    let vc = Vcenter::new(server.addr, server.client_tls());
    let first = rt.block_on(vc.create());
    let _second = rt.block_on(vc.create());
    rt.block_on(vc.activate(&first));

    let (status, after) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(creates(&after), 2.0, "{after}");
    assert_eq!(
        sample(
            &after,
            r#"keyward_requests_total{operation="Activate",reason="Success"}"#
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, r#"keyward_keys{state="Active"}"#),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, r#"keyward_keys{state="PreActive"}"#),
        Some(1.0),
        "{after}"
    );
    assert_eq!(sample(&after, "keyward_crk_version"), Some(1.0), "{after}");
    assert_eq!(sample(&after, "keyward_hsm_up"), Some(1.0), "{after}");
    assert_eq!(sample(&after, "keyward_store_up"), Some(1.0), "{after}");
    assert!(
        sample(&after, r#"keyward_tls_handshakes_total{result="ok"}"#).unwrap_or(0.0) >= 3.0,
        "{after}"
    );
    // A commit was timed for each Create and the Activate.
    assert!(
        sample(&after, "keyward_store_commit_duration_seconds_count").unwrap_or(0.0) >= 3.0,
        "{after}"
    );
    let (status, _) = http_get(metrics, "/nothing-here");
    assert_eq!(status, 404);
}

#[test]
fn the_keys_gauge_starts_from_the_store_after_a_restart() {
    let mut server = TestServer::start();
    let rt = runtime();
    let vc = Vcenter::new(server.addr, server.client_tls());
    let uid = rt.block_on(vc.create());
    rt.block_on(vc.activate(&uid));
    rt.block_on(vc.create());
    server.terminate();
    server.spawn();
    let metrics = server.metrics_addr.unwrap();
    let (_, text) = http_get(metrics, "/metrics");
    assert_eq!(
        sample(&text, r#"keyward_keys{state="Active"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"keyward_keys{state="PreActive"}"#),
        Some(1.0),
        "{text}"
    );
}
