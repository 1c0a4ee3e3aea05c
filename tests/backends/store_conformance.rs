//! Every store backend passes the same contract (src/store/conformance.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keyward::store::conformance::{self, ConformanceFailure};
use keyward::store::{MemoryStore, SqliteOptions, SqliteStore, Store, StoreError};

fn report(backend: &str, outcome: Result<(), Vec<ConformanceFailure>>) {
    let failures = outcome.err().unwrap_or_default();
    let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{backend} fails {} check(s):\n{}",
        failures.len(),
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    let outcome = conformance::run_all(|| async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn Store>) }).await;
    report("memory", outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let outcome = conformance::run_all(|| {
        let path = dir.path().join(format!("store-{}.db", next.fetch_add(1, Ordering::Relaxed)));
        async move { SqliteStore::open(path, SqliteOptions::default()).map(|s| Arc::new(s) as Arc<dyn Store>) }
    })
    .await;
    report("sqlite", outcome);
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_store_conforms_on_single_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let next = AtomicUsize::new(0);
    let outcome = conformance::run_all(|| {
        let path = dir
            .path()
            .join(format!("store-{}.db", next.fetch_add(1, Ordering::Relaxed)));
        // Tiny batches and one reader exercise the queue and pool limits.
        let options = SqliteOptions {
            readers: 1,
            max_batch: 3,
            queue_depth: 2,
            ..SqliteOptions::default()
        };
        async move { SqliteStore::open(path, options).map(|s| Arc::new(s) as Arc<dyn Store>) }
    })
    .await;
    report("sqlite (small limits)", outcome);
}

#[tokio::test]
async fn sqlite_records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.db");
    let record = conformance::sample_record("uid-a", 1);
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store.create(&record).await.unwrap();
        store.update(&record, 1).await.unwrap();
    }
    let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
    let got = store.get("uid-a").await.unwrap().unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(got.sealed, record.sealed);
    store.health().await.unwrap();
}

#[tokio::test]
async fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE meta SET value = 999 WHERE key = 'schema_version'", [])
        .unwrap();
    drop(conn);
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::Other(why)) => assert!(why.contains("newer"), "{why}"),
        other => panic!("opened a newer schema: {other:?}"),
    }
}

#[tokio::test]
async fn sqlite_refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

/// A store with two planted bugs, to prove the suite notices them.
struct SloppyStore(MemoryStore);

impl Store for SloppyStore {
    fn create<'a>(&'a self, record: &'a keyward::store::Record) -> keyward::store::StoreFuture<'a, ()> {
        self.0.create(record)
    }
    fn get<'a>(&'a self, uid: &'a str) -> keyward::store::StoreFuture<'a, Option<keyward::store::Record>> {
        self.0.get(uid)
    }
    fn update<'a>(
        &'a self,
        record: &'a keyward::store::Record,
        _stale: u64,
    ) -> keyward::store::StoreFuture<'a, u64> {
        // Bug: no compare-and-swap, reads the current version and writes blindly.
        Box::pin(async move {
            let current = self.0.get(&record.uid).await?.ok_or(StoreError::NotFound)?;
            self.0.update(record, current.version).await
        })
    }
    fn find<'a>(&'a self, query: &'a keyward::store::Query) -> keyward::store::StoreFuture<'a, Vec<String>> {
        // Bug: ignores offset.
        Box::pin(async move {
            let query = keyward::store::Query {
                offset: 0,
                ..query.clone()
            };
            self.0.find(&query).await
        })
    }
    fn delete<'a>(&'a self, uid: &'a str, _expected: Option<u64>) -> keyward::store::StoreFuture<'a, bool> {
        // Bug: ignores the expected version.
        self.0.delete(uid, None)
    }
    fn capabilities(&self) -> keyward::store::Capabilities {
        self.0.capabilities()
    }
    fn count_by_crk(&self) -> keyward::store::StoreFuture<'_, std::collections::BTreeMap<u32, u64>> {
        self.0.count_by_crk()
    }
    fn list_page<'a>(
        &'a self,
        after_uid: Option<&'a str>,
        limit: usize,
    ) -> keyward::store::StoreFuture<'a, Vec<keyward::store::Record>> {
        self.0.list_page(after_uid, limit)
    }
    fn health(&self) -> keyward::store::StoreFuture<'_, ()> {
        self.0.health()
    }
    fn export(&self, page_size: usize) -> keyward::store::StoreFuture<'_, keyward::store::Export> {
        self.0.export(page_size)
    }
    fn import(
        &self,
        records: keyward::store::Export,
        _replace: bool,
    ) -> keyward::store::StoreFuture<'_, u64> {
        // Bug: never replaces.
        self.0.import(records, false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_catches_a_sloppy_store() {
    let failures =
        conformance::run_all(|| async { Ok(Arc::new(SloppyStore(MemoryStore::new())) as Arc<dyn Store>) })
            .await
            .unwrap_err();
    let failed: Vec<&str> = failures.iter().map(|f| f.check).collect();
    for expected in [
        "update_compare_and_swap",
        "concurrent_cas_one_winner",
        "find_order_offset_limit",
        "import_replace",
        "delete_checks_the_version",
    ] {
        assert!(
            failed.contains(&expected),
            "{expected} not caught; failures: {failures:?}"
        );
    }
}
