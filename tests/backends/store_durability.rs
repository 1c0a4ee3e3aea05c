//! An acknowledged create survives `kill -9` (DESIGN §4, §6).
//!
//! The test re-runs its own binary as a child that creates records as fast as
//! it can (many concurrent tasks, so group commit is in play) and prints each
//! uid once `create` returned `Ok`. The parent SIGKILLs it mid-stream, reopens
//! the database and checks every acknowledged record is there, byte for byte.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use keyward::store::{IndexEntry, Record, SqliteOptions, SqliteStore, Store};

const CHILD_DB_ENV: &str = "KEYWARD_STORE_DURABILITY_CHILD_DB";
const ACKS_BEFORE_KILL: usize = 3000;

/// The record the child writes for `n`; the parent recomputes it to compare.
fn record_for(n: u32) -> Record {
    let sealed: Vec<u8> = (0..72u32)
        .map(|i| (n.wrapping_mul(31).wrapping_add(i) % 251) as u8)
        .collect();
    Record {
        uid: format!("uid-{n:08}"),
        object_type: 2,
        state: n % 4,
        group: String::new(),
        crk_version: 1 + n % 3,
        sealed,
        attributes: format!("attributes of {n}").into_bytes(),
        index: vec![
            IndexEntry::new("x-Name", format!("vm-{n}")),
            IndexEntry::new("x-Vendor", "VMware"),
        ],
        version: 1,
        created_at: 1_700_000_000 + i64::from(n),
        updated_at: 1_700_000_000 + i64::from(n),
    }
}

/// Child side: does nothing unless started by the parent with the env var.
#[test]
fn child_creating_records_until_killed() {
    let Some(db) = std::env::var_os(CHILD_DB_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).unwrap());
        let next = Arc::new(AtomicU32::new(0));
        let deadline = Instant::now() + Duration::from_secs(60); // never outlive a lost parent
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (store, next) = (Arc::clone(&store), Arc::clone(&next));
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let record = record_for(next.fetch_add(1, Ordering::Relaxed));
                    store.create(&record).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {}", record.uid).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_creates_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durability.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            // The test's name inside the `backends` binary.
            "store_durability::child_creating_records_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let mut acked: Vec<String> = Vec::new();
    for line in lines.by_ref() {
        if let Some(uid) = line.unwrap().strip_prefix("ACK ") {
            acked.push(uid.to_owned());
            if acked.len() >= ACKS_BEFORE_KILL {
                break;
            }
        }
    }
    assert_eq!(acked.len(), ACKS_BEFORE_KILL, "child stopped before being killed");
    child.kill().unwrap(); // SIGKILL on Unix
    // Lines still in the pipe were acknowledged before the kill: they count too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(uid) = line.strip_prefix("ACK ") {
            acked.push(uid.to_owned());
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "child was not killed: {status:?}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
        store.health().await.unwrap();
        for uid in &acked {
            let n: u32 = uid.trim_start_matches("uid-").parse().unwrap();
            let got = store
                .get(uid)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged {uid} lost"));
            let mut want = record_for(n);
            want.normalize_index();
            assert_eq!(got, want, "{uid} not intact");
        }
        let stored: u64 = store.count_by_crk().await.unwrap().values().sum();
        eprintln!("{} acknowledged, {stored} stored after kill -9", acked.len());
        assert!(stored >= acked.len() as u64);
    });
}
