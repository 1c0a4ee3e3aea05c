//! Short modes of `bench/crash` and `bench/soak` (the `keyward-crash` tool against
//! a server it starts from a fresh `scripts/dev-env` folder): 5 `kill -9` cycles
//! under 8 writers lose no acknowledged write, and a 20 s mixed vCenter flow keeps
//! being answered without growing memory or descriptors beyond a generous bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh development environment (SoftHSM token, root key, PKI, SQLite store).
fn dev_env(dir: &Path) -> PathBuf {
    let env = dir.join("env");
    let status = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dev-env"))
        .arg(&env)
        .args(["--listen", "127.0.0.1:0"])
        .env("KEYWARD_BIN", common::keyward_bin())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/dev-env failed");
    env
}

/// Runs `keyward-crash <args> --env ENV --keyward <the test build> --json`; its JSON.
fn crash_tool(env: &Path, args: &[&str]) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyward-crash"))
        .args(args)
        .arg("--env")
        .arg(env)
        .arg("--keyward")
        .arg(common::keyward_bin())
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON from keyward-crash ({e}): {stdout}\n{stderr}"));
    eprintln!("{json}");
    (out.status.success(), json)
}

fn num(json: &serde_json::Value, field: &str) -> u64 {
    json[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {json}"))
}

#[test]
fn five_kill_9_cycles_under_8_writers_lose_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let env = dev_env(dir.path());
    let (ok, json) = crash_tool(
        &env,
        &[
            "cycles",
            "--cycles",
            "5",
            "--writers",
            "8",
            "--min-acks",
            "16",
            "--max-acks",
            "64",
        ],
    );
    assert_eq!(num(&json, "losses"), 0, "acknowledged writes lost: {json}");
    assert_eq!(num(&json, "refused"), 0, "writes refused before a kill: {json}");
    assert!(ok, "keyward-crash failed: {json}");
    assert_eq!(num(&json, "cycles"), 5);
    // Each cycle's kill comes after at least 16 acknowledged writes; half are Creates
    // and, once keys exist, the others Add Attribute on them.
    let (creates, adds) = (
        num(&json, "acknowledged_creates"),
        num(&json, "acknowledged_add_attributes"),
    );
    assert!(creates + adds >= 5 * 16, "{json}");
    assert!(creates > 0 && adds > 0, "{json}");
    // The kill lands under writes: some were in flight, at most one per writer per cycle.
    let failed = num(&json, "failed_attempts");
    assert!(failed > 0 && failed <= 5 * 8, "{json}");
}

#[test]
fn short_soak_keeps_answering_without_leaking_memory_or_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let env = dev_env(dir.path());
    let workers = 8;
    // p99 over 2 s of a debug build on a shared machine is noise: not judged here
    // (huge tolerance); RSS and descriptors are, with a generous bound.
    let (ok, json) = crash_tool(
        &env,
        &[
            "soak",
            "--seconds",
            "20",
            "--interval",
            "2",
            "--workers",
            &workers.to_string(),
            "--rate",
            "100",
            "--rss-tolerance",
            "0.5",
            "--p99-tolerance",
            "1000",
        ],
    );
    assert_eq!(num(&json, "errors"), 0, "the server stopped answering: {json}");
    assert_eq!(json["still_answers"], serde_json::Value::Bool(true), "{json}");
    let samples = json["samples"].as_array().unwrap();
    assert!(samples.len() >= 9, "{json}");
    for s in samples {
        assert!(num(s, "steps") > 0, "an interval without an answer: {s}");
    }
    let idle_rss = num(&json, "idle_rss_kib");
    let idle_fds = num(&json, "idle_open_files");
    for s in samples {
        assert!(
            num(s, "rss_kib") <= idle_rss + 64 * 1024,
            "RSS grew by more than 64 MiB: {json}"
        );
        // Each worker holds at most one connection; the store may open a few files.
        assert!(
            num(s, "open_files") <= idle_fds + workers + 8,
            "descriptors beyond connections + 8: {json}"
        );
    }
    assert!(
        num(&json, "after_open_files") <= idle_fds + 8,
        "descriptors kept after the load: {json}"
    );
    assert!(ok, "RSS or descriptors not flat: {json}");
}
