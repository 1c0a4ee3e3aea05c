//! Removing a client applies to its connections that are already open: the next
//! request on such a connection is refused, not only the next handshake.

use crate::common;

use std::time::{Duration, Instant};

use common::kmip_client::empty_payload;
use keyward::kmip::Operation;

#[test]
fn a_removed_client_loses_its_open_connection() {
    let server = common::TestServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut open = server.client().await;
        let answer = open
            .call(Operation::DISCOVER_VERSIONS, empty_payload())
            .await
            .unwrap();
        assert!(answer.payload.is_some());

        let out = server.keyward(&[
            "clients",
            "remove",
            "kmip-client",
            "--config",
            server.config().to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        // The server notices the trust change within its 2 s poll; until then the
        // connection may still be served. After it, the next request is refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match open.call(Operation::DISCOVER_VERSIONS, empty_payload()).await {
                Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok(_) => panic!("the removed client is still served on its open connection"),
                Err(_) => break,
            }
        }
    });
}
