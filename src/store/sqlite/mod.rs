//! SQLite backend: the embedded default (DESIGN §4).
//!
//! One writable connection group-commits creates and updates (see `writer`;
//! its own thread under load, the caller's when idle); reads run on a small
//! pool of read-only connections (see `reader`). The file is in WAL mode with
//! `synchronous=FULL`: a call that returned `Ok` is on disk.

mod bulk;
mod checkpoint;
mod reader;
mod rows;
mod schema;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use self::reader::ReadPool;
use self::rows::sql_error;
use self::writer::{WriteOp, Writer};
use super::{Capabilities, Export, Query, Record, Store, StoreError, StoreFuture};

/// Tuning knobs; the defaults suit a 2-core appliance.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most read-only connections open at once.
    pub readers: usize,
    /// Most operations committed in one transaction.
    pub max_batch: usize,
    /// Most writes waiting for the writer before callers wait to enqueue.
    pub queue_depth: usize,
    /// How long a connection waits on a lock held by another process.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: 4,
            max_batch: 1024,
            queue_depth: 8192,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite-backed store. Dropping it finishes queued writes and closes the file.
pub struct SqliteStore {
    path: PathBuf,
    busy_timeout: Duration,
    /// None when opened read-only.
    writer: Option<Writer>,
    reads: Arc<ReadPool>,
    /// Commit latency, batch size and availability go here once set.
    instruments: writer::InstrumentSlot,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrates its schema
    /// and starts the writer thread. Blocks briefly; call at start-up.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path)?;
        let conn = Connection::open(&path).map_err(sql_error)?;
        conn.busy_timeout(options.busy_timeout).map_err(sql_error)?;
        schema::configure_writer(&conn)?;
        schema::migrate(&conn)?;

        let instruments = writer::InstrumentSlot::default();
        let checkpointer = checkpoint::Checkpointer::start(&path, options.busy_timeout)?;
        let writer = Writer::start(
            conn,
            checkpointer,
            options.max_batch,
            options.queue_depth,
            Arc::clone(&instruments),
        )?;
        if !writer.is_running() {
            return Err(StoreError::Other("cannot start the store writer thread".into()));
        }
        let reads = Arc::new(ReadPool::new(path.clone(), options.readers, options.busy_timeout));
        Ok(SqliteStore {
            path,
            busy_timeout: options.busy_timeout,
            writer: Some(writer),
            reads,
            instruments,
        })
    }

    /// Opens the existing database at `path` for reading only: no writer, no
    /// migration, nothing written to the file (a backup file being restored).
    /// Refuses a file that is not a keyward database of a schema this build reads.
    pub fn open_read_only(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        Self::open_read_only_checked(path.as_ref(), options, None)
    }

    /// [`SqliteStore::open_read_only`] for a file from elsewhere (a backup):
    /// also refuses a file whose schema is not exactly this build's schema of
    /// the version the file records, plus any of the `optional` tables (name,
    /// the SQL that makes it): no view, trigger, extra table or index, and
    /// nothing altered.
    pub fn open_read_only_exact(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        optional: &[(&str, &str)],
    ) -> Result<Self, StoreError> {
        Self::open_read_only_checked(path.as_ref(), options, Some(optional))
    }

    fn open_read_only_checked(
        path: &Path,
        options: SqliteOptions,
        exact: Option<&[(&str, &str)]>,
    ) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        if !path.is_file() {
            return Err(StoreError::Other(format!("{}: no such file", path.display())));
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let not_ours = |e: StoreError| {
            StoreError::Corrupt(format!("{} is not a keyward database ({e})", path.display()))
        };
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| not_ours(sql_error(e)))?;
        conn.busy_timeout(options.busy_timeout).map_err(sql_error)?;
        conn.pragma_update(None, "trusted_schema", "OFF")
            .map_err(sql_error)?;
        let found = schema::read_version(&conn).map_err(not_ours)?;
        if !(schema::READABLE_SINCE..=schema::current_version()).contains(&found) {
            return Err(StoreError::Other(format!(
                "{} has schema version {found}; this build reads versions {} to {}",
                path.display(),
                schema::READABLE_SINCE,
                schema::current_version()
            )));
        }
        if let Some(optional) = exact {
            schema::check_exact(&conn, found, optional).map_err(not_ours)?;
        }
        drop(conn);
        let reads = Arc::new(ReadPool::new(path.clone(), options.readers, options.busy_timeout));
        Ok(SqliteStore {
            path,
            busy_timeout: options.busy_timeout,
            writer: None,
            reads,
            instruments: writer::InstrumentSlot::default(),
        })
    }

    /// Closes the store (finishing queued writes) and switches its file to a
    /// rollback journal: one self-contained file, no `-wal`/`-shm` beside it
    /// (a backup file).
    pub fn close_as_single_file(self) -> Result<(), StoreError> {
        let path = self.path.clone();
        drop(self);
        let conn = Connection::open(&path).map_err(sql_error)?;
        conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .map_err(sql_error)?;
        conn.close().map_err(|(_, e)| sql_error(e))
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record` exactly as given (its version and timestamps) unless a
    /// record with its uid and the same or a higher version is there; answers
    /// whether it was written. For a local copy whose truth is another store
    /// (the index of a remote store), never for a client's write: it bypasses
    /// compare-and-swap. Copies written out of order never move a record back.
    pub async fn put_newer(&self, record: Record) -> Result<bool, StoreError> {
        self.write(WriteOp::Put(record)).await.map(|written| written > 0)
    }

    /// The version of the record with this uid, without reading the record
    /// (the index of a remote store checks it on every read through).
    pub async fn version_of(&self, uid: &str) -> Result<Option<u64>, StoreError> {
        let uid = uid.to_owned();
        self.reads.point(move |conn| reader::version_of(conn, &uid)).await
    }

    async fn write(&self, op: WriteOp) -> Result<u64, StoreError> {
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Other("the store is open read-only".into()))?
            .write(op)
            .await
    }
}

impl Store for SqliteStore {
    fn create<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.write(WriteOp::Create(record.clone())).await.map(|_| ()) })
    }

    fn get<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
        let uid = uid.to_owned();
        Box::pin(async move { self.reads.point(move |conn| reader::get(conn, &uid)).await })
    }

    fn get_indexed_many<'a>(&'a self, uids: &'a [String]) -> StoreFuture<'a, Vec<Option<Record>>> {
        let uids = uids.to_vec();
        Box::pin(async move {
            self.reads
                .run(move |conn| uids.iter().map(|uid| reader::get(conn, uid)).collect())
                .await
        })
    }

    fn update<'a>(&'a self, record: &'a Record, expected_version: u64) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            self.write(WriteOp::Update {
                record: record.clone(),
                expected_version,
            })
            .await
        })
    }

    fn delete<'a>(&'a self, uid: &'a str, expected_version: Option<u64>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let removed = self
                .write(WriteOp::Delete {
                    uid: uid.to_owned(),
                    expected_version,
                })
                .await?;
            Ok(removed > 0)
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compare_and_swap: true,
            server_side_query: true,
            mutable_records: true,
            max_record_bytes: None,
            atomic_import: true,
            local: true,
        }
    }

    fn find<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Vec<String>> {
        let query = query.clone();
        Box::pin(async move { self.reads.run(move |conn| reader::find(conn, &query)).await })
    }

    fn count<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, u64> {
        let query = query.clone();
        Box::pin(async move { self.reads.run(move |conn| reader::count(conn, &query)).await })
    }

    fn count_by_crk(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        Box::pin(async move { self.reads.run(reader::count_by_crk).await })
    }

    fn count_by_state(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        Box::pin(async move { self.reads.run(reader::count_by_state).await })
    }

    fn list_page<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Record>> {
        let after_uid = after_uid.map(str::to_owned);
        Box::pin(async move {
            self.reads
                .run(move |conn| reader::list_page(conn, after_uid.as_deref(), limit))
                .await
        })
    }

    /// Records every commit's latency and batch size, and whether it committed,
    /// into `instruments` from now on (a second call is ignored).
    fn set_instruments(&self, instruments: crate::metrics::StoreInstruments) {
        let _ = self.instruments.set(instruments);
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // A read-only store (no writer at all) is healthy when it can be read.
            if let Some(writer) = &self.writer
                && !writer.is_running()
            {
                return Err(StoreError::unavailable("store writer stopped"));
            }
            self.reads.run(reader::health).await
        })
    }

    fn export(&self, page_size: usize) -> StoreFuture<'_, Export> {
        Box::pin(bulk::export(self.path.clone(), self.busy_timeout, page_size))
    }

    fn import(&self, records: Export, replace: bool) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            if self.writer.is_none() {
                return Err(StoreError::Other("the store is open read-only".into()));
            }
            let (path, busy_timeout) = (self.path.clone(), self.busy_timeout);
            tokio::task::spawn_blocking(move || bulk::import(&path, busy_timeout, records, replace))
                .await
                .map_err(|_| StoreError::Other("the import task failed".into()))?
        })
    }
}

/// Creates the database file readable by its owner only (0600) when absent;
/// SQLite would create it with the process umask.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::unavailable(format!(
            "creating {}: {e}",
            path.display()
        ))),
    }
}
