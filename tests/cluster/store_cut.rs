//! A node cut from the store: its writes are refused at once with "key store
//! unavailable; retry", the other nodes keep serving, and it serves again
//! once the store is back, without a restart. Reads of keys it read before
//! may be served from its sealed cache within the `read_grace` configured in
//! `[cluster]`, never beyond.
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use crate::common::bao_cluster::BaoCluster;
use crate::common::cluster::KeywardCluster;
use crate::kmip;

#[test]
fn a_node_cut_from_the_store_refuses_writes_promptly_and_recovers_without_restart() {
    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 2, "cluster-cut", "");
    let rt = crate::common::admin::multi_thread_runtime();
    let tls = nodes.tls();
    let (a, b) = (nodes.server(0).addr, nodes.server(1).addr);
    rt.block_on(async {
        let before = kmip::create(a, &tls).await.unwrap();
        nodes.proxy(0).cut();
        let started = Instant::now();
        let err = kmip::create(a, &tls).await.unwrap_err();
        let refused_after = started.elapsed();
        assert!(err.message.contains("key store unavailable; retry"), "{err:?}");
        // The store deadline is 5 s (timeout = 5): refused within it, not hung.
        assert!(refused_after < Duration::from_secs(10), "{refused_after:?}");
        // The other node is not affected.
        let other = kmip::create(b, &tls).await.unwrap();
        assert_eq!(kmip::get(b, &tls, &before).await.unwrap().len(), 32);
        // A key this node never read is not served from anywhere else.
        let err = kmip::get(a, &tls, &other).await.unwrap_err();
        assert!(err.message.contains("retry"), "{err:?}");

        nodes.proxy(0).pass();
        let recovered = Instant::now();
        let uid = kmip::until("node A writing again", Duration::from_secs(30), || async {
            kmip::create(a, &tls).await.ok()
        })
        .await;
        assert_eq!(
            kmip::get(b, &tls, &uid).await.unwrap(),
            kmip::get(a, &tls, &uid).await.unwrap()
        );
        eprintln!(
            "cluster: store cut: Create refused after {refused_after:?}; \
             writes again {:?} after the store came back (no restart)",
            recovered.elapsed()
        );
    });
}

/// The node's health (`/health/ready`: status and body) and its
/// `store_reach` metric lines.
async fn standing(node: &crate::common::TestServer) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = node.metrics_addr.expect("the dev config serves metrics");
    let fetch = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    };
    let (status, ready) = fetch("/health/ready").await;
    let (_, metrics) = fetch("/metrics").await;
    let reach = metrics
        .lines()
        .filter(|l| l.contains("store_reach{") && l.ends_with(" 1"))
        .collect::<Vec<_>>()
        .join(" ");
    (status, ready, reach)
}

/// Waits until the node's health and metrics show `state` (up, grace, down).
async fn wait_standing(node: &crate::common::TestServer, state: &str, ready_ok: bool) -> String {
    kmip::until(
        &format!("health showing the store {state}"),
        Duration::from_secs(20),
        || async {
            let (status, ready, reach) = standing(node).await;
            (reach.contains(&format!("state=\"{state}\"")) && (status == 200) == ready_ok)
                .then(|| format!("{status} {} | {reach}", ready.trim()))
        },
    )
    .await
}

/// The `[cluster]` section: a sealed cache serves reads of keys read before
/// the cut, for `read_grace` seconds and no longer; health, metrics and the
/// audit trail say where the node stands.
#[test]
fn a_node_cut_from_the_store_serves_keys_it_read_within_read_grace_only() {
    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 1, "cluster-grace", "sync_interval = 2\nread_grace = 8\n");
    let rt = crate::common::admin::multi_thread_runtime();
    let tls = nodes.tls();
    let a = nodes.server(0).addr;
    rt.block_on(async {
        let read_before = kmip::create(a, &tls).await.unwrap();
        let bytes = kmip::get(a, &tls, &read_before).await.unwrap();
        nodes.proxy(0).cut();
        let cut_at = Instant::now();
        // Within the grace period: served from the sealed cache, same bytes.
        assert_eq!(kmip::get(a, &tls, &read_before).await.unwrap(), bytes);
        assert!(
            cut_at.elapsed() < Duration::from_secs(8),
            "too slow to test the grace"
        );
        // Writes are still refused.
        let err = kmip::create(a, &tls).await.unwrap_err();
        assert!(err.message.contains("retry"), "{err:?}");
        let in_grace = wait_standing(nodes.server(0), "grace", false).await;
        assert!(in_grace.contains("sealed copies"), "{in_grace}");
        // Polled until refused: never served beyond the grace period.
        let refused = kmip::until("the grace period ending", Duration::from_secs(30), || async {
            kmip::get(a, &tls, &read_before).await.err()
        })
        .await;
        let ended_after = cut_at.elapsed();
        assert!(refused.message.contains("retry"), "{refused:?}");
        assert!(
            ended_after >= Duration::from_secs(6) && ended_after <= Duration::from_secs(16),
            "read_grace = 8 s, cache reads refused after {ended_after:?}"
        );
        let down = wait_standing(nodes.server(0), "down", false).await;
        assert!(down.contains("beyond the read grace"), "{down}");
        nodes.proxy(0).pass();
        let got = kmip::until(
            "reads again after the store is back",
            Duration::from_secs(30),
            || async { kmip::get(a, &tls, &read_before).await.ok() },
        )
        .await;
        assert_eq!(got, bytes);
        wait_standing(nodes.server(0), "up", true).await;
        eprintln!(
            "cluster: sealed-cache reads during a store cut ended {ended_after:?} after the cut \
             (read_grace 8 s); health: {in_grace} / {down}"
        );
    });
    nodes.audit_once(0, "the store outage and its end", |text| {
        text.contains("StoreUnreachable") && text.contains("StoreReachable")
    });
}
