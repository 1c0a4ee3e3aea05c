//! SQLite backend: the embedded default (DESIGN §4).
//!
//! One writer thread owns the only writable connection and group-commits
//! creates and updates (see `writer`); reads run on a small pool of read-only
//! connections (see `reader`). The file is in WAL mode with
//! `synchronous=FULL`: a call that returned `Ok` is on disk.

pub mod backup;
mod reader;
mod rows;
mod schema;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use self::reader::ReadPool;
use self::rows::sql_error;
use self::writer::{WriteOp, WriteRequest};
use super::{Query, Record, Store, StoreError, StoreFuture};

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
    writes: Option<mpsc::Sender<WriteRequest>>,
    writer_thread: Option<JoinHandle<()>>,
    reads: Arc<ReadPool>,
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
        let conn = Connection::open(&path).map_err(sql_error)?;
        conn.busy_timeout(options.busy_timeout).map_err(sql_error)?;
        schema::configure_writer(&conn)?;
        schema::migrate(&conn)?;

        let (writes, queue) = mpsc::channel(options.queue_depth.max(1));
        let max_batch = options.max_batch.max(1);
        let writer_thread = std::thread::Builder::new()
            .name("keyward-store-writer".into())
            .spawn(move || writer::run(conn, queue, max_batch))
            .map_err(|err| StoreError::Other(format!("cannot start store writer thread: {err}")))?;
        let reads = Arc::new(ReadPool::new(path.clone(), options.readers, options.busy_timeout));
        Ok(SqliteStore {
            path,
            writes: Some(writes),
            writer_thread: Some(writer_thread),
            reads,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, op: WriteOp) -> Result<u64, StoreError> {
        let writes = self
            .writes
            .as_ref()
            .ok_or_else(|| StoreError::unavailable("store is closing"))?;
        let (reply, answer) = oneshot::channel();
        writes
            .send(WriteRequest { op, reply })
            .await
            .map_err(|_| StoreError::unavailable("store writer stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("store writer stopped"))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue lets the writer drain it and exit; joining makes a
        // reopen of the same file in this process see every queued write.
        self.writes = None;
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store for SqliteStore {
    fn create<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.write(WriteOp::Create(record.clone())).await.map(|_| ()) })
    }

    fn get<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
        let uid = uid.to_owned();
        Box::pin(async move { self.reads.run(move |conn| reader::get(conn, &uid)).await })
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

    fn find<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Vec<String>> {
        let query = query.clone();
        Box::pin(async move { self.reads.run(move |conn| reader::find(conn, &query)).await })
    }

    fn count_by_crk(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        Box::pin(async move { self.reads.run(reader::count_by_crk).await })
    }

    fn list_page<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Record>> {
        let after_uid = after_uid.map(str::to_owned);
        Box::pin(async move {
            self.reads
                .run(move |conn| reader::list_page(conn, after_uid.as_deref(), limit))
                .await
        })
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match &self.writes {
                Some(writes) if !writes.is_closed() => {}
                _ => return Err(StoreError::unavailable("store writer stopped")),
            }
            self.reads.run(reader::health).await
        })
    }
}
