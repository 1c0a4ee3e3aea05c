//! Per-client KMIP Username/Password on top of the certificate, end to end over
//! mutual TLS: a password-protected vCenter flow works (the credential rides on
//! Create, Get and Add Attribute only, each step on its own connection); a
//! request that needs the credential and lacks it, or carries a wrong one, is
//! refused with Authentication Not Successful and audited; Discover Versions and
//! Query need none; a connection that authenticated once stays authenticated;
//! the trust file holds only a salted hash; `clients password --clear` applies
//! without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::admin::{call, failure, issue_client, kw, kw_err, kw_ok, runtime, with_audit_file};
use common::kmip_client::{Client, empty_payload};
use common::vcenter::{
    Outgoing, V1_1, Vcenter, exchange, expect_success, get_attributes_payload,
    query_server_information_payload, uid_payload,
};
use keyward::kmip::{Operation, ResultReason, ResultStatus};

const USER: &str = "vcenter-admin";
const PASSWORD: &str = "Tr0ub4dor&3-not-in-any-log";

fn item(operation: keyward::kmip::Operation, payload: keyward::ttlv::Item) -> Outgoing {
    Outgoing {
        operation,
        id: Some(b"QLKC\x07\x00\x00\x00".to_vec()),
        payload,
    }
}

#[test]
fn password_is_required_checked_and_remembered_per_connection() {
    let server = TestServer::start_with(with_audit_file);
    let password_file = server.path("vc.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let tls = issue_client(
        &server,
        "vc",
        "vsphere",
        &[
            "--username",
            USER,
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    );

    // Only a salted slow hash reaches the trust file.
    let entry = std::fs::read_to_string(server.path("clients/vc.toml")).unwrap();
    assert!(entry.contains(&format!("username = \"{USER}\"")), "{entry}");
    assert!(entry.contains("password_hash = \"pbkdf2-sha256$"), "{entry}");
    assert!(!entry.contains(PASSWORD));

    let rt = runtime();
    let addr = server.addr;
    let (uid, key) = rt.block_on(async {
        // vCenter with password protection: the whole flow passes.
        let mut vc = Vcenter::new(addr, tls.clone());
        vc.credential = Some((USER.into(), PASSWORD.into()));
        vc.register_kms().await;
        let (uid, key) = vc
            .encrypt_vm("564d0000-5555-6666-7777-888888888888", "locked-vm")
            .await;
        assert_eq!(vc.power_on(&uid).await.0, key.0);
        (uid, key)
    });

    rt.block_on(async {
        // Discover Versions and Query need no credential, even in one batch.
        let mut c = Client::connect(addr, &tls).await.unwrap();
        let answers = exchange(
            &mut c,
            V1_1,
            None,
            &[
                item(Operation::DISCOVER_VERSIONS, empty_payload()),
                item(Operation::QUERY, query_server_information_payload()),
            ],
        )
        .await;
        answers.iter().for_each(|a| {
            expect_success(a);
        });
        c.close().await;

        // Missing, wrong password, wrong username, credential without a password.
        let missing = call(addr, &tls, None, Operation::GET, uid_payload(&uid)).await;
        assert_eq!(failure(&missing), ResultReason::AUTHENTICATION_NOT_SUCCESSFUL);
        for (user, password) in [(USER, "wrong"), ("someone-else", PASSWORD), (USER, "")] {
            let wrong = call(
                addr,
                &tls,
                Some((user, password)),
                Operation::GET,
                uid_payload(&uid),
            )
            .await;
            assert_eq!(
                failure(&wrong),
                ResultReason::AUTHENTICATION_NOT_SUCCESSFUL,
                "{user}"
            );
        }
        // A wrong credential is refused even on a request that needs none.
        let wrong = call(
            addr,
            &tls,
            Some((USER, "wrong")),
            Operation::GET_ATTRIBUTES,
            get_attributes_payload(&uid, "State"),
        )
        .await;
        assert_eq!(failure(&wrong), ResultReason::AUTHENTICATION_NOT_SUCCESSFUL);
        // A batch mixing an exempt item with one that needs the credential.
        let mut c = Client::connect(addr, &tls).await.unwrap();
        let mixed = exchange(
            &mut c,
            V1_1,
            None,
            &[
                item(Operation::GET_ATTRIBUTES, get_attributes_payload(&uid, "State")),
                item(Operation::DESTROY, uid_payload(&uid)),
            ],
        )
        .await;
        assert!(
            mixed
                .iter()
                .all(|a| a.result_reason == Some(ResultReason::AUTHENTICATION_NOT_SUCCESSFUL))
        );
        c.close().await;

        // One connection: authenticated once, later messages need not repeat it.
        let mut c = Client::connect(addr, &tls).await.unwrap();
        let first = exchange(
            &mut c,
            V1_1,
            Some((USER, PASSWORD)),
            &[item(Operation::GET, uid_payload(&uid))],
        )
        .await;
        expect_success(&first[0]);
        let again = exchange(&mut c, V1_1, None, &[item(Operation::GET, uid_payload(&uid))]).await;
        expect_success(&again[0]);
        c.close().await;
        // ... but a new connection starts unauthenticated.
        let fresh = call(addr, &tls, None, Operation::GET, uid_payload(&uid)).await;
        assert_eq!(failure(&fresh), ResultReason::AUTHENTICATION_NOT_SUCCESSFUL);
    });

    // Refusals are audited, and no event carries the password.
    let audit = common::admin::audit_file_once(&server, "6 refusals", |text| {
        text.lines()
            .filter(|l| l.contains("AuthenticationNotSuccessful"))
            .count()
            >= 6
    });
    let refused: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("AuthenticationNotSuccessful"))
        .collect();
    assert!(refused.len() >= 6, "{audit}");
    assert!(refused.iter().all(|l| l.contains("\"vc\"")), "{refused:?}");
    assert!(!audit.contains(PASSWORD) && !audit.contains("wrong\""));
    server.log().lines().for_each(|l| assert!(!l.contains(PASSWORD)));

    // Clearing the password applies without a restart.
    let out = kw_ok(&server, &["clients", "password", "vc", "--clear"]);
    assert!(out.contains("no longer needs"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = rt.block_on(call(addr, &tls, None, Operation::GET, uid_payload(&uid)));
        if answer.result_status == ResultStatus::SUCCESS {
            break;
        }
        assert!(Instant::now() < deadline, "--clear never applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    let entry = std::fs::read_to_string(server.path("clients/vc.toml")).unwrap();
    assert!(!entry.contains("password_hash"), "{entry}");

    // Setting one on an existing client (the development client) applies too.
    let dev = server.client_tls();
    assert_eq!(
        rt.block_on(call(
            addr,
            &dev,
            None,
            Operation::GET_ATTRIBUTES,
            get_attributes_payload(&uid, "State")
        ))
        .result_reason,
        Some(ResultReason::ITEM_NOT_FOUND),
        "kmip-client is in the default group"
    );
    kw_ok(
        &server,
        &[
            "clients",
            "password",
            "kmip-client",
            "--username",
            "dev",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = rt.block_on(call(
            addr,
            &dev,
            None,
            Operation::LOCATE,
            common::admin::locate_payload("x-Name", "x"),
        ));
        if answer.result_reason == Some(ResultReason::AUTHENTICATION_NOT_SUCCESSFUL) {
            break;
        }
        assert!(Instant::now() < deadline, "the new password never applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ok = rt.block_on(call(
        addr,
        &dev,
        Some(("dev", PASSWORD)),
        Operation::LOCATE,
        common::admin::locate_payload("x-Name", "x"),
    ));
    assert_eq!(ok.result_status, ResultStatus::SUCCESS);
    let _ = key;

    // The changes are audited.
    let audit = std::fs::read_to_string(server.path("audit.log")).unwrap();
    assert!(audit.contains("\"ClientPasswordClear\"") && audit.contains("\"ClientPasswordSet\""));
}

#[test]
fn bad_password_input_is_one_line_and_changes_nothing() {
    let server = TestServer::start();
    let empty = server.path("empty.password");
    std::fs::write(&empty, "\n").unwrap();
    let good = server.path("good.password");
    std::fs::write(&good, "pw\n").unwrap();
    let before = std::fs::read_to_string(server.path("clients/kmip-client.toml")).unwrap();
    let e = kw_err(
        &server,
        &[
            "clients",
            "password",
            "nobody",
            "--username",
            "u",
            "--password-file",
            good.to_str().unwrap(),
        ],
    );
    assert!(e.contains("no client named"), "{e}");
    let e = kw_err(
        &server,
        &[
            "clients",
            "password",
            "kmip-client",
            "--username",
            "u",
            "--password-file",
            empty.to_str().unwrap(),
        ],
    );
    assert!(e.contains("empty"), "{e}");
    let e = kw_err(
        &server,
        &[
            "clients",
            "password",
            "kmip-client",
            "--username",
            "u",
            "--password-file",
            "/no/such/file",
        ],
    );
    assert!(e.contains("/no/such/file"), "{e}");
    let e = kw_err(
        &server,
        &[
            "clients",
            "password",
            "kmip-client",
            "--username",
            "has space",
            "--password-file",
            good.to_str().unwrap(),
        ],
    );
    assert!(e.contains("--username"), "{e}");
    let e = kw_err(&server, &["clients", "password", "kmip-client", "--clear"]);
    assert!(e.contains("no password to clear"), "{e}");
    let (ok, _, _) = kw(
        &server,
        &["clients", "password", "kmip-client", "--username", "u"],
    );
    assert!(!ok, "--username needs --password-file");
    assert_eq!(
        std::fs::read_to_string(server.path("clients/kmip-client.toml")).unwrap(),
        before
    );
    let e = kw_err(
        &server,
        &[
            "clients",
            "add",
            "x2",
            "--fingerprint",
            &"ab".repeat(32),
            "--username",
            "u",
            "--password-file",
            empty.to_str().unwrap(),
        ],
    );
    assert!(e.contains("empty"), "{e}");
    assert!(!server.path("clients/x2.toml").exists());
}
