//! Root rotation end to end: a real server under a concurrent Create/Get load,
//! `keyward root rotate` killed with SIGKILL half-way and resumed; every key,
//! made before or during the rotation, Gets the same bytes afterwards, every
//! record ends under the new root key, and the old one can be retired only then.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use common::admin::{assert_refused, multi_thread_runtime as runtime, output_text as text};
use common::load::{Load, check_all};

/// Records under `keyward-crk-<n>` according to `keyward root status`.
fn records_under(server: &TestServer, n: u32) -> u64 {
    let config = server.config();
    let out = server.keyward(&["root", "status", "--config", config.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "root status failed: {stderr}");
    stdout
        .lines()
        .find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next()? == format!("keyward-crk-{n}")).then(|| cols.nth(1)?.parse().ok())?
        })
        .unwrap_or(0)
}

#[test]
fn rotation_under_load_survives_kill_9_and_resumes() {
    let server = TestServer::start();
    let config = server.config();
    let config = config.to_str().unwrap();
    let rt = runtime();
    let tls = server.client_tls();

    let load = Load::start(&rt, server.addr, &tls, 4);
    load.wait_for(1500);

    // The rotation, slowed down so that the kill lands half-way through.
    let mut rotation = Command::new(common::keyward_bin())
        .args(["root", "rotate", "--config", config, "--max-rate", "300"])
        .env("SOFTHSM2_CONF", server.path("softhsm/softhsm2.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while records_under(&server, 2) < 300 {
        assert!(Instant::now() < deadline, "rotation made no progress");
        assert!(rotation.try_wait().unwrap().is_none(), "rotation ended too early");
        std::thread::sleep(Duration::from_millis(100));
    }
    rotation.kill().unwrap(); // SIGKILL
    rotation.wait().unwrap();
    let (old, new) = (records_under(&server, 1), records_under(&server, 2));
    eprintln!("killed the rotation with {old} records under CRK 1 and {new} under CRK 2");
    assert!(old > 0 && new > 0, "the kill must land half-way: {old} / {new}");

    // Half-way, the old root key is still needed and retiring it is refused.
    assert_refused(
        &server.keyward(&["root", "retire", "1", "--config", config]),
        "still sealed under keyward-crk-1",
    );
    // Every key made so far is readable now, half-way.
    check_all(&rt, server.addr, &tls, &load.snapshot());

    // Resume while the load goes on; it must not make another root key.
    let out = server.keyward(&["root", "rotate", "--config", config]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "resume failed: {stdout}{stderr}");
    assert!(
        stdout.contains("resuming the unfinished rotation to root key keyward-crk-2"),
        "{stdout}"
    );
    assert!(stdout.contains("keys re-sealed:"), "{stdout}");
    eprintln!("{stdout}");

    let keys = load.stop(&rt);
    eprintln!(
        "{} keys made under load ({} before the rotation)",
        keys.len(),
        1500
    );
    assert_eq!(records_under(&server, 1), 0, "no record left under CRK 1");
    assert_eq!(records_under(&server, 2) as usize, keys.len());
    assert_eq!(records_under(&server, 3), 0, "the resume made no CRK 3");
    // The server notices the new root key on its own schedule (its root-key
    // follower): wait for it to say so, on a loaded machine too.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server
        .log()
        .contains("new keys are now sealed under the newest root key")
    {
        assert!(Instant::now() < deadline, "the server did not switch to CRK 2");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Now the old root key can go; the newest never.
    let out = server.keyward(&["root", "retire", "1", "--config", config]);
    assert!(out.status.success(), "retire 1: {:?}", text(&out));
    assert_refused(
        &server.keyward(&["root", "retire", "2", "--config", config]),
        "newest root key",
    );
    assert_refused(
        &server.keyward(&["root", "retire", "1", "--config", config]),
        "holds no root key keyward-crk-1",
    );
    // Every key Gets the same bytes with CRK 1 gone.
    check_all(&rt, server.addr, &tls, &keys);
}

#[test]
fn bad_input_is_one_line_and_changes_nothing() {
    let server = TestServer::start();
    let config = server.config();
    let config = config.to_str().unwrap();
    assert_refused(
        &server.keyward(&["root", "retire", "7", "--config", config]),
        "holds no root key keyward-crk-7",
    );
    assert_refused(
        &server.keyward(&["root", "retire", "1", "--config", config]),
        "newest root key",
    );
    assert_refused(
        &server.keyward(&["root", "rotate", "--config", "/nonexistent/keyward.toml"]),
        "keyward.toml",
    );
    // A wrong PIN: the HSM refuses the login; nothing is created.
    let pin_file = server.path("softhsm/user.pin");
    let pin = std::fs::read(&pin_file).unwrap();
    std::fs::write(&pin_file, "not-the-pin\n").unwrap();
    let out = server.keyward(&["root", "rotate", "--config", config]);
    assert!(!out.status.success());
    assert_eq!(text(&out).1.trim_end().lines().count(), 1, "{:?}", text(&out));
    std::fs::write(&pin_file, pin).unwrap();
    let out = server.keyward(&["hsm", "status", "--config", config]);
    let (stdout, _) = text(&out);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("root keys:") && l.trim_end().ends_with("keyward-crk-1")),
        "still only CRK 1: {stdout}"
    );
}
