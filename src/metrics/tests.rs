use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// The value of the sample line starting with `series ` (name and labels as
/// exposed), or `None` when there is no such line.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_request_is_counted_and_timed_by_operation_and_reason() {
    let metrics = Metrics::new();
    metrics.record_request("Get", "Success", Duration::from_micros(300));
    metrics.record_request("Get", "Success", Duration::from_millis(2));
    metrics.record_request("Get", "ItemNotFound", Duration::from_micros(50));
    let text = metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"keyward_requests_total{operation="Get",reason="Success"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"keyward_requests_total{operation="Get",reason="ItemNotFound"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"keyward_request_duration_seconds_bucket{operation="Get",reason="Success",le="0.0005"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"keyward_request_duration_seconds_count{operation="Get",reason="Success"}"#
        ),
        Some(2.0)
    );
    assert!(text.contains("# TYPE keyward_requests_total counter"));
    assert!(text.contains("# TYPE keyward_request_duration_seconds histogram"));
}

#[test]
fn connections_handshakes_and_refusals() {
    let metrics = Metrics::new();
    let first = metrics.connection_opened();
    let second = metrics.connection_opened();
    assert_eq!(sample(&metrics.encode(), "keyward_connections_open"), Some(2.0));
    drop(first);
    assert_eq!(sample(&metrics.encode(), "keyward_connections_open"), Some(1.0));
    drop(second);
    metrics.connection_refused("limit");
    metrics.tls_handshake("ok", Duration::from_millis(3));
    metrics.tls_handshake("failed", Duration::from_millis(1));
    let text = metrics.encode();
    assert_eq!(sample(&text, "keyward_connections_open"), Some(0.0));
    assert_eq!(
        sample(&text, r#"keyward_connections_refused_total{reason="limit"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"keyward_tls_handshakes_total{result="ok"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "keyward_tls_handshake_duration_seconds_count"),
        Some(2.0)
    );
}

#[test]
fn hsm_and_store_instruments_record_into_the_shared_metrics() {
    let metrics = Metrics::new();
    let hsm = metrics.hsm_instruments();
    let store = metrics.store_instruments();
    assert_eq!(metrics.readiness(), Err("HSM and store unavailable".to_owned()));
    hsm.observe_call("unseal", Duration::from_micros(40), true);
    assert_eq!(metrics.readiness(), Err("store unavailable".to_owned()));
    store.observe_commit(Duration::from_millis(4), 17, true);
    assert_eq!(metrics.readiness(), Ok(()));
    hsm.observe_call("seal", Duration::from_secs(2), false);
    assert_eq!(metrics.readiness(), Err("HSM unavailable".to_owned()));
    let text = metrics.encode();
    assert_eq!(sample(&text, "keyward_hsm_up"), Some(0.0));
    assert_eq!(sample(&text, "keyward_store_up"), Some(1.0));
    assert_eq!(
        sample(&text, r#"keyward_hsm_call_duration_seconds_count{call="unseal"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"keyward_store_commit_batch_size_bucket{le="16"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"keyward_store_commit_batch_size_bucket{le="32"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "keyward_store_commit_duration_seconds_count"),
        Some(1.0)
    );
}

#[test]
fn keys_by_state_start_from_a_count_and_move_incrementally() {
    let metrics = Metrics::new();
    metrics.set_keys_by_state([("Active", 3), ("PreActive", 1)]);
    metrics.keys_state_changed(None, Some("PreActive"));
    metrics.keys_state_changed(Some("PreActive"), Some("Active"));
    metrics.keys_state_changed(Some("Active"), Some("Deactivated"));
    metrics.keys_state_changed(Some("Deactivated"), None);
    metrics.keys_state_changed(Some("Active"), Some("Active"));
    metrics.set_crk_version(4);
    let text = metrics.encode();
    assert_eq!(sample(&text, r#"keyward_keys{state="Active"}"#), Some(3.0));
    assert_eq!(sample(&text, r#"keyward_keys{state="PreActive"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"keyward_keys{state="Deactivated"}"#), Some(0.0));
    assert_eq!(sample(&text, "keyward_crk_version"), Some(4.0));

    metrics.set_keys_by_state([("Active", 5)]);
    let text = metrics.encode();
    assert_eq!(sample(&text, r#"keyward_keys{state="Active"}"#), Some(5.0));
    assert_eq!(sample(&text, r#"keyward_keys{state="PreActive"}"#), None);
}

#[test]
fn the_audit_queue_is_read_when_scraped() {
    let metrics = Metrics::new();
    assert_eq!(sample(&metrics.encode(), "keyward_audit_queue_depth"), Some(0.0));
    metrics.watch_audit_queue(|| 7, || 3);
    let text = metrics.encode();
    assert_eq!(sample(&text, "keyward_audit_queue_depth"), Some(7.0));
    assert_eq!(sample(&text, "keyward_audit_dropped_total"), Some(3.0));
    assert!(text.contains("# TYPE keyward_audit_dropped_total counter"));
}

/// One HTTP/1.1 exchange; the server closes after answering.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "current_thread")]
async fn a_scrape_sees_the_counter_move() {
    let metrics = Metrics::new();
    let server = serve("127.0.0.1:0".parse().unwrap(), metrics.clone(), {
        let metrics = metrics.clone();
        move || metrics.readiness()
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    let series = r#"keyward_requests_total{operation="Create",reason="Success"}"#;

    let (status, head, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4")
    );
    assert_eq!(sample(&body, series), None);

    metrics.record_request("Create", "Success", Duration::from_micros(900));
    let (_, _, body) = get(addr, "/metrics").await;
    assert_eq!(sample(&body, series), Some(1.0));
    metrics.record_request("Create", "Success", Duration::from_micros(900));
    let (_, _, body) = get(addr, "/metrics").await;
    assert_eq!(sample(&body, series), Some(2.0));
}

#[tokio::test(flavor = "current_thread")]
async fn readiness_flips_between_200_and_503() {
    let metrics = Metrics::new();
    let server = serve("127.0.0.1:0".parse().unwrap(), metrics.clone(), {
        let metrics = metrics.clone();
        move || metrics.readiness()
    })
    .await
    .unwrap();
    let addr = server.local_addr();

    assert_eq!(get(addr, "/health/live").await.0, 200);
    let (status, _, body) = get(addr, "/health/ready").await;
    assert_eq!((status, body.as_str()), (503, "HSM and store unavailable\n"));

    metrics.set_hsm_available(true);
    metrics.set_store_available(true);
    let (status, _, body) = get(addr, "/health/ready").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    metrics.set_store_available(false);
    let (status, _, body) = get(addr, "/health/ready").await;
    assert_eq!((status, body.as_str()), (503, "store unavailable\n"));
}

#[tokio::test(flavor = "current_thread")]
async fn unknown_paths_methods_and_oversized_heads_are_refused() {
    let metrics = Metrics::new();
    let server = serve("127.0.0.1:0".parse().unwrap(), metrics, || Ok(()))
        .await
        .unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/").await.0, 404);
    assert_eq!(get(addr, "/metrics/../admin").await.0, 404);

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    assert!(String::from_utf8(raw).unwrap().starts_with("HTTP/1.1 404"));

    // A head larger than the bound is refused, not buffered.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(2 * crate::limits::METRICS_MAX_REQUEST_HEAD_BYTES)
    );
    // The server may close while we are still writing; that is a refusal too.
    let _ = stream.write_all(big.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let answer = String::from_utf8_lossy(&raw);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
}

/// The Grafana dashboard queries only metrics that exist (a rename here must
/// update `systemd/grafana-dashboard.json`).
#[test]
fn the_dashboard_uses_exposed_metric_names() {
    let dashboard = include_str!("../../systemd/grafana-dashboard.json");
    let parsed: serde_json::Value = serde_json::from_str(dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 10);

    let metrics = Metrics::new();
    metrics.record_request("Get", "Success", Duration::from_micros(1));
    metrics.connection_refused("limit");
    metrics.tls_handshake("ok", Duration::from_micros(1));
    metrics
        .hsm_instruments()
        .observe_call("seal", Duration::from_micros(1), true);
    metrics.keys_state_changed(None, Some("Active"));
    let exposed: std::collections::BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect();

    let mut used = std::collections::BTreeSet::new();
    let mut rest = dashboard;
    while let Some(at) = rest.find("keyward_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        if name == "keyward_" {
            continue;
        }
        used.insert(name);
    }
    assert!(used.len() >= 12, "{used:?}");
    for name in &used {
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| exposed.contains(*f)))
            .unwrap_or(name);
        assert!(
            exposed.contains(family),
            "dashboard uses {name}, not exposed; exposed: {exposed:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let metrics = Metrics::new();
    let server = serve("127.0.0.1:0".parse().unwrap(), metrics, || Ok(()))
        .await
        .unwrap();
    let addr = server.local_addr();
    // Silent clients holding every slot.
    let mut held = Vec::new();
    for _ in 0..crate::limits::METRICS_MAX_CONNECTIONS {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // One more: closed without an answer although its request is complete.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut raw = Vec::new();
    let _ = extra.read_to_end(&mut raw).await;
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));

    // The held connections were being served all along.
    let mut first = held.remove(0);
    first
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    first.read_to_end(&mut raw).await.unwrap();
    assert!(String::from_utf8(raw).unwrap().starts_with("HTTP/1.1 200"));
}
