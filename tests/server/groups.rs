//! Groups end to end: two clients issued into two groups over real mutual TLS.
//! A client never learns that another group's key exists — every operation on
//! it answers Item Not Found exactly as for an id that was never issued, and
//! Locate does not return it — until an administrator moves the key with
//! `keyward keys move` (audited), which the server applies to the next request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::TestServer;
use common::admin::{
    audit_file_once, call, failure, issue_client, kw_err, kw_ok, locate_payload, located, revoke_payload,
    runtime, with_audit_file,
};
use common::vcenter::{Vcenter, add_attribute_payload, get_attributes_payload, uid_payload};
use keyward::kmip::{Operation, ResultReason, ResultStatus, RevocationReasonCode};

#[test]
fn clients_of_other_groups_get_item_not_found_until_the_key_moves() {
    let server = TestServer::start_with(with_audit_file);
    let tls_a = issue_client(&server, "a", "g1", &[]);
    let tls_b = issue_client(&server, "b", "g2", &[]);
    let rt = runtime();
    let vc_a = Vcenter::new(server.addr, tls_a.clone());
    let (uid, key) = rt.block_on(vc_a.encrypt_vm("564d0000-0000-0000-0000-00000000a001", "vm-of-g1"));

    // Everything b may try on a's key, next to the same call on an id never issued.
    let never = "00000000-0000-4000-8000-000000000000";
    let attempts = |id: &str| {
        vec![
            (Operation::GET, uid_payload(id)),
            (Operation::GET_ATTRIBUTES, get_attributes_payload(id, "State")),
            (Operation::GET_ATTRIBUTES, get_attributes_payload(id, "x-Name")),
            (Operation::ACTIVATE, uid_payload(id)),
            (
                Operation::REVOKE,
                revoke_payload(id, RevocationReasonCode::KEY_COMPROMISE),
            ),
            (Operation::DESTROY, uid_payload(id)),
            (
                Operation::ADD_ATTRIBUTE,
                add_attribute_payload(id, "x-Name", "stolen"),
            ),
        ]
    };
    rt.block_on(async {
        for ((op, payload), (_, never_payload)) in attempts(&uid).into_iter().zip(attempts(never)) {
            let theirs = call(server.addr, &tls_b, None, op, payload).await;
            let missing = call(server.addr, &tls_b, None, op, never_payload).await;
            assert_eq!(failure(&theirs), ResultReason::ITEM_NOT_FOUND, "{op:?}");
            assert_eq!(failure(&missing), ResultReason::ITEM_NOT_FOUND, "{op:?}");
            assert_eq!(
                theirs.result_message, missing.result_message,
                "{op:?}: no hint that the other group's key exists"
            );
        }
        for (name, value) in [
            ("x-Name", "vm-of-g1"),
            ("x-Identifier", "564d0000-0000-0000-0000-00000000a001"),
            ("x-Component", "Virtual Machine"),
        ] {
            let by_b = call(
                server.addr,
                &tls_b,
                None,
                Operation::LOCATE,
                locate_payload(name, value),
            )
            .await;
            assert!(located(&by_b).is_empty(), "Locate by {name} leaks to group g2");
            let by_a = call(
                server.addr,
                &tls_a,
                None,
                Operation::LOCATE,
                locate_payload(name, value),
            )
            .await;
            assert_eq!(
                located(&by_a),
                std::slice::from_ref(&uid),
                "Locate by {name} in group g1"
            );
        }
        // Nothing b tried changed the key.
        assert_eq!(vc_a.power_on(&uid).await.0, key.0);
        assert_eq!(
            vc_a.text_attribute(&uid, "x-Name").await.as_deref(),
            Some("vm-of-g1")
        );
    });

    // The administrator moves the key to g2: b sees it at once, a no longer does.
    let out = kw_ok(&server, &["keys", "move", &uid, "--group", "g2"]);
    assert!(out.contains("from group \"g1\" to group \"g2\""), "{out}");
    rt.block_on(async {
        let vc_b = Vcenter::new(server.addr, tls_b.clone());
        assert_eq!(vc_b.get(&uid).await.0, key.0, "the same key, now g2's");
        let by_b = call(
            server.addr,
            &tls_b,
            None,
            Operation::LOCATE,
            locate_payload("x-Name", "vm-of-g1"),
        )
        .await;
        assert_eq!(located(&by_b), std::slice::from_ref(&uid));
        let by_a = call(server.addr, &tls_a, None, Operation::GET, uid_payload(&uid)).await;
        assert_eq!(failure(&by_a), ResultReason::ITEM_NOT_FOUND);
        let located_a = call(
            server.addr,
            &tls_a,
            None,
            Operation::LOCATE,
            locate_payload("x-Name", "vm-of-g1"),
        )
        .await;
        assert!(located(&located_a).is_empty());
        assert_eq!(by_b.result_status, ResultStatus::SUCCESS);
    });
    let listed = kw_ok(&server, &["keys", "list", "--group", "g2"]);
    assert!(listed.contains(&uid), "{listed}");
    assert!(!kw_ok(&server, &["keys", "list", "--group", "g1"]).contains(&uid));

    // Audited, and bad moves change nothing.
    let audit = std::fs::read_to_string(server.path("audit.log")).unwrap();
    let moved: Vec<&str> = audit.lines().filter(|l| l.contains("\"KeyMove\"")).collect();
    assert_eq!(moved.len(), 1, "{audit}");
    assert!(
        moved[0].contains(&uid) && moved[0].contains("g1 -> g2"),
        "{}",
        moved[0]
    );
    let err = kw_err(&server, &["keys", "move", &uid, "--group", "g2"]);
    assert!(err.contains("already in group g2"), "{err}");
    let err = kw_err(&server, &["keys", "move", &uid, "--group", "../g3"]);
    assert!(err.contains("--group"), "{err}");
    let err = kw_err(&server, &["keys", "move", "no-such-key", "--group", "g1"]);
    assert!(err.contains("no key with id"), "{err}");
    assert!(kw_ok(&server, &["keys", "list", "--group", "g2"]).contains(&uid));
}

/// The attack of issue 10 item 6: someone who can write the store (here the
/// SQLite file, behind keyward's back) moves a key to another group. The seal
/// binds the group, so the other group's client never gets the key material;
/// only `keyward keys move`, which re-seals, gives a key to another group.
#[test]
fn a_key_moved_in_the_store_does_not_open_for_the_other_group() {
    let server = TestServer::start_with(with_audit_file);
    let tls_a = issue_client(&server, "a", "g1", &[]);
    let tls_b = issue_client(&server, "b", "g2", &[]);
    let rt = runtime();
    let vc_a = Vcenter::new(server.addr, tls_a.clone());
    let (uid, key) = rt.block_on(vc_a.encrypt_vm("564d0000-0000-0000-0000-00000000a002", "vm-moved"));

    let db = rusqlite::Connection::open(server.path("keyward.db")).unwrap();
    let changed = db
        .execute("UPDATE records SET grp = 'g2' WHERE uid = ?1", [&uid])
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    rt.block_on(async {
        let by_b = call(server.addr, &tls_b, None, Operation::GET, uid_payload(&uid)).await;
        assert_eq!(
            by_b.result_status,
            ResultStatus::OPERATION_FAILED,
            "the moved record must not open for g2"
        );
        assert_eq!(failure(&by_b), ResultReason::GENERAL_FAILURE);
        let message = by_b.result_message.clone().unwrap_or_default();
        assert!(message.contains("changed outside keyward"), "{message}");
    });
    // The refusal is in the audit trail with its detail.
    audit_file_once(&server, "refused Get of a record changed in the store", |text| {
        text.lines()
            .any(|l| l.contains(&uid) && l.contains("\"Get\"") && l.contains("changed outside keyward"))
    });

    // Moved back in the store, it opens again for its own group, unchanged;
    // `keys move` re-seals, and then g2 gets the same key.
    let db = rusqlite::Connection::open(server.path("keyward.db")).unwrap();
    db.execute("UPDATE records SET grp = 'g1' WHERE uid = ?1", [&uid])
        .unwrap();
    drop(db);
    rt.block_on(async {
        assert_eq!(vc_a.get(&uid).await.0, key.0);
    });
    kw_ok(&server, &["keys", "move", &uid, "--group", "g2"]);
    rt.block_on(async {
        let vc_b = Vcenter::new(server.addr, tls_b.clone());
        assert_eq!(vc_b.get(&uid).await.0, key.0);
    });
}
