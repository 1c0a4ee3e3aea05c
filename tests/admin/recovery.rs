//! Root-key recovery from custodian shares, end to end on SoftHSM: a token
//! initialised with 3 custodians (2 needed), keys created and a root rotation
//! done, a backup taken; then the token and the store are thrown away, as a
//! lost appliance disk would lose them. One share rebuilds nothing; two
//! rebuild both root key versions in a fresh token, the backup restores, and
//! every key serves the same bytes.
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

/// The token and the store gone: a fresh token under the same label and PINs.
fn lose_the_disk(server: &TestServer) {
    let tokens = server.path("softhsm/tokens");
    std::fs::remove_dir_all(&tokens).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(server.path(&format!("keyward.db{suffix}")));
    }
    let module = module_of(&server.config());
    stdout_of(&server.keyward(&[
        "hsm",
        "init-token",
        "--module",
        &module,
        "--label",
        "keyward",
        "--so-pin-file",
        server.path("softhsm/so.pin").to_str().unwrap(),
        "--user-pin-file",
        server.path("softhsm/user.pin").to_str().unwrap(),
    ]));
}

/// `keyward hsm init` with 3 custodians, 2 needed, shares to `out`.
fn init_with_custodians(server: &TestServer, config: &str, out: [&str; 3]) -> std::process::Output {
    let mut args = vec![
        "hsm",
        "init",
        "--config",
        config,
        "--custodians",
        "3",
        "--threshold",
        "2",
    ];
    for path in out {
        args.extend(["--share-out", path]);
    }
    server.keyward(&args)
}

/// `keyward hsm recover --versions 1-2` from the share files `shares`.
fn recover_versions_1_2(server: &TestServer, config: &str, shares: &[&str]) -> std::process::Output {
    let mut args = vec!["hsm", "recover", "--config", config, "--versions", "1-2"];
    for share in shares {
        args.extend(["--share", share]);
    }
    server.keyward(&args)
}

fn module_of(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text.lines().find(|l| l.starts_with("module = ")).unwrap();
    line.trim_start_matches("module = ").trim_matches('"').to_owned()
}

#[test]
fn two_of_three_custodian_shares_rebuild_the_root_keys_of_a_lost_token() {
    let mut server = TestServer::start();
    let config = server.config();
    let config = config.to_str().unwrap();
    // Start over on a token whose root keys derive from a custodian master.
    server.terminate();
    lose_the_disk(&server);
    let shares_dir = server.dir.path().join("custodians");
    std::fs::create_dir(&shares_dir).unwrap();
    let share = |n: &str| shares_dir.join(n).to_str().unwrap().to_owned();
    let out = stdout_of(&init_with_custodians(
        &server,
        config,
        [&share("alice"), &share("bob"), &share("carol")],
    ));
    assert!(
        out.contains("3 custodian shares") && out.contains("2 rebuild"),
        "{out}"
    );
    for name in ["alice", "bob", "carol"] {
        let meta = std::fs::metadata(share(name)).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{name}'s share is private"
        );
        assert!(
            std::fs::read_to_string(share(name))
                .unwrap()
                .starts_with("keyward-share-v1-")
        );
    }
    // A second init is refused, and the share files are not rewritten.
    assert_refused(
        &init_with_custodians(&server, config, [&share("x"), &share("y"), &share("z")]),
        "already holds root key keyward-crk-1",
    );
    assert!(!Path::new(&share("x")).exists());

    server.spawn();
    let rt = runtime();
    let tls = server.client_tls();
    let load = Load::start(&rt, server.addr, &tls, 2);
    load.wait_for(20);
    let before_rotation = load.stop(&rt);
    // A rotation derives root key 2 from the same master.
    stdout_of(&server.keyward(&["root", "rotate", "--config", config]));
    let load = Load::start(&rt, server.addr, &tls, 2);
    load.wait_for(20);
    let after_rotation = load.stop(&rt);
    let backup = server.dir.path().join("backup.db");
    stdout_of(&server.keyward(&["backup", "--config", config, "--out", backup.to_str().unwrap()]));
    server.terminate();

    lose_the_disk(&server);
    let status = stdout_of(&server.keyward(&["hsm", "status", "--config", config]));
    assert!(status.contains("root keys:     none"), "{status}");
    // One share alone rebuilds nothing, and leaves the token as it was.
    assert_refused(
        &recover_versions_1_2(&server, config, &[&share("bob")]),
        "2 shares are needed, 1 given",
    );
    let status = stdout_of(&server.keyward(&["hsm", "status", "--config", config]));
    assert!(
        status.contains("root keys:     none") && status.contains("recovery:      none"),
        "{status}"
    );
    // A share with a typo is named.
    let damaged = shares_dir.join("damaged");
    let mut text = std::fs::read_to_string(share("carol")).unwrap();
    let at = text.len() - 20;
    let flipped = if &text[at..=at] == "0" { "1" } else { "0" };
    text.replace_range(at..=at, flipped);
    std::fs::write(&damaged, text).unwrap();
    assert_refused(
        &recover_versions_1_2(&server, config, &[&share("alice"), damaged.to_str().unwrap()]),
        "its check does not match",
    );
    // Two shares rebuild both versions.
    let out = stdout_of(&recover_versions_1_2(
        &server,
        config,
        &[&share("alice"), &share("carol")],
    ));
    assert!(
        out.contains("rebuilt root keys keyward-crk-1, keyward-crk-2 from 2 shares"),
        "{out}"
    );
    let status = stdout_of(&server.keyward(&["hsm", "status", "--config", config]));
    assert!(status.contains("recovery:      custodian master"), "{status}");

    let out = stdout_of(&server.keyward(&[
        "restore",
        "--config",
        config,
        "--from",
        backup.to_str().unwrap(),
        "--verify-all",
    ]));
    assert!(out.contains("manifest verified"), "{out}");
    server.spawn();
    check_all(&rt, server.addr, &tls, &before_rotation);
    check_all(&rt, server.addr, &tls, &after_rotation);
}
