//! The running server rides out an HSM outage (DESIGN §6, issue 3 item 3): while
//! the HSM is away, what needs it fails fast with a KMIP error and everything else
//! keeps working; when it is back the server recovers by itself — no restart, no
//! signal — and keys made before the outage Get the same bytes.
//!
//! How the outage is made: SoftHSM's token *is* its folder under
//! `softhsm/tokens/`, so the test moves that folder out of the token directory
//! (the HSM is unplugged) and later moves it back (plugged in again). SoftHSM
//! notices at the next call, because it re-reads a token's files whenever it
//! uses them: the cached CRK handle becomes invalid, searches find nothing and
//! `C_GetTokenInfo` fails with `CKR_GENERAL_ERROR`. It also marks that token
//! invalid for good and scans for tokens only in `C_Initialize`, so when the
//! folder comes back the server has to re-initialize the module — the same thing
//! a network or USB HSM's client library needs after its device went away.
//! Other ways were weighed and set aside: `chmod 000` does not stop root (tests
//! run as root), and there is no signal that pauses an in-process module. An
//! empty token directory or moving the whole `tokens/` away behaves the same as
//! the move used here (SoftHSM 2.6.1).
//!
//! What the test asserts: during the outage Get and Create answer Operation
//! Failed / General Failure / "HSM unavailable; retry" within the configured
//! HSM call timeout, and so do Get Attributes and Activate (every stored
//! record's binding is checked through the HSM); the process stays up, and
//! Discover Versions and Query succeed; the log carries one warning
//! when the HSM goes and one line when it is back; the audit trail records each
//! refused item with the same message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::TestServer;
use common::vcenter::{Vcenter, check_get, create_payload, uid_payload};
use keyward::kmip::message::ResponseBatchItem;
use keyward::kmip::{Operation, ResultReason, ResultStatus, State};

/// `[hsm] call_timeout` for this test: every HSM-bound request must be answered
/// within it, outage or not.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest the server may take, once the token is back, to serve keys again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);

/// The service's HSM probe logs within its interval (2 s); leave room for a slow CI.
const LOG_LIMIT: Duration = Duration::from_secs(6);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The single token folder in the server's SoftHSM token directory.
fn token_folder(server: &TestServer) -> PathBuf {
    let tokens: Vec<PathBuf> = std::fs::read_dir(server.path("softhsm/tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tokens.len(), 1, "one token: {tokens:?}");
    tokens[0].clone()
}

/// The HSM is away: its folder is moved out of SoftHSM's token directory.
fn unplug(token: &Path, aside: &Path) {
    std::fs::rename(token, aside).unwrap();
}

fn plug_back(token: &Path, aside: &Path) {
    std::fs::rename(aside, token).unwrap();
}

fn assert_hsm_unavailable(what: &str, answer: &ResponseBatchItem, took: Duration) {
    assert_eq!(
        answer.result_status,
        ResultStatus::OPERATION_FAILED,
        "{what} during the outage: {:?}",
        answer.result_message
    );
    assert_eq!(
        answer.result_reason,
        Some(ResultReason::GENERAL_FAILURE),
        "{what}"
    );
    assert_eq!(
        answer.result_message.as_deref(),
        Some("HSM unavailable; retry"),
        "{what}: the message names the HSM"
    );
    assert!(
        took < CALL_TIMEOUT,
        "{what} took {took:?}, more than the HSM call timeout"
    );
}

/// Waits until the server's log holds `needle`.
fn wait_for_log(server: &TestServer, needle: &str) -> Duration {
    let start = Instant::now();
    while !server.log().contains(needle) {
        assert!(
            start.elapsed() < LOG_LIMIT,
            "no {needle:?} in the log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn hsm_outage_fails_fast_and_heals_by_itself() {
    let mut server = TestServer::start_with(|config| {
        *config = config.replacen(
            "[hsm]\n",
            &format!("[hsm]\ncall_timeout = {}\n", CALL_TIMEOUT.as_secs()),
            1,
        );
        config.push_str("\n[audit]\npath = \"audit.log\"\n");
    });
    let pid = server.pid();
    let vc = Vcenter::new(server.addr, server.client_tls());
    let rt = runtime();
    let token = token_folder(&server);
    let aside = server.path("softhsm/unplugged-token");

    // Before: two keys, one of them Active, and their bytes.
    let (before, pre_active) = rt.block_on(async {
        let mut before = Vec::new();
        for _ in 0..2 {
            let uid = vc.create().await;
            let key = vc.get(&uid).await;
            before.push((uid, key.0));
        }
        vc.activate(&before[0].0).await;
        (before, vc.create().await)
    });

    unplug(&token, &aside);
    rt.block_on(async {
        // Several at once, as a boot storm would send them: none hangs.
        let mut calls = Vec::new();
        for i in 0..8 {
            let vc = vc.clone();
            let uid = before[i % 2].0.clone();
            calls.push(tokio::spawn(async move {
                let (op, payload, what) = if i % 2 == 0 {
                    (Operation::GET, uid_payload(&uid), "Get")
                } else {
                    (Operation::CREATE, create_payload(), "Create")
                };
                let start = Instant::now();
                let answer = vc.step(vec![(op, payload)]).await.remove(0);
                (what, answer, start.elapsed())
            }));
        }
        let mut slowest = Duration::ZERO;
        for call in calls {
            let (what, answer, took) = call.await.unwrap();
            assert_hsm_unavailable(what, &answer, took);
            slowest = slowest.max(took);
        }
        eprintln!("outage: slowest refused Get/Create answered in {slowest:?}");

        // What does not need the HSM still works (each step opens with Discover Versions).
        assert_eq!(vc.register_kms().await, "keyward");
        // Every stored object's record is bound under the HSM (its seal is
        // opened to check it), so reading or changing one waits for the HSM
        // too: refused as promptly, never answered from unchecked metadata.
        for (what, op, payload) in [
            (
                "Get Attributes",
                Operation::GET_ATTRIBUTES,
                common::vcenter::get_attributes_payload(&before[0].0, "State"),
            ),
            ("Activate", Operation::ACTIVATE, uid_payload(&pre_active)),
        ] {
            let start = Instant::now();
            let answer = vc.step(vec![(op, payload)]).await.remove(0);
            assert_hsm_unavailable(what, &answer, start.elapsed());
        }
    });
    assert!(server.running(), "the server survived the outage");
    let warned = wait_for_log(&server, "HSM unavailable: key operations fail");
    eprintln!("outage: logged {warned:?} after the checks above");

    // A second wave, later in the outage (after the module was re-initialized
    // without its token): still a prompt KMIP error.
    rt.block_on(async {
        let start = Instant::now();
        let answer = vc
            .step(vec![(Operation::GET, uid_payload(&before[1].0))])
            .await
            .remove(0);
        assert_hsm_unavailable("Get later in the outage", &answer, start.elapsed());
    });

    plug_back(&token, &aside);
    let back = Instant::now();
    let recovered = rt.block_on(async {
        loop {
            let answer = vc
                .step(vec![(Operation::GET, uid_payload(&before[0].0))])
                .await
                .remove(0);
            if answer.result_status == ResultStatus::SUCCESS {
                assert_eq!(check_get(&answer, &before[0].0).0, before[0].1);
                return back.elapsed();
            }
            assert_eq!(answer.result_message.as_deref(), Some("HSM unavailable; retry"));
            assert!(
                back.elapsed() < RECOVERY_LIMIT,
                "not recovered {RECOVERY_LIMIT:?} after the token came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    eprintln!("recovery: first successful Get {recovered:?} after the token came back");

    rt.block_on(async {
        for (uid, bytes) in &before {
            assert_eq!(
                &vc.get(uid).await.0,
                bytes,
                "{uid}: same bytes as before the outage"
            );
        }
        let fresh = vc.create().await;
        let key = vc.get(&fresh).await;
        assert_eq!(vc.get(&fresh).await.0, key.0);
        vc.activate(&fresh).await;
        // What was refused during the outage works again.
        assert_eq!(vc.state(&before[0].0).await, State::ACTIVE);
        assert_eq!(vc.text_attribute(&before[1].0, "x-Name").await, None);
        vc.activate(&pre_active).await;
        assert_eq!(vc.state(&pre_active).await, State::ACTIVE);
    });
    wait_for_log(&server, "HSM available again");
    assert!(server.running());
    assert_eq!(server.pid(), pid, "recovered without a restart");

    // The audit trail names the cause of every refused item.
    let trail = std::fs::read_to_string(server.path("audit.log")).unwrap();
    let refused: Vec<&str> = trail
        .lines()
        .filter(|l| l.contains("\"OperationFailed\""))
        .collect();
    assert!(refused.len() >= 9, "refused items audited: {refused:#?}");
    assert!(
        refused.iter().all(|l| l.contains("HSM unavailable; retry")),
        "{refused:#?}"
    );
    let log = server.log();
    assert_eq!(
        log.matches("HSM unavailable: key operations fail").count(),
        1,
        "one warning per outage, not one per probe:\n{log}"
    );
}
