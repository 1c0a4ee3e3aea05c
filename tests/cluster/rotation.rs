//! One root key across nodes (issue 9 item 6): three nodes log in to one
//! SoftHSM token (the test stand-in for a network HSM, see
//! `common::cluster::Token::Shared`). `keyward root rotate` runs on node 0
//! while clients keep creating and reading keys through every node; every
//! node switches new seals to CRK 2 by itself, nothing is lost, and CRK 1 can
//! be retired (from another node) with every key still readable everywhere.
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::admin::{multi_thread_runtime, output_text};
use crate::common::bao_cluster::BaoCluster;
use crate::common::cluster::{KeywardCluster, PATIENCE, Token};
use crate::common::keyward_bin;
use crate::common::load::Load;
use crate::kmip;

/// Keys made (through all nodes together) before the rotation starts.
const BEFORE: usize = 150;
/// Keys made after the rotation finished, on top of what exists then.
const AFTER: usize = 60;
/// What a running server logs when it switched new seals to a newer CRK.
const SWITCHED: &str = "new keys are now sealed under the newest root key";

/// `keyward root status` on `node`: records per CRK version and whether
/// the HSM holds it (`keyward-crk-N  yes|no  records  with-material`).
fn root_status(nodes: &KeywardCluster, node: usize) -> (String, Vec<(u32, bool, u64)>) {
    let config = nodes.server(node).config();
    let out = nodes
        .server(node)
        .keyward(&["root", "status", "--config", config.to_str().unwrap()]);
    let (stdout, stderr) = output_text(&out);
    assert!(
        out.status.success(),
        "root status on node {node}: {stdout}{stderr}"
    );
    let rows = stdout
        .lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let version = cols.next()?.strip_prefix("keyward-crk-")?.parse().ok()?;
            let in_hsm = cols.next()? == "yes";
            let records = cols.next()?.parse().ok()?;
            Some((version, in_hsm, records))
        })
        .collect();
    (stdout, rows)
}

/// The rotation process, killed (by its PID) if the test fails before it ends.
struct Rotation(std::process::Child);

impl Drop for Rotation {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn records_under(rows: &[(u32, bool, u64)], version: u32) -> u64 {
    rows.iter().find(|r| r.0 == version).map_or(0, |r| r.2)
}

/// The CRK version the store's record for `uid` is sealed under.
fn sealed_under(bao: &BaoCluster, nodes: &KeywardCluster, uid: &str) -> u64 {
    let (data, _) = bao
        .kv_read(&nodes.record_path(uid))
        .expect("the record is in the store");
    data["crk_version"].as_u64().expect("crk_version")
}

#[test]
fn a_root_rotation_on_one_node_reaches_every_node_and_loses_nothing() {
    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 3, "cluster-rotate", "");
    assert_eq!(nodes.token(), Token::Shared);
    let rt = multi_thread_runtime();
    let tls = nodes.tls();
    let addrs: Vec<_> = (0..nodes.len()).map(|i| nodes.server(i).addr).collect();

    // Clients create and read keys through every node, before, during and after.
    let loads: Vec<Load> = addrs.iter().map(|&a| Load::start(&rt, a, &tls, 1)).collect();
    let created = |loads: &[Load]| loads.iter().map(Load::created).sum::<usize>();
    crate::common::bao_cluster::wait_for("keys made before the rotation", PATIENCE, || {
        (created(&loads) >= BEFORE).then_some(())
    });
    let (_, rows) = root_status(&nodes, 1);
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1],
        "only CRK 1 yet"
    );

    // The rotation, on node 0, its output lines timestamped as they come.
    let config0 = nodes.server(0).config();
    let mut rotation = Rotation(
        Command::new(keyward_bin())
            .args(["root", "rotate", "--config", config0.to_str().unwrap()])
            .env("SOFTHSM2_CONF", nodes.server(0).path("softhsm/softhsm2.conf"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rotation_started = Instant::now();
    let (lines_tx, lines) = mpsc::channel::<(Instant, String)>();
    let stdout = rotation.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send((Instant::now(), line));
        }
    });
    let stderr = rotation.0.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut printed = Vec::new();
    let crk2_at = loop {
        let (at, line) = lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("no `created root key` line from the rotation: {e}"));
        printed.push(line.clone());
        if line.contains("created root key keyward-crk-2") {
            break at;
        }
        assert!(!line.contains("resuming"), "nothing to resume: {line}");
    };
    let at_crk2 = created(&loads);

    // Every node notices CRK 2 in the shared token by itself.
    let mut switched_after = Vec::new();
    for i in 0..nodes.len() {
        let deadline = Instant::now() + PATIENCE;
        let after = loop {
            let log = nodes.server(i).log();
            if log.contains(SWITCHED) {
                break crk2_at.elapsed();
            }
            if Instant::now() > deadline {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "node {i} did not switch new seals to CRK 2 within {PATIENCE:?}; its log ends:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        switched_after.push(after);
    }
    let all_switched = *switched_after.iter().max().unwrap();

    // The rotation ends while the clients go on.
    let status = crate::common::bao_cluster::wait_for("the rotation to end", 3 * PATIENCE, || {
        rotation.0.try_wait().unwrap()
    });
    let rotation_took = rotation_started.elapsed();
    reader.join().unwrap();
    printed.extend(lines.try_iter().map(|(_, l)| l));
    let rotation_stderr = stderr_reader.join().unwrap();
    let report = printed.join("\n");
    assert!(
        status.success(),
        "root rotate failed:\n{report}\n{rotation_stderr}"
    );
    assert!(report.contains("keys re-sealed:"), "{report}");
    assert!(
        report.contains("every key is sealed under keyward-crk-2"),
        "{report}"
    );
    let at_end = created(&loads);

    // Keys keep coming through every node after the rotation.
    let target = at_end + AFTER;
    crate::common::bao_cluster::wait_for("keys made after the rotation", PATIENCE, || {
        (created(&loads) >= target).then_some(())
    });
    let per_node: Vec<Vec<(String, Vec<u8>)>> = loads.into_iter().map(|l| l.stop(&rt)).collect();
    let keys: Vec<(String, Vec<u8>)> = per_node.iter().flatten().cloned().collect();

    // A key made on node 1 and on node 2 after the rotation: sealed under CRK 2.
    for (i, made) in per_node.iter().enumerate() {
        let (uid, _) = made.last().expect("every node made keys");
        assert_eq!(sealed_under(&bao, &nodes, uid), 2, "node {i}'s newest key {uid}");
    }
    // No record left under CRK 1, seen from any node.
    for i in 0..nodes.len() {
        let (text, rows) = root_status(&nodes, i);
        assert_eq!(records_under(&rows, 1), 0, "node {i}:\n{text}");
        assert_eq!(records_under(&rows, 2), keys.len() as u64, "node {i}:\n{text}");
        assert!(text.contains("rotation: complete"), "node {i}:\n{text}");
    }
    let config2 = nodes.server(2).config();
    let verify = nodes
        .server(2)
        .keyward(&["store", "verify", "--config", config2.to_str().unwrap()]);
    let (verified, verify_err) = output_text(&verify);
    assert!(verify.status.success(), "store verify: {verified}{verify_err}");
    assert!(
        verified.contains(&format!("{} records checked", keys.len())) && verified.contains(" 0 FAILED"),
        "{verified}"
    );

    // Every key, made before, during and after, reads back on every node.
    let mut losses = 0;
    for (i, &addr) in addrs.iter().enumerate() {
        let bad = rt.block_on(kmip::check_all(addr, &tls, &keys));
        assert!(bad.is_empty(), "node {i}: {} keys unreadable: {bad:?}", bad.len());
        losses += bad.len();
    }

    // CRK 1 retired from node 1 (the token is one): everything still readable.
    let config1 = nodes.server(1).config();
    let retire = nodes
        .server(1)
        .keyward(&["root", "retire", "1", "--config", config1.to_str().unwrap()]);
    let (retired, retire_err) = output_text(&retire);
    assert!(retire.status.success(), "root retire 1: {retired}{retire_err}");
    for i in 0..nodes.len() {
        let (text, rows) = root_status(&nodes, i);
        assert!(
            rows.iter().all(|r| r.0 != 1 || !r.1),
            "node {i} still sees CRK 1 in the HSM:\n{text}"
        );
    }
    for (i, &addr) in addrs.iter().enumerate() {
        let bad = rt.block_on(kmip::check_all(addr, &tls, &keys));
        assert!(bad.is_empty(), "node {i} after retire: {bad:?}");
        // And a new key, made and read on this node.
        let uid = rt.block_on(kmip::create(addr, &tls)).unwrap();
        rt.block_on(kmip::get(addr, &tls, &uid)).unwrap();
        assert_eq!(sealed_under(&bao, &nodes, &uid), 2);
    }

    eprintln!(
        "cluster: root rotation on node 0 over 3 nodes sharing one token: {} keys \
         ({at_crk2} before CRK 2 existed, {} while the rotation ran, {} after), per node {:?}; \
         rotation took {rotation_took:.1?}; every node sealed new keys under CRK 2 within \
         {all_switched:.1?} of its creation (per node {switched_after:.1?}); losses = {losses}; \
         CRK 1 retired from node 1 with every key still readable on every node\n{report}",
        keys.len(),
        at_end - at_crk2,
        keys.len() - at_end,
        per_node.iter().map(Vec::len).collect::<Vec<_>>(),
    );
    assert_eq!(losses, 0);
}
