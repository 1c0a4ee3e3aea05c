//! The audit trail end to end: events go through `AuditSink` into the JSON-lines
//! file named by `[audit] path`, and `keyward audit` reads them back filtered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use keyward::audit::{AuditEvent, AuditSettings, AuditSink, EventKind, JournalTarget};
use serde_json::Value;
use time::OffsetDateTime;

const FINGERPRINT_1: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const FINGERPRINT_2: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

fn keyward(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .output()
        .unwrap()
}

fn write_config(dir: &Path) -> PathBuf {
    let config = dir.join("keyward.toml");
    std::fs::write(
        &config,
        r#"
[tls]
cert = "server.pem"
key = "server.key"

[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "keyward"
pin_file = "hsm.pin"

[store]
path = "keyward.db"

[audit]
path = "audit.jsonl"
"#,
    )
    .unwrap();
    config
}

fn kmip(at: OffsetDateTime, client: &str, fingerprint: &str, operation: &str, key: &str) -> AuditEvent {
    let mut event = AuditEvent::new(EventKind::Kmip, operation)
        .client(Some(client), Some(fingerprint), Some("default"))
        .source("127.0.0.1:40000".parse().unwrap())
        .object(Some(key));
    event.time = at;
    event
}

/// `keyward audit --config … --json ARGS`: the (operation, object) of each event.
fn audit(config: &Path, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["audit", "--config", config.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = keyward(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["operation"].as_str().unwrap().to_owned(),
                v["object_id"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn events_written_through_the_sink_are_read_back_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let now = OffsetDateTime::now_utc();
    let hours = |h: i64| now - time::Duration::hours(h);

    let sink = AuditSink::start(AuditSettings {
        file: Some(dir.path().join("audit.jsonl")),
        journal: JournalTarget::Off,
        queue_capacity: 64,
    })
    .unwrap();
    sink.emit(kmip(hours(5), "vcenter-1", FINGERPRINT_1, "Create", "key-1"));
    sink.emit(kmip(hours(4), "vcenter-1", FINGERPRINT_1, "Get", "key-1"));
    sink.emit(
        kmip(hours(3), "vcenter-2", FINGERPRINT_2, "Get", "key-2").failed("ItemNotFound", "no such object"),
    );
    let mut revoke = AuditEvent::admin("KeyRevoke")
        .object(Some("key-1"))
        .message("reason: key compromise");
    revoke.time = hours(2);
    sink.emit(revoke);
    let mut refused = AuditEvent::new(EventKind::Connection, "Connect")
        .source("127.0.0.1:40001".parse().unwrap())
        .refused("certificate not trusted");
    refused.time = now - time::Duration::minutes(10);
    sink.emit(refused);
    assert!(sink.flush(Duration::from_secs(10)));

    assert_eq!(audit(&config, &[]).len(), 5);
    // By client name, and by (a prefix of) its fingerprint with colons.
    assert_eq!(
        audit(&config, &["--client", "vcenter-1"]),
        pairs(&[("Create", "key-1"), ("Get", "key-1")])
    );
    assert_eq!(
        audit(&config, &["--client", "60:30:3A:E2:2B"]),
        pairs(&[("Get", "key-2")])
    );
    // By key: every operation on it, the administrator's included.
    assert_eq!(
        audit(&config, &["--key", "key-1"]),
        pairs(&[("Create", "key-1"), ("Get", "key-1"), ("KeyRevoke", "key-1")])
    );
    // By operation, case-insensitive, combined with a key.
    assert_eq!(
        audit(&config, &["--operation", "get", "--key", "key-2"]),
        pairs(&[("Get", "key-2")])
    );
    // By time: relative, and an RFC 3339 window.
    assert_eq!(audit(&config, &["--since", "-1h"]), pairs(&[("Connect", "-")]));
    let since = keyward::audit::format_time(hours(4) - time::Duration::minutes(1));
    let until = keyward::audit::format_time(hours(3) + time::Duration::minutes(1));
    assert_eq!(
        audit(&config, &["--since", &since, "--until", &until]),
        pairs(&[("Get", "key-1"), ("Get", "key-2")])
    );
    assert!(audit(&config, &["--client", "nobody"]).is_empty());

    // The table names the columns and shows the failure's reason.
    let out = keyward(&[
        "audit",
        "--file",
        dir.path().join("audit.jsonl").to_str().unwrap(),
        "--client",
        "vcenter-2",
    ]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("TIME") && lines[0].contains("OPERATION"));
    assert!(
        lines[1].contains("vcenter-2") && lines[1].contains("OperationFailed: ItemNotFound: no such object")
    );

    // The file is private to the service account.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn bad_input_is_one_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    for args in [
        vec![
            "audit",
            "--config",
            config.to_str().unwrap(),
            "--since",
            "yesterday",
        ],
        vec!["audit", "--file", "/nonexistent/audit.jsonl"],
    ] {
        let out = keyward(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("keyward: error: "), "{err}");
    }
}
