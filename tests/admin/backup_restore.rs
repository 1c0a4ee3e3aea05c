//! Backup and restore end to end: a backup taken while a real server is under
//! a Create/Get load, restored into a fresh store, serves every key it holds
//! with the same bytes; a backup sealed under a root key the HSM no longer
//! holds is refused; bad input is a one-line error that changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::TestServer;
use common::admin::{assert_refused, multi_thread_runtime as runtime};
use common::load::{Load, check_all};

/// A command that must succeed; its stdout.
fn stdout_of(out: &std::process::Output) -> String {
    common::admin::assert_ok(out).0
}

/// The store's files, moved away as an administrator would for a fresh store.
fn move_store_away(db: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = db.with_file_name(format!("keyward.db{suffix}"));
        if from.exists() {
            std::fs::rename(&from, to.join(format!("keyward.db{suffix}"))).unwrap();
        }
    }
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn backup_under_load_restores_into_a_fresh_store() {
    let mut server = TestServer::start();
    let config = server.config();
    let config = config.to_str().unwrap();
    let rt = runtime();
    let tls = server.client_tls();
    let backup = server.dir.path().join("backup.db");
    let backup_arg = backup.to_str().unwrap();

    let load = Load::start(&rt, server.addr, &tls, 4);
    load.wait_for(500);
    let before_backup = load.snapshot();
    let out = stdout_of(&server.keyward(&["backup", "--config", config, "--out", backup_arg]));
    assert!(out.contains("key material sealed under keyward-crk-1"), "{out}");
    let made = load.stop(&rt);
    eprintln!(
        "{out}{} keys made, {} before the backup",
        made.len(),
        before_backup.len()
    );
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup is readable by its owner only");
    assert_refused(
        &server.keyward(&["backup", "--config", config, "--out", backup_arg]),
        "refusing to overwrite",
    );

    // Refused into the live, non-empty store; nothing changes.
    assert_refused(
        &server.keyward(&["restore", "--config", config, "--from", backup_arg]),
        "--force",
    );

    // A fresh store: stop the server, move the database away, restore.
    server.terminate();
    let db = server.path("keyward.db");
    move_store_away(&db, &server.dir.path().join("old-store"));
    let out = stdout_of(&server.keyward(&["restore", "--config", config, "--from", backup_arg]));
    assert!(out.contains("verified: "), "{out}");
    eprintln!("{out}");
    server.spawn();
    check_all(&rt, server.addr, &tls, &before_backup);

    // Bad input: one line, non-zero, the store untouched.
    let junk = server.dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let restored = server.keyward(&["root", "status", "--config", config]);
    let status_before = stdout_of(&restored);
    for (from, needle) in [
        ("/nonexistent/backup.db", "no such file"),
        (junk.to_str().unwrap(), "not a keyward database"),
    ] {
        assert_refused(
            &server.keyward(&["restore", "--config", config, "--from", from, "--force"]),
            needle,
        );
    }
    assert_refused(
        &server.keyward(&[
            "backup",
            "--config",
            "/nonexistent/keyward.toml",
            "--out",
            "/tmp/x.db",
        ]),
        "keyward.toml",
    );
    assert_eq!(
        stdout_of(&server.keyward(&["root", "status", "--config", config])),
        status_before
    );

    // Rotate, retire CRK 1: the old backup is now sealed under a root key the
    // HSM lacks, and restoring it is refused — even with --force, even into a fresh store.
    stdout_of(&server.keyward(&["root", "rotate", "--config", config]));
    stdout_of(&server.keyward(&["root", "retire", "1", "--config", config]));
    assert_refused(
        &server.keyward(&["restore", "--config", config, "--from", backup_arg, "--force"]),
        "keyward-crk-1",
    );
    server.terminate();
    let db_bytes = file_bytes(&db);
    move_store_away(&db, &server.dir.path().join("rotated-store"));
    assert_refused(
        &server.keyward(&["restore", "--config", config, "--from", backup_arg]),
        "root keys the HSM does not hold: keyward-crk-1",
    );
    assert!(!db.exists(), "a refused restore creates no store");

    // A backup of the rotated store restores with --force over a non-empty one.
    move_store_away(
        &server.dir.path().join("rotated-store/keyward.db"),
        server.env_dir().as_path(),
    );
    assert_eq!(file_bytes(&db), db_bytes);
    server.spawn();
    let rotated_backup = server.dir.path().join("rotated.db");
    stdout_of(&server.keyward(&[
        "backup",
        "--config",
        config,
        "--out",
        rotated_backup.to_str().unwrap(),
    ]));
    let out = stdout_of(&server.keyward(&[
        "restore",
        "--config",
        config,
        "--from",
        rotated_backup.to_str().unwrap(),
        "--force",
        "--verify-all",
    ]));
    assert!(out.contains("key material sealed under keyward-crk-2"), "{out}");
    check_all(&rt, server.addr, &tls, &before_backup);
}
