//! Durable record store (layer 1): one trait, several backends, one contract.
//!
//! The store keeps each managed object as an opaque sealed blob plus opaque
//! TTLV attributes plus a searchable `(name, value)` index the caller derives
//! from those attributes. It knows nothing of KMIP (same layer) and nothing of
//! SQL at the trait level, because cloud key managers (Vault/OpenBao KV v2,
//! IBM Key Protect, AWS Secrets Manager) sit behind the same trait.
//!
//! Contract (DESIGN.md §4), checked for every backend by [`conformance`]:
//! - `create` is create-if-absent; a retry with identical content is `Ok`,
//!   different content under the same uid is `AlreadyExists`. An `Ok` means the
//!   record is durable. A write whose future is dropped may still land, which
//!   is why a retried create must be idempotent.
//! - `update` is compare-and-swap on the record version.
//! - `find` filters on the fixed fields and on index entries (AND), ordered by
//!   `(created_at, uid)`.
//!
//! The trait returns boxed futures by hand instead of using `async-trait`: it
//! is the same shape that macro generates, it keeps the trait usable as
//! `Arc<dyn Store>`, and it avoids a proc-macro dependency for six methods.

pub mod backup;
pub mod backup_manifest;
pub mod conformance;
mod error;
mod export;
pub mod indexed;
pub mod keyprotect;
mod memory;
mod open;
pub mod openbao;
mod query;
mod record;
mod remote;
pub mod secretsmanager;
pub mod sqlite;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

pub use error::{Conflict, StoreError};

/// What a backend can do natively, so that the layers above (the local index
/// of a remote store, `keyward store status`) know what they must supply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `update` is an atomic compare-and-swap in the backend itself (not a
    /// read-then-write that another node can slip between).
    pub compare_and_swap: bool,
    /// `find` and `count` are answered where the records are; without it they
    /// walk every record, and Locate needs a local index.
    pub server_side_query: bool,
    /// A record can be rewritten in place; without it an update writes a new
    /// object and removes the old one.
    pub mutable_records: bool,
    /// The largest serialized record the backend accepts, if it has a limit.
    pub max_record_bytes: Option<usize>,
    /// `import` is all or nothing.
    pub atomic_import: bool,
    /// The records live on this machine (an embedded file), not in a service
    /// other nodes share.
    pub local: bool,
}
pub use export::{DEFAULT_PAGE_SIZE, Export, ExportSender};
pub use indexed::{IndexEvent, IndexSettings, IndexedStore, Reach};
pub use keyprotect::{KeyProtectConfig, KeyProtectStore};
pub use memory::MemoryStore;
pub use open::{OpenError, OpenMode, StoreConfig, open};
pub use openbao::{OpenBaoAuth, OpenBaoConfig, OpenBaoStore};
pub use query::Query;
pub use record::{IndexEntry, Record};
pub use secretsmanager::{SecretsManagerConfig, SecretsManagerStore};
pub use sqlite::{SqliteOptions, SqliteStore};

/// The future every store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A durable record store. See the module documentation for the contract.
pub trait Store: Send + Sync {
    /// Stores `record` with version 1 if no record has its uid. Idempotent for
    /// identical content; `AlreadyExists` otherwise. `record.version` is ignored.
    fn create<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()>;

    /// The record with this uid, if any.
    fn get<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>>;

    /// The record with this uid as this node holds it without asking further:
    /// for a remote store, the copy in this node's index (possibly stale, or
    /// missing); otherwise the record itself. For pre-filtering candidates
    /// only: whatever is answered to a client is read with [`Store::get`].
    fn get_indexed<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
        self.get(uid)
    }

    /// [`Store::get_indexed`] for several uids at once, answers in order: a
    /// backend that reads locally does it in one step (Locate walks pages of
    /// candidates this way).
    fn get_indexed_many<'a>(&'a self, uids: &'a [String]) -> StoreFuture<'a, Vec<Option<Record>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(uids.len());
            for uid in uids {
                out.push(self.get_indexed(uid).await?);
            }
            Ok(out)
        })
    }

    /// Replaces the record with `record.uid` if its version is
    /// `expected_version`; returns the new version (`expected_version + 1`).
    /// `created_at` keeps its original value; `record.version` is ignored.
    fn update<'a>(&'a self, record: &'a Record, expected_version: u64) -> StoreFuture<'a, u64>;

    /// Removes the record with this uid, if `expected_version` is its version
    /// (or `None`: whatever its version). Idempotent: `Ok(false)` when no
    /// record has this uid, so a retried delete succeeds. `Conflict(Version)`
    /// when the record has another version.
    fn delete<'a>(&'a self, uid: &'a str, expected_version: Option<u64>) -> StoreFuture<'a, bool>;

    /// What this backend does natively.
    fn capabilities(&self) -> Capabilities;

    /// Uids of the records matching `query`, ordered by `(created_at, uid)`.
    fn find<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Vec<String>>;

    /// How many records match `query` (its offset and limit ignored). This
    /// default lists them; a backend that can count where the records are
    /// overrides it.
    fn count<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut all = query.clone();
            all.offset = 0;
            all.limit = None;
            Ok(self.find(&all).await?.len() as u64)
        })
    }

    /// Number of records sealed under each CRK version (root rotation progress).
    fn count_by_crk(&self) -> StoreFuture<'_, BTreeMap<u32, u64>>;

    /// Number of records in each state (the keys-by-state gauge at start-up).
    /// This default walks every record; a backend that can count where the
    /// records are overrides it.
    fn count_by_state(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        Box::pin(async move {
            let mut counts = BTreeMap::new();
            let mut after: Option<String> = None;
            loop {
                let page = self.list_page(after.as_deref(), DEFAULT_PAGE_SIZE).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.uid.clone());
                for record in &page {
                    *counts.entry(record.state).or_insert(0u64) += 1;
                }
            }
            Ok(counts)
        })
    }

    /// Up to `limit` whole records with uid greater than `after_uid`, ordered
    /// by uid: a resumable walk over everything (root rotation, backup).
    fn list_page<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Record>>;

    /// Up to `limit` uids greater than `after_uid`, in uid order: what exists,
    /// without reading the records (the local index of a remote store compares
    /// it with its own to see records created and deleted by others). This
    /// default reads whole pages; a backend whose listing is cheaper overrides it.
    fn list_uids<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let page = self.list_page(after_uid, limit).await?;
            Ok(page.into_iter().map(|r| r.uid).collect())
        })
    }

    /// What this node's credentials may do in the store, for `check-config`:
    /// `Ok(Some(text))` describes it, `Err` says what is missing (writes would
    /// fail), `Ok(None)` when the backend cannot tell without writing.
    fn check_access(&self) -> StoreFuture<'_, Option<String>> {
        Box::pin(async { Ok(None) })
    }

    /// `Ok` when the backend can serve reads and writes now.
    fn health(&self) -> StoreFuture<'_, ()>;

    /// Every record with all its fields (version, timestamps, index), in uid
    /// order, in pages of at most `page_size`, as the store held them when the
    /// returned future completed: a write that commits later is not in it
    /// (backup under load).
    fn export(&self, page_size: usize) -> StoreFuture<'_, Export>;

    /// Writes every record `records` yields exactly as given (version and
    /// timestamps included), all or nothing (restore). With `replace`, the
    /// records the store held are removed in the same step; without it, a uid
    /// the store (or the import) already holds fails with `AlreadyExists`.
    /// A record version of 0 is `Corrupt`. Returns the records written.
    fn import(&self, records: Export, replace: bool) -> StoreFuture<'_, u64>;

    /// Reports every commit's latency and batch size to `instruments` from now
    /// on. A backend without commits of its own to time ignores it.
    fn set_instruments(&self, instruments: crate::metrics::StoreInstruments) {
        let _ = instruments;
    }
}
