//! Issue 10, item 2 (network part): a connection announcing a 1 MiB message in
//! the 8-byte header and then sending only a few bytes must not make the server
//! hold 1 MiB for it. Many such connections stay far below connections × 1 MiB
//! of resident memory, and a trusted client is served meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::kmip_client::{Client, empty_payload};
use common::vcenter::{Outgoing, V1_1, exchange, expect_success};
use keyward::kmip::Operation;

const SLOW_SENDERS: usize = 200;
const ANNOUNCED: u32 = 1024 * 1024 - 8;

fn rss_mib(server: &TestServer) -> f64 {
    server.proc_status("VmRSS") as f64 / 1024.0
}

#[test]
fn announced_but_unsent_megabytes_do_not_pin_memory() {
    let server = TestServer::start_with(|text| {
        // Long enough that the slow senders are all still reading when measured.
        *text = text.replacen("[server]\n", "[server]\nread_timeout = 120\n", 1);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tls = server.client_tls();
        // Warm up (first handshake, first request) before the baseline.
        let mut warm = Client::connect(server.addr, &tls).await.unwrap();
        dv(&mut warm).await;
        let before = rss_mib(&server);

        let mut senders = Vec::with_capacity(SLOW_SENDERS);
        for _ in 0..SLOW_SENDERS {
            let mut c = Client::connect(server.addr, &tls).await.unwrap();
            // A Request Message header announcing 1 MiB, then 16 bytes of it.
            let mut bytes = vec![0x42, 0x00, 0x78, 0x01];
            bytes.extend_from_slice(&ANNOUNCED.to_be_bytes());
            bytes.extend_from_slice(&[0x42, 0x00, 0x77, 0x01, 0, 0, 0, 0x40, 0x42, 0x00, 0x69, 0x01, 0, 0, 0, 0x20]);
            c.send_bytes(&bytes).await.unwrap();
            senders.push(c);
        }
        // Every sender's header has reached the server once a request sent
        // after them on each connection's peer is answered: the listener reads
        // connections independently, so wait until the server's memory stops
        // moving instead — bounded by the test's own deadline.
        let started = Instant::now();
        let served = tokio::time::timeout(Duration::from_secs(10), async {
            let mut c = Client::connect(server.addr, &tls).await.unwrap();
            dv(&mut c).await;
        })
        .await;
        assert!(served.is_ok(), "a trusted client is served while the slow senders hold their connections");
        let served_in = started.elapsed();
        let mut after = rss_mib(&server);
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            after = after.max(rss_mib(&server));
        }
        let grown = after - before;
        eprintln!(
            "{SLOW_SENDERS} connections announcing 1 MiB: RSS {before:.1} MiB -> {after:.1} MiB (+{grown:.1}); trusted DV in {served_in:?}"
        );
        assert!(
            grown < SLOW_SENDERS as f64 / 4.0,
            "RSS grew {grown:.1} MiB for {SLOW_SENDERS} connections that sent 24 bytes each"
        );
        drop(senders);
        warm.close().await;
    });
}

async fn dv(client: &mut Client) {
    let answers = exchange(
        client,
        V1_1,
        None,
        &[Outgoing {
            operation: Operation::DISCOVER_VERSIONS,
            id: None,
            payload: empty_payload(),
        }],
    )
    .await;
    expect_success(&answers[0]);
}
