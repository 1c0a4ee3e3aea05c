//! Store throughput: durable creates (group commit) at 1 and 64 concurrent
//! tasks, and gets. The database lives on the real disk (tempdir), so every
//! commit pays a real fsync.
//!
//! Run: `cargo bench --bench store`

// A benchmark is a test harness: any failure should abort the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyward::store::{IndexEntry, Record, SqliteOptions, SqliteStore, Store};
use tokio::runtime::Runtime;

static NEXT_UID: AtomicU64 = AtomicU64::new(0);

fn fresh_record() -> Record {
    let n = NEXT_UID.fetch_add(1, Ordering::Relaxed);
    let uid = format!("{n:016x}-0000-4000-8000-000000000000");
    Record {
        uid,
        object_type: 2,
        state: 1,
        group: String::new(),
        crk_version: 1,
        sealed: vec![0x5A; 60], // nonce + 32-byte key + tag
        attributes: vec![0x42; 400],
        index: vec![
            IndexEntry::new("Cryptographic Algorithm", "AES"),
            IndexEntry::new("Cryptographic Length", "256"),
            IndexEntry::new("x-Name", format!("vm-{n}")),
        ],
        version: 1,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

/// Runs `total` operations spread over `tasks` concurrent tasks; returns the wall time.
fn run_concurrent<F, Fut>(runtime: &Runtime, tasks: u64, total: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    runtime.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let op = Arc::clone(&op);
                let share = total / tasks + u64::from(t < total % tasks);
                tokio::spawn(async move {
                    for i in 0..share {
                        op(i).await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        start.elapsed()
    })
}

fn store_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db"), SqliteOptions::default()).unwrap());

    let mut group = c.benchmark_group("sqlite");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for tasks in [1u64, 64] {
        group.bench_function(format!("create/{tasks}-tasks"), |b| {
            b.iter_custom(|iters| {
                let store = Arc::clone(&store);
                run_concurrent(&runtime, tasks, iters, move |_| {
                    let store = Arc::clone(&store);
                    async move { store.create(&fresh_record()).await.unwrap() }
                })
            })
        });
    }

    // Reads over a populated store.
    let uids: Arc<Vec<String>> = Arc::new(runtime.block_on(async {
        let mut uids = Vec::new();
        let mut after = None;
        loop {
            let page = store.list_page(after.as_deref(), 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.uid.clone());
            uids.extend(page.into_iter().map(|r| r.uid));
        }
        uids
    }));
    for tasks in [1u64, 64] {
        group.bench_function(format!("get/{tasks}-tasks"), |b| {
            b.iter_custom(|iters| {
                let (store, uids) = (Arc::clone(&store), Arc::clone(&uids));
                run_concurrent(&runtime, tasks, iters, move |i| {
                    let store = Arc::clone(&store);
                    let uid = uids[(i as usize * 7919) % uids.len()].clone();
                    async move {
                        black_box(store.get(&uid).await.unwrap().unwrap());
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
