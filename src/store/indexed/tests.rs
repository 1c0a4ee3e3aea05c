use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::store::conformance::{self, sample_record};
use crate::store::{Conflict, MemoryStore};

/// A memory store the test can take out of reach.
#[derive(Default)]
struct Remote {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Remote {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::unavailable("test outage")),
            false => Ok(()),
        }
    }
}

macro_rules! reach {
    ($self:ident, $call:expr) => {
        Box::pin(async move {
            $self.check()?;
            $call.await
        })
    };
}

impl Store for Remote {
    fn create<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
        reach!(self, self.inner.create(record))
    }
    fn get<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
        reach!(self, self.inner.get(uid))
    }
    fn update<'a>(&'a self, record: &'a Record, expected: u64) -> StoreFuture<'a, u64> {
        reach!(self, self.inner.update(record, expected))
    }
    fn delete<'a>(&'a self, uid: &'a str, expected: Option<u64>) -> StoreFuture<'a, bool> {
        reach!(self, self.inner.delete(uid, expected))
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            server_side_query: false,
            local: false,
            ..self.inner.capabilities()
        }
    }
    fn find<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Vec<String>> {
        reach!(self, self.inner.find(query))
    }
    fn count_by_crk(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        reach!(self, self.inner.count_by_crk())
    }
    fn list_page<'a>(&'a self, after: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Record>> {
        reach!(self, self.inner.list_page(after, limit))
    }
    fn health(&self) -> StoreFuture<'_, ()> {
        reach!(self, self.inner.health())
    }
    fn export(&self, page_size: usize) -> StoreFuture<'_, Export> {
        reach!(self, self.inner.export(page_size))
    }
    fn import(&self, records: Export, replace: bool) -> StoreFuture<'_, u64> {
        reach!(self, self.inner.import(records, replace))
    }
}

struct Node {
    store: IndexedStore,
    remote: Arc<Remote>,
    events: Arc<Mutex<Vec<IndexEvent>>>,
    _dir: tempfile::TempDir,
}

fn node_over(remote: Arc<Remote>, read_grace: Duration) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = IndexSettings::new(dir.path().join("index.db"));
    settings.read_grace = read_grace;
    let store = IndexedStore::open(Arc::clone(&remote) as Arc<dyn Store>, &settings).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    store.set_events(move |e| lock(&sink).push(e));
    Node {
        store,
        remote,
        events,
        _dir: dir,
    }
}

fn node(read_grace: Duration) -> Node {
    node_over(Arc::new(Remote::default()), read_grace)
}

impl Node {
    fn events(&self) -> Vec<IndexEvent> {
        lock(&self.events).clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_store_contract() {
    let dirs = Arc::new(Mutex::new(Vec::new()));
    conformance::run_all(|| {
        let dirs = Arc::clone(&dirs);
        async move {
            let dir = tempfile::tempdir().map_err(|e| StoreError::Other(e.to_string()))?;
            let settings = IndexSettings::new(dir.path().join("index.db"));
            lock(&dirs).push(dir);
            let store = IndexedStore::open(Arc::new(Remote::default()), &settings)?;
            Ok(Arc::new(store) as Arc<dyn Store>)
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_record_deleted_in_the_store_is_gone_at_once_and_the_sync_drops_it_from_the_index() {
    let node = node(DEFAULT_READ_GRACE);
    node.store.create(&sample_record("a", 1)).await.unwrap();
    node.store.create(&sample_record("b", 2)).await.unwrap();
    assert_eq!(node.store.find(&Query::default()).await.unwrap(), ["a", "b"]);
    // The customer deletes "a" in their key manager.
    node.remote.inner.delete("a", None).await.unwrap();
    // The index still lists it (until the sync), but a read never serves it.
    assert!(node.store.get("a").await.unwrap().is_none());
    assert_eq!(node.events(), [IndexEvent::DeletedInStore { uid: "a".into() }]);
    node.remote.inner.delete("b", None).await.unwrap();
    let report = node.store.sync().await.unwrap();
    assert_eq!((report.remote, report.deleted), (0, 1));
    assert!(node.store.find(&Query::default()).await.unwrap().is_empty());
    assert_eq!(node.events().len(), 2);
}

#[tokio::test]
async fn the_sync_fetches_what_other_nodes_wrote() {
    let remote = Arc::new(Remote::default());
    let a = node_over(Arc::clone(&remote), DEFAULT_READ_GRACE);
    let b = node_over(Arc::clone(&remote), DEFAULT_READ_GRACE);
    a.store.create(&sample_record("k1", 1)).await.unwrap();
    a.store.create(&sample_record("k2", 2)).await.unwrap();
    assert!(b.store.find(&Query::default()).await.unwrap().is_empty());
    // A read through fetches one; the sync the other.
    assert!(b.store.get("k1").await.unwrap().is_some());
    let report = b.store.sync().await.unwrap();
    assert_eq!((report.remote, report.fetched, report.deleted), (2, 1, 0));
    assert_eq!(b.store.find(&Query::default()).await.unwrap(), ["k1", "k2"]);
    // An update on A reaches B's reads at once.
    let mut changed = sample_record("k1", 1);
    changed.state = 3;
    a.store.update(&changed, 1).await.unwrap();
    assert_eq!(b.store.get("k1").await.unwrap().unwrap().state, 3);
    assert!(b.events().is_empty(), "{:?}", b.events());
}

#[tokio::test]
async fn an_older_copy_written_back_is_refused() {
    let node = node(DEFAULT_READ_GRACE);
    let old = sample_record("a", 1);
    node.store.create(&old).await.unwrap();
    let kept = node.store.get("a").await.unwrap().unwrap();
    let mut newer = old.clone();
    newer.state = 5;
    node.store.update(&newer, 1).await.unwrap();
    // The operator writes version 1 back (delete, then restore the old copy).
    node.remote.inner.delete("a", None).await.unwrap();
    node.remote
        .inner
        .import(Export::from_records(vec![kept], 10), false)
        .await
        .unwrap();
    let refused = node.store.get("a").await;
    assert!(matches!(refused, Err(StoreError::RolledBack(_))), "{refused:?}");
    assert_eq!(
        node.events(),
        [IndexEvent::RolledBack {
            uid: "a".into(),
            seen: 2,
            found: 1
        }]
    );
    // The sync refuses it too; a rebuild (after a deliberate restore) accepts it.
    assert_eq!(
        node.store.sync().await.unwrap().rolled_back,
        0,
        "known uid: not refetched"
    );
    assert_eq!(node.store.rebuild().await.unwrap(), 1);
    assert_eq!(node.store.get("a").await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn an_outage_serves_local_copies_within_the_grace_and_refuses_writes() {
    let node = node(Duration::from_secs(3600));
    node.store.create(&sample_record("a", 1)).await.unwrap();
    node.remote.down.store(true, Ordering::SeqCst);
    let write = node.store.create(&sample_record("b", 2)).await;
    assert!(matches!(write, Err(ref e) if e.is_transient()), "{write:?}");
    assert!(matches!(node.store.reach(), Reach::Grace { .. }));
    assert_eq!(node.store.get("a").await.unwrap().unwrap().uid, "a");
    // Never "not found" from the copy alone.
    assert!(node.store.get("never").await.unwrap_err().is_transient());
    node.remote.down.store(false, Ordering::SeqCst);
    node.store.health().await.unwrap();
    assert_eq!(node.store.reach(), Reach::Up);
    let events = node.events();
    assert!(matches!(events[0], IndexEvent::Unreachable { .. }), "{events:?}");
    assert_eq!(events[1], IndexEvent::ServedFromCopy { uid: "a".into() });
    assert!(matches!(events[2], IndexEvent::Reachable { .. }), "{events:?}");
    node.store.create(&sample_record("b", 2)).await.unwrap();
}

#[tokio::test]
async fn beyond_the_grace_reads_fail_too() {
    let node = node(Duration::ZERO);
    node.store.create(&sample_record("a", 1)).await.unwrap();
    node.remote.down.store(true, Ordering::SeqCst);
    assert!(node.store.get("a").await.unwrap_err().is_transient());
    assert!(matches!(node.store.reach(), Reach::Down { .. }));
}

#[tokio::test]
async fn a_lost_compare_and_swap_leaves_the_index_alone() {
    let node = node(DEFAULT_READ_GRACE);
    node.store.create(&sample_record("a", 1)).await.unwrap();
    let mut mine = sample_record("a", 1);
    mine.state = 9;
    assert_eq!(
        node.store.update(&mine, 7).await,
        Err(StoreError::Conflict(Conflict::Version))
    );
    assert_eq!(node.store.get("a").await.unwrap().unwrap().state, 1);
}
