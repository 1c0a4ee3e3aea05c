//! Issue 10, item 5: one client sending wrong passwords on many connections at
//! once must not make another client's correct login wait behind them; and a
//! client that keeps failing is refused without running the slow hash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::admin::{failure, issue_client};
use common::kmip_client::{Client, ClientTls, empty_payload};
use common::vcenter::{Outgoing, V1_1, exchange, expect_success};
use keyward::kmip::message::ResponseBatchItem;
use keyward::kmip::{Operation, ResultReason};

const WRONG_LOGINS: usize = 40;

fn password_client(server: &TestServer, name: &str, user: &str, password: &str) -> ClientTls {
    let file = server.path(&format!("{name}.password"));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    issue_client(
        server,
        name,
        name,
        &["--username", user, "--password-file", file.to_str().unwrap()],
    )
}

/// Discover Versions carrying a credential (which is then checked).
async fn login(addr: std::net::SocketAddr, tls: &ClientTls, user: &str, password: &str) -> ResponseBatchItem {
    let mut client = Client::connect(addr, tls).await.unwrap();
    exchange(
        &mut client,
        V1_1,
        Some((user, password)),
        &[Outgoing {
            operation: Operation::DISCOVER_VERSIONS,
            id: None,
            payload: empty_payload(),
        }],
    )
    .await
    .remove(0)
}

#[test]
fn wrong_passwords_of_one_client_do_not_queue_another_clients_login() {
    // All test clients share 127.0.0.1: let the attacker's connections handshake at once.
    let server = TestServer::start_with(|text| {
        *text = text.replacen("[server]\n", "[server]\nmax_handshakes_per_source = 200\n", 1);
    });
    let attacker = password_client(&server, "attacker", "mallory", "the-right-one-nobody-sends");
    let victim = password_client(&server, "victim", "alice", "alice-correct-horse");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = server.addr;
    rt.block_on(async {
        // One wrong login alone: the cost of one slow check.
        let started = Instant::now();
        let one = login(addr, &attacker, "mallory", "wrong-0").await;
        assert_eq!(failure(&one), ResultReason::AUTHENTICATION_NOT_SUCCESSFUL);
        let one_check = started.elapsed();

        let mut wrong = tokio::task::JoinSet::new();
        for i in 0..WRONG_LOGINS {
            let tls = attacker.clone();
            wrong.spawn(async move {
                let answer = login(addr, &tls, "mallory", &format!("wrong-{i}")).await;
                failure(&answer)
            });
        }
        // Give the attack a head start: wait until the attacker's connections are queued
        // (the first of them answered means the rest are in line behind it).
        let first = wrong.join_next().await.unwrap().unwrap();
        assert_eq!(first, ResultReason::AUTHENTICATION_NOT_SUCCESSFUL);

        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(20), login(addr, &victim, "alice", "alice-correct-horse"))
            .await
            .expect("the other client's login is served while the attack runs");
        expect_success(&answer);
        let victim_login = started.elapsed();

        while let Some(r) = wrong.join_next().await {
            assert_eq!(r.unwrap(), ResultReason::AUTHENTICATION_NOT_SUCCESSFUL);
        }
        eprintln!(
            "one slow check {one_check:?}; with {WRONG_LOGINS} wrong logins of another client in flight, a correct login took {victim_login:?}"
        );

        // The attacker is now refused without the slow hash, even with its right password;
        // the victim is not.
        let started = Instant::now();
        let refused = login(addr, &attacker, "mallory", "the-right-one-nobody-sends").await;
        assert_eq!(failure(&refused), ResultReason::AUTHENTICATION_NOT_SUCCESSFUL);
        eprintln!("rate-limited refusal in {:?}", started.elapsed());
        expect_success(&login(addr, &victim, "alice", "alice-correct-horse").await);
    });
}
