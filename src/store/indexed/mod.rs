//! A remote store seen through this node's local index (issue 9 items 2 and 5).
//!
//! A cloud key manager answers get, create, update and delete, but no query,
//! and it can be out of reach. Each node therefore keeps, beside it, an
//! embedded SQLite file with a copy of every record it has seen — sealed blobs
//! included, which are useless without the HSM — and:
//!
//! - **Writes go to the remote store first.** A write is acknowledged only when
//!   the remote store accepted it; the local copy follows.
//! - **Reads go to the remote store** (read-through on every get), so a record
//!   another node changed is current and one deleted in the store is gone at
//!   once. The local copy answers only while the remote store is unreachable,
//!   and only for `read_grace` after the last successful exchange: VMs keep
//!   powering on during a short outage, never longer.
//! - **Queries are answered from the index** (`find`, `count`), never as the
//!   final word: the key service reads every candidate through and checks its
//!   binding before it counts (see `capabilities().local`).
//! - **Rollbacks are refused**: the index remembers the highest record version
//!   this node has seen; the remote store answering with an older one is
//!   [`StoreError::RolledBack`] (and an event), whatever its binding says.
//! - **A periodic sync** ([`IndexedStore::sync`]) lists the remote store's uids,
//!   drops records deleted there (an event each) and fetches the ones other
//!   nodes created, so that Locate sees them within `sync_interval`.
//!
//! The index is never the source of truth: deleting the file loses nothing,
//! and `keyward store reindex` rebuilds it from the remote store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{
    Capabilities, Export, Query, Record, SqliteOptions, SqliteStore, Store, StoreError, StoreFuture,
};

/// Default time between two syncs of the index with the remote store.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(10);
/// Default time a node serves reads from its local copies once the remote
/// store stopped answering.
pub const DEFAULT_READ_GRACE: Duration = Duration::from_secs(300);
/// Uids listed per page by the sync. Large: a backend whose listing cannot
/// page (OpenBao's LIST) answers each page from one whole listing, so few pages
/// keep a sync at one listing per 100,000 records.
const SYNC_PAGE: usize = 100_000;
/// Records the sync fetches at once.
const SYNC_FETCH_CONCURRENCY: usize = 8;

/// The `[cluster]` section: where the index lives and how it follows the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSettings {
    /// The index file (SQLite) on this node.
    pub path: PathBuf,
    /// How often the index is compared with the remote store.
    pub sync_interval: Duration,
    /// How long local copies answer reads once the remote store is out of
    /// reach (zero: never).
    pub read_grace: Duration,
}

impl IndexSettings {
    pub fn new(path: impl Into<PathBuf>) -> IndexSettings {
        IndexSettings {
            path: path.into(),
            sync_interval: DEFAULT_SYNC_INTERVAL,
            read_grace: DEFAULT_READ_GRACE,
        }
    }
}

/// Something the audit trail must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexEvent {
    /// A record this node had seen is no longer in the remote store.
    DeletedInStore { uid: String },
    /// The remote store answered with an older version than this node had seen.
    RolledBack { uid: String, seen: u64, found: u64 },
    /// The remote store stopped answering; reads are served from local copies
    /// until `grace` has passed.
    Unreachable { detail: String, grace: Duration },
    /// The remote store answers again.
    Reachable { after: Duration },
    /// A read was answered from the local copy because the store is out of reach.
    ServedFromCopy { uid: String },
}

/// Where the node stands with its remote store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The last exchange succeeded.
    Up,
    /// Out of reach since `down_for`; local copies answer reads for `left`.
    Grace { down_for: Duration, left: Duration },
    /// Out of reach for longer than the grace: reads fail too.
    Down { down_for: Duration },
}

impl Reach {
    /// `up`, `grace` or `down`: the metric label and the health word.
    pub fn name(&self) -> &'static str {
        match self {
            Reach::Up => "up",
            Reach::Grace { .. } => "grace",
            Reach::Down { .. } => "down",
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Uids in the remote store.
    pub remote: u64,
    /// Records fetched because the index did not have them.
    pub fetched: u64,
    /// Records dropped because the remote store no longer has them.
    pub deleted: u64,
    /// Records refused as rolled back.
    pub rolled_back: u64,
}

type EventSink = Box<dyn Fn(IndexEvent) + Send + Sync>;

/// The remote store and this node's index of it. See the module documentation.
pub struct IndexedStore {
    remote: Arc<dyn Store>,
    local: SqliteStore,
    read_grace: Duration,
    /// When the last exchange with the remote store failed for want of an
    /// answer (`None` while it answers).
    down_since: Mutex<Option<Instant>>,
    events: Mutex<Option<EventSink>>,
}

impl std::fmt::Debug for IndexedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedStore")
            .field("local", &self.local.path())
            .field("read_grace", &self.read_grace)
            .finish_non_exhaustive()
    }
}

impl IndexedStore {
    /// Opens (or creates) the index file beside `remote`.
    pub fn open(remote: Arc<dyn Store>, settings: &IndexSettings) -> Result<IndexedStore, StoreError> {
        let local = SqliteStore::open(&settings.path, SqliteOptions::default())?;
        Ok(IndexedStore {
            remote,
            local,
            read_grace: settings.read_grace,
            down_since: Mutex::new(None),
            events: Mutex::new(None),
        })
    }

    /// Sends every [`IndexEvent`] to `sink` from now on.
    pub fn set_events(&self, sink: impl Fn(IndexEvent) + Send + Sync + 'static) {
        *lock(&self.events) = Some(Box::new(sink));
    }

    /// The index file.
    pub fn index_path(&self) -> &Path {
        self.local.path()
    }

    /// The remote store itself.
    pub fn remote(&self) -> &Arc<dyn Store> {
        &self.remote
    }

    /// Where the node stands with the remote store now.
    pub fn reach(&self) -> Reach {
        let Some(since) = *lock(&self.down_since) else {
            return Reach::Up;
        };
        let down_for = since.elapsed();
        match self.read_grace.checked_sub(down_for) {
            Some(left) if !left.is_zero() => Reach::Grace { down_for, left },
            _ => Reach::Down { down_for },
        }
    }

    fn emit(&self, event: IndexEvent) {
        if let Some(sink) = &*lock(&self.events) {
            sink(event);
        }
    }

    /// Records the outcome of one exchange with the remote store.
    fn saw<T>(&self, result: &Result<T, StoreError>) {
        let transient = matches!(result, Err(e) if e.is_transient());
        let mut down = lock(&self.down_since);
        match (transient, *down) {
            (true, None) => {
                *down = Some(Instant::now());
                drop(down);
                let detail = match result {
                    Err(e) => e.to_string(),
                    Ok(_) => String::new(),
                };
                self.emit(IndexEvent::Unreachable {
                    detail,
                    grace: self.read_grace,
                });
            }
            (false, Some(since)) => {
                *down = None;
                drop(down);
                self.emit(IndexEvent::Reachable {
                    after: since.elapsed(),
                });
            }
            _ => {}
        }
    }

    /// The highest version of `uid` this node has seen, if any.
    async fn seen_version(&self, uid: &str) -> Result<Option<u64>, StoreError> {
        self.local.version_of(uid).await
    }

    /// Takes `record` (as the remote store has it) into the index. `Some(seen)`
    /// when this node has seen a newer version: the caller reads again before
    /// it calls that a rollback (its own write may have landed meanwhile).
    async fn adopt(&self, record: &Record) -> Result<Option<u64>, StoreError> {
        match self.seen_version(&record.uid).await? {
            Some(seen) if seen > record.version => Ok(Some(seen)),
            Some(seen) if seen == record.version => Ok(None),
            _ => {
                self.local.put_newer(record.clone()).await?;
                Ok(None)
            }
        }
    }

    /// Reads `uid` through, checks it against the highest version this node
    /// has seen and keeps a copy. An older version than seen is read a second
    /// time (a write of this node can land between the read and the check);
    /// older again, it is a rollback.
    async fn read_through(&self, uid: &str) -> Result<Option<Record>, StoreError> {
        for attempt in 0..2 {
            let result = self.remote.get(uid).await;
            self.saw(&result);
            let Some(record) = result? else {
                self.forget(uid).await?;
                return Ok(None);
            };
            match self.adopt(&record).await? {
                None => return Ok(Some(record)),
                Some(_) if attempt == 0 => continue,
                Some(seen) => {
                    self.emit(IndexEvent::RolledBack {
                        uid: uid.to_owned(),
                        seen,
                        found: record.version,
                    });
                    return Err(StoreError::RolledBack(format!(
                        "record {uid} is at version {} in the store, but this node has seen version {seen}",
                        record.version
                    )));
                }
            }
        }
        Err(StoreError::Other(format!("record {uid}: no stable read")))
    }

    /// Drops `uid` from the index after the remote store said it is gone.
    async fn forget(&self, uid: &str) -> Result<(), StoreError> {
        if self.local.delete(uid, None).await? {
            self.emit(IndexEvent::DeletedInStore { uid: uid.to_owned() });
        }
        Ok(())
    }

    /// Compares the index with the remote store once: records deleted there are
    /// dropped, records this node has not seen are fetched.
    pub async fn sync(&self) -> Result<SyncReport, StoreError> {
        let mut report = SyncReport::default();
        // The index is listed first: a record this node creates meanwhile is
        // then either in both listings or in neither (the remote write comes
        // first), never taken for one deleted in the store.
        let local = self.local_uids().await?;
        let remote = self.remote_uids().await;
        self.saw(&remote);
        let remote = remote?;
        report.remote = remote.len() as u64;
        let gone: Vec<&String> = local.difference(&remote).collect();
        let missing: Vec<&String> = remote.difference(&local).collect();
        // Both are confirmed by reading the record itself.
        for chunk in gone
            .chunks(SYNC_FETCH_CONCURRENCY)
            .chain(missing.chunks(SYNC_FETCH_CONCURRENCY))
        {
            let mut reads = tokio::task::JoinSet::new();
            for uid in chunk {
                let (remote, uid) = (Arc::clone(&self.remote), (*uid).clone());
                reads.spawn(async move {
                    let read = remote.get(&uid).await;
                    (uid, read)
                });
            }
            while let Some(joined) = reads.join_next().await {
                let (uid, read) = joined.map_err(|e| StoreError::Other(format!("sync read: {e}")))?;
                self.saw(&read);
                match read? {
                    None => {
                        if self.local.delete(&uid, None).await? {
                            self.emit(IndexEvent::DeletedInStore { uid });
                            report.deleted += 1;
                        }
                    }
                    Some(record) => match self.adopt(&record).await? {
                        None => report.fetched += u64::from(!local.contains(&uid)),
                        Some(_) => match self.read_through(&uid).await {
                            Err(StoreError::RolledBack(_)) => report.rolled_back += 1,
                            other => {
                                other?;
                            }
                        },
                    },
                }
            }
        }
        Ok(report)
    }

    async fn remote_uids(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut uids = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.remote.list_uids(after.as_deref(), SYNC_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            let full = page.len() >= SYNC_PAGE;
            uids.extend(page);
            if !full {
                break;
            }
        }
        Ok(uids)
    }

    async fn local_uids(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut uids = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.local.list_uids(after.as_deref(), SYNC_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            uids.extend(page);
        }
        Ok(uids)
    }

    /// Replaces the whole index with the remote store's records as they are
    /// now (`keyward store reindex`; after a restore, which rolls records back
    /// on purpose). Returns the records indexed.
    pub async fn rebuild(&self) -> Result<u64, StoreError> {
        let export = self.remote.export(super::DEFAULT_PAGE_SIZE).await?;
        self.local.import(export, true).await
    }

    /// Records in the index.
    pub async fn indexed(&self) -> Result<u64, StoreError> {
        self.local.count(&Query::default()).await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store for IndexedStore {
    fn create<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let result = self.remote.create(record).await;
            self.saw(&result);
            result?;
            let mut copy = record.clone();
            copy.version = 1;
            copy.normalize_index();
            // The remote store has it: a failed local copy costs only Locate
            // freshness until the next sync, never the acknowledged write.
            let _ = self.local.put_newer(copy).await;
            Ok(())
        })
    }

    fn get<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            match self.read_through(uid).await {
                Err(e) if e.is_transient() && matches!(self.reach(), Reach::Grace { .. }) => {
                    match self.local.get(uid).await? {
                        Some(copy) => {
                            self.emit(IndexEvent::ServedFromCopy { uid: uid.to_owned() });
                            Ok(Some(copy))
                        }
                        // Never "not found" from the index alone.
                        None => Err(e),
                    }
                }
                other => other,
            }
        })
    }

    fn get_indexed<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
        self.local.get(uid)
    }

    fn get_indexed_many<'a>(&'a self, uids: &'a [String]) -> StoreFuture<'a, Vec<Option<Record>>> {
        self.local.get_indexed_many(uids)
    }

    fn update<'a>(&'a self, record: &'a Record, expected_version: u64) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let result = self.remote.update(record, expected_version).await;
            self.saw(&result);
            let version = result?;
            let mut copy = record.clone();
            copy.version = version;
            copy.normalize_index();
            if let Some(previous) = self.local.get(&record.uid).await.ok().flatten() {
                copy.created_at = previous.created_at;
            }
            let _ = self.local.put_newer(copy).await;
            Ok(version)
        })
    }

    fn delete<'a>(&'a self, uid: &'a str, expected_version: Option<u64>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let result = self.remote.delete(uid, expected_version).await;
            self.saw(&result);
            let removed = result?;
            self.local.delete(uid, None).await?;
            Ok(removed)
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // The index answers queries, but it is a copy: `local: false`
            // tells the key service to read every answer through.
            server_side_query: true,
            local: false,
            ..self.remote.capabilities()
        }
    }

    fn find<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Vec<String>> {
        self.local.find(query)
    }

    fn count<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, u64> {
        self.local.count(query)
    }

    fn count_by_crk(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        self.remote.count_by_crk()
    }

    fn count_by_state(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        self.local.count_by_state()
    }

    fn list_page<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Record>> {
        self.remote.list_page(after_uid, limit)
    }

    fn list_uids<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<String>> {
        self.remote.list_uids(after_uid, limit)
    }

    fn check_access(&self) -> StoreFuture<'_, Option<String>> {
        self.remote.check_access()
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let result = self.remote.health().await;
            self.saw(&result);
            result
        })
    }

    fn export(&self, page_size: usize) -> StoreFuture<'_, Export> {
        self.remote.export(page_size)
    }

    fn import(&self, records: Export, replace: bool) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let written = self.remote.import(records, replace).await?;
            // Imported records may be older than what the index saw (a
            // restore): the index follows the store as it now is.
            self.rebuild().await?;
            Ok(written)
        })
    }

    fn set_instruments(&self, instruments: crate::metrics::StoreInstruments) {
        self.remote.set_instruments(instruments);
    }
}

#[cfg(test)]
mod tests;
