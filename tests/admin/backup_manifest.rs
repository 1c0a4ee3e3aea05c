//! The backup manifest end to end, on SoftHSM: `keyward restore` refuses a
//! backup with a record removed, a record put back at an older version of
//! itself, an edited manifest, or another backup's manifest — before it
//! writes anything — and a backup without a manifest;
//! an untouched backup restores; a manifest MACed under a root key the HSM
//! no longer holds is refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};

use common::TestServer;
use common::admin::{assert_ok, assert_refused, multi_thread_runtime as runtime};
use common::load::{Load, check_all};

/// A copy of `backup` named `name`, changed by `sql` (with `earlier`, another
/// backup, attached as `old`), as someone with write access to the file would.
fn tampered(backup: &Path, name: &str, earlier: &Path, sql: &str) -> PathBuf {
    let to = backup.with_file_name(name);
    std::fs::copy(backup, &to).unwrap();
    let conn = rusqlite::Connection::open(&to).unwrap();
    conn.execute("ATTACH ?1 AS old", [earlier.to_str().unwrap()])
        .unwrap();
    conn.execute_batch(sql).unwrap();
    to
}

/// The store moved away: restores below go into a fresh one.
fn move_store_away(server: &TestServer, to: &str) -> PathBuf {
    let db = server.path("keyward.db");
    let to = server.dir.path().join(to);
    std::fs::create_dir_all(&to).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = db.with_file_name(format!("keyward.db{suffix}"));
        if from.exists() {
            std::fs::rename(&from, to.join(format!("keyward.db{suffix}"))).unwrap();
        }
    }
    db
}

#[test]
fn restore_refuses_a_backup_that_is_not_what_backup_wrote() {
    let mut server = TestServer::start();
    let config = server.config();
    let config = config.to_str().unwrap();
    let rt = runtime();
    let tls = server.client_tls();
    let load = Load::start(&rt, server.addr, &tls, 2);
    load.wait_for(40);
    let keys = load.stop(&rt);

    let earlier = server.dir.path().join("earlier.db");
    let (out, _) =
        assert_ok(&server.keyward(&["backup", "--config", config, "--out", earlier.to_str().unwrap()]));
    assert!(out.contains("MACed under keyward-crk-1"), "{out}");
    // A key changes after the earlier backup: its record moves to a new version.
    let revoked = &keys[0].0;
    assert_ok(&server.keyward(&[
        "keys",
        "revoke",
        "--config",
        config,
        "--reason",
        "superseded",
        revoked,
    ]));
    let backup = server.dir.path().join("backup.db");
    assert_ok(&server.keyward(&["backup", "--config", config, "--out", backup.to_str().unwrap()]));
    server.terminate();
    let db = move_store_away(&server, "old-store");

    let uid = revoked.replace('\'', "''");
    let record_rows = format!("(SELECT seq FROM records WHERE uid = '{uid}')");
    let cases = [
        (
            "removed.db",
            format!("DELETE FROM record_index WHERE seq = {record_rows}; DELETE FROM records WHERE uid = '{uid}';"),
            "record count does not match the manifest",
        ),
        (
            "rolled-back.db",
            format!(
                "UPDATE records SET (state, sealed, attributes, version, updated_at) =
                     (SELECT state, sealed, attributes, version, updated_at FROM old.records WHERE uid = '{uid}')
                 WHERE uid = '{uid}';"
            ),
            "records digest does not match the manifest",
        ),
        (
            // A record removed, and the manifest's count edited to match.
            "count-edited.db",
            format!(
                "DELETE FROM record_index WHERE seq = {record_rows}; DELETE FROM records WHERE uid = '{uid}';
                 UPDATE backup_manifest SET records = records - 1;"
            ),
            "manifest MAC does not verify",
        ),
        (
            // The manifest's digest edited (to the earlier backup's).
            "digest-edited.db",
            "UPDATE backup_manifest SET digest = (SELECT digest FROM old.backup_manifest);".to_owned(),
            "manifest MAC does not verify",
        ),
        (
            // The earlier backup's manifest, genuine and MACed, over these records.
            "other-manifest.db",
            "DELETE FROM backup_manifest; INSERT INTO backup_manifest SELECT * FROM old.backup_manifest;".to_owned(),
            "does not match the manifest",
        ),
        (
            "extra-table.db",
            "CREATE TABLE notes (x);".to_owned(),
            "table \"notes\" is not part of keyward's schema",
        ),
    ];
    for (name, sql, needle) in &cases {
        let bad = tampered(&backup, name, &earlier, sql);
        let out = server.keyward(&["restore", "--config", config, "--from", bad.to_str().unwrap()]);
        assert_refused(&out, needle);
        assert!(!db.exists(), "{name}: a refused restore creates no store");
    }

    // Without its manifest (as a backup from before manifests): refused, with
    // no switch to take it anyway — dropping the table must not be a way around.
    let stripped = tampered(&backup, "stripped.db", &earlier, "DROP TABLE backup_manifest;");
    assert_refused(
        &server.keyward(&[
            "restore",
            "--config",
            config,
            "--from",
            stripped.to_str().unwrap(),
        ]),
        "has no manifest",
    );
    assert!(!db.exists());

    // The untouched backup restores, and every key serves its bytes.
    let (out, _) = assert_ok(&server.keyward(&[
        "restore",
        "--config",
        config,
        "--from",
        backup.to_str().unwrap(),
        "--verify-all",
    ]));
    assert!(
        out.contains(&format!("manifest verified: {} records", keys.len())),
        "{out}"
    );
    server.spawn();
    check_all(&rt, server.addr, &tls, &keys[1..]);
}

#[test]
fn a_manifest_under_a_retired_root_key_is_refused() {
    let mut server = TestServer::start();
    let config = server.config();
    let config = config.to_str().unwrap();
    // A backup of an empty store: no key material, so only its manifest needs CRK 1.
    let backup = server.dir.path().join("empty.db");
    let backup = backup.to_str().unwrap();
    assert_ok(&server.keyward(&["backup", "--config", config, "--out", backup]));
    assert_ok(&server.keyward(&["root", "rotate", "--config", config]));
    assert_ok(&server.keyward(&["root", "retire", "1", "--config", config]));
    server.terminate();
    let db = move_store_away(&server, "old-store");
    assert_refused(
        &server.keyward(&["restore", "--config", config, "--from", backup]),
        "MACed under root key keyward-crk-1, which the HSM does not hold",
    );
    assert!(!db.exists(), "a refused restore creates no store");
}
