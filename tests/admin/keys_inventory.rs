//! `keyward keys` end to end against a running server over mutual TLS: keys
//! created and tagged the way vCenter does it by two clients in two groups;
//! every `keys list` filter; `keys show` (attributes, lifecycle dates and the
//! audit trail, never key material, destroyed keys included); `keys revoke` and
//! `keys destroy` while the server runs, seen by the very next KMIP request;
//! audit events for each change; bad input as one line with nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use common::TestServer;
use common::admin::{call, issue_client, kw, kw_err, kw_ok, runtime, with_audit_file};
use common::vcenter::{Vcenter, add_attribute_payload, expect_success, uid_payload};
use keyward::kmip::{NameType, Operation, ResultStatus, State, tags};
use keyward::ttlv::{Item, Value};
use serde_json::Value as Json;

fn list_json(server: &TestServer, filter: &[&str]) -> Vec<Json> {
    let mut args = vec!["keys", "list", "--json"];
    args.extend_from_slice(filter);
    let out = kw_ok(server, &args);
    serde_json::from_str::<Json>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The listed uids, sorted (keys created within one second list in uid order).
fn uids(rows: &[Json]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| r["uid"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn set(want: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

fn row<'a>(rows: &'a [Json], uid: &str) -> &'a Json {
    rows.iter().find(|r| r["uid"] == uid).unwrap()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn inventory_lists_shows_revokes_and_destroys_while_serving() {
    let server = TestServer::start_with(with_audit_file);
    let tls_b = issue_client(&server, "vc-b", "site-b", &[]);
    let rt = runtime();
    let vc_a = Vcenter::new(server.addr, server.client_tls());
    let vc_b = Vcenter::new(server.addr, tls_b.clone());

    // First batch: two VMs of vCenter A (client kmip-client, group default).
    let (web, web_key) = rt.block_on(vc_a.encrypt_vm("564d0000-0000-0000-0000-0000000000a1", "web-01"));
    let (db, _) = rt.block_on(vc_a.encrypt_vm("564d0000-0000-0000-0000-0000000000a2", "db-01"));
    std::thread::sleep(Duration::from_millis(1100));
    let middle = time::OffsetDateTime::now_utc().unix_timestamp();
    // Second batch: a host key of vCenter B, and a key A created but never activated.
    let host = rt.block_on(async {
        let uid = vc_b.create().await;
        vc_b.get(&uid).await;
        vc_b.activate(&uid).await;
        vc_b.tag(
            &uid,
            [
                ("x-Component", "Host"),
                ("x-Identifier", "host-4c4c4544-0042"),
                ("x-Name", "esx-01.lab"),
            ],
        )
        .await;
        uid
    });
    let pending = rt.block_on(vc_a.create());
    // A KMIP Name on one key, the way other KMIP clients name keys.
    let name = Item::structure(
        tags::ATTRIBUTE_VALUE,
        vec![
            Item::new(tags::NAME_VALUE, Value::TextString("backup-key".into())),
            Item::new(
                tags::NAME_TYPE,
                Value::Enumeration(NameType::UNINTERPRETED_TEXT_STRING.0),
            ),
        ],
    );
    let mut add_name = add_attribute_payload(&pending, "Name", "");
    if let Value::Structure(children) = &mut add_name.value {
        for c in children.iter_mut() {
            if c.tag == tags::ATTRIBUTE
                && let Value::Structure(parts) = &mut c.value
            {
                parts.retain(|p| p.tag != tags::ATTRIBUTE_VALUE);
                parts.push(name.clone());
            }
        }
    }
    expect_success(&rt.block_on(call(
        server.addr,
        &server.client_tls(),
        None,
        Operation::ADD_ATTRIBUTE,
        add_name,
    )));

    let (web, db, host, pending) = (web.as_str(), db.as_str(), host.as_str(), pending.as_str());

    // Power-on: the KMIP audit events of a key name its VM (x-Name) once known.
    rt.block_on(vc_a.get(web));
    common::admin::audit_file_once(&server, "Get event naming web-01", |text| {
        text.lines()
            .any(|l| l.contains("\"Get\"") && l.contains(web) && l.contains("\"x_name\":\"web-01\""))
    });

    // Every filter.
    let all = list_json(&server, &[]);
    assert_eq!(uids(&all), set(&[web, db, host, pending]));
    let row = row(&all, web);
    assert_eq!(row["state"], "Active");
    assert_eq!(row["algorithm"], "AES-256");
    assert_eq!(row["group"], "default");
    assert_eq!(row["created_by"], "kmip-client");
    assert_eq!(row["x_name"], "web-01");
    assert_eq!(row["x_identifier"], "564d0000-0000-0000-0000-0000000000a1");
    assert_eq!(row["x_component"], "Virtual Machine");
    assert_eq!(self::row(&all, host)["created_by"], "vc-b");
    assert_eq!(self::row(&all, host)["group"], "site-b");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--x-name", "web-01"], vec![web]),
        (
            vec!["--x-identifier", "564d0000-0000-0000-0000-0000000000a2"],
            vec![db],
        ),
        (vec!["--x-component", "Host"], vec![host]),
        (vec!["--x-component", "Virtual Machine"], vec![web, db]),
        (vec!["--client", "vc-b"], vec![host]),
        (vec!["--client", "kmip-client"], vec![web, db, pending]),
        (vec!["--group", "site-b"], vec![host]),
        (vec!["--group", "default"], vec![web, db, pending]),
        (vec!["--state", "pre-active"], vec![pending]),
        (vec!["--state", "Active"], vec![web, db, host]),
        (vec!["--name", "backup-key"], vec![pending]),
        (vec!["--x-name", "no-such-vm"], vec![]),
        (
            vec![
                "--client",
                "kmip-client",
                "--state",
                "active",
                "--x-name",
                "db-01",
            ],
            vec![db],
        ),
    ];
    for (filter, want) in &cases {
        assert_eq!(uids(&list_json(&server, filter)), set(want), "{filter:?}");
    }
    let middle_text = rfc3339(middle);
    let before_text = rfc3339(middle - 1);
    assert_eq!(
        uids(&list_json(&server, &["--created-after", &middle_text])),
        set(&[host, pending])
    );
    assert_eq!(
        uids(&list_json(&server, &["--created-before", &before_text])),
        set(&[web, db])
    );
    assert_eq!(
        uids(&list_json(
            &server,
            &["--created-after", "-1h", "--created-before", "now"]
        ))
        .len(),
        4
    );

    // The table: a header and one line per key, tags shown.
    let table = kw_ok(&server, &["keys", "list", "--x-component", "Virtual Machine"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in [
        "UID",
        "STATE",
        "ALGORITHM",
        "GROUP",
        "CREATED BY",
        "X-NAME",
        "X-IDENTIFIER",
        "X-COMPONENT",
        "CREATED",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    // Rows are in creation order; both keys may share a second, so find the row.
    let web_row = lines[1..]
        .iter()
        .find(|l| l.contains(web))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        web_row.contains("web-01") && web_row.contains("Active"),
        "{table}"
    );

    // Show: attributes and history, never the key material.
    let key_hex = hex::encode(&web_key.0);
    let shown = kw_ok(&server, &["keys", "show", web]);
    for needle in [
        "x-Name",
        "web-01",
        "Cryptographic Usage Mask",
        "Encrypt Decrypt",
        "y-Created-By",
        "Activation Date",
        "history:",
        "Create",
        "Activate",
        "sealed under root key",
    ] {
        assert!(shown.contains(needle), "{needle} missing:\n{shown}");
    }
    assert!(!shown.to_lowercase().contains(&key_hex));
    let shown_json: Json = serde_json::from_str(&kw_ok(&server, &["keys", "show", web, "--json"])).unwrap();
    assert_eq!(shown_json["state"], "Active");
    let ops: Vec<&str> = shown_json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert!(
        ops.contains(&"Create") && ops.contains(&"Get") && ops.contains(&"AddAttribute"),
        "{ops:?}"
    );
    assert!(!shown_json.to_string().to_lowercase().contains(&key_hex));

    // Destroying an Active key is refused, like KMIP; nothing changes.
    let e = kw_err(&server, &["keys", "destroy", web, "--yes"]);
    assert!(e.contains("revoked first"), "{e}");
    // Without a terminal, destroy wants --yes.
    let e = kw_err(&server, &["keys", "destroy", pending]);
    assert!(e.contains("--yes"), "{e}");
    assert_eq!(rt.block_on(vc_a.state(web)), State::ACTIVE);
    assert_eq!(rt.block_on(vc_a.state(pending)), State::PRE_ACTIVE);

    // Revoke while the server runs: the next KMIP request sees it.
    let out = kw_ok(
        &server,
        &[
            "keys",
            "revoke",
            web,
            "--reason",
            "superseded",
            "--message",
            "VM retired",
        ],
    );
    assert!(out.contains("Deactivated"), "{out}");
    assert_eq!(rt.block_on(vc_a.state(web)), State::DEACTIVATED);
    let out = kw_ok(&server, &["keys", "revoke", host, "--reason", "compromise"]);
    assert!(out.contains("Compromised"), "{out}");
    assert_eq!(rt.block_on(vc_b.state(host)), State::COMPROMISED);
    assert!(kw_ok(&server, &["keys", "show", web]).contains("VM retired"));

    // Destroy: the next Get is refused, the metadata stays visible.
    kw_ok(&server, &["keys", "destroy", web, "--yes"]);
    let get = rt.block_on(call(
        server.addr,
        &server.client_tls(),
        None,
        Operation::GET,
        uid_payload(web),
    ));
    assert_eq!(get.result_status, ResultStatus::OPERATION_FAILED);
    kw_ok(&server, &["keys", "destroy", host, "--yes"]);
    assert_eq!(uids(&list_json(&server, &["--state", "destroyed"])), set(&[web]));
    assert_eq!(
        uids(&list_json(&server, &["--state", "destroyed-compromised"])),
        set(&[host])
    );
    let shown = kw_ok(&server, &["keys", "show", web]);
    assert!(
        shown.contains("Destroyed") && shown.contains("web-01") && shown.contains("Destroy Date"),
        "{shown}"
    );
    assert!(shown.contains("destroyed (metadata only)"), "{shown}");
    assert!(
        shown.contains("KeyRevoke") && shown.contains("KeyDestroy"),
        "{shown}"
    );
    assert_eq!(
        list_json(&server, &["--x-name", "web-01"]).len(),
        1,
        "the tag still finds it"
    );

    // Every change is audited.
    let audit = std::fs::read_to_string(server.path("audit.log")).unwrap();
    for op in ["KeyRevoke", "KeyDestroy"] {
        let n = audit
            .lines()
            .filter(|l| l.contains(&format!("\"{op}\"")) && l.contains("\"Success\""))
            .count();
        assert_eq!(n, 2, "{op}: {audit}");
    }
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"KeyDestroy\"") && l.contains(web) && l.contains("\"OperationFailed\""))
    );

    // Bad input: one line, non-zero exit, nothing changed.
    let before = kw_ok(&server, &["keys", "list", "--json"]);
    for (args, says) in [
        (vec!["keys", "show", "no-such-key"], "no key with id"),
        (
            vec!["keys", "revoke", "no-such-key", "--reason", "compromise"],
            "no key with id",
        ),
        (vec!["keys", "destroy", "no-such-key", "--yes"], "no key with id"),
        (vec!["keys", "revoke", db, "--reason", "boredom"], "--reason"),
        (vec!["keys", "revoke", web, "--reason", "superseded"], "Destroyed"),
        (vec!["keys", "destroy", web, "--yes"], "Destroyed"),
        (vec!["keys", "list", "--state", "sleepy"], "--state"),
        (
            vec!["keys", "list", "--created-before", "last tuesday"],
            "--created-before",
        ),
        (
            vec![
                "keys",
                "list",
                "--created-after",
                "2030-01-01",
                "--created-before",
                "2020-01-01",
            ],
            "later than",
        ),
        (vec!["keys", "list", "--group", "../etc"], "--group"),
    ] {
        let e = kw_err(&server, &args);
        assert!(e.contains(says), "{args:?}: {e}");
    }
    assert_eq!(kw_ok(&server, &["keys", "list", "--json"]), before);
    // A store that does not exist is an error, not an empty inventory.
    let config = std::fs::read_to_string(server.config())
        .unwrap()
        .replace("keyward.db", "missing.db");
    let other = server.path("other.toml");
    std::fs::write(&other, config).unwrap();
    let out = server.keyward(&["keys", "list", "--config", other.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key store"));
    assert!(!server.path("missing.db").exists());
    let (ok, _, _) = kw(&server, &["keys", "list"]);
    assert!(ok);
}
