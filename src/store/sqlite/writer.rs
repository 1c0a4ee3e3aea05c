//! The one writable connection and its group commit.
//!
//! Every create and update goes to the pending list; whoever holds the only
//! writable connection takes whatever is pending (up to a batch limit),
//! applies each operation inside one transaction (each under its own
//! savepoint, so one failing operation does not sink the others), commits
//! once — one fsync for the whole batch — and only then answers each caller.
//! While one batch is being fsynced the next one gathers, so throughput grows
//! with concurrency instead of being capped at one fsync per create.
//!
//! The connection is the single state of a [`WorkerPool`]: each write submits
//! a job that commits what is pending. Under load the writer thread runs those
//! jobs back to back (a job finding the list empty, its write taken by an
//! earlier batch, costs nothing). When the writer is idle and its commits have
//! been quick, the pool runs the job on the caller's thread instead: a single
//! client's Create no longer pays two thread wake-ups on top of its fsync (see
//! `crate::workers` for the bounds on that).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::{Semaphore, oneshot};

use super::checkpoint::Checkpointer;
use super::rows::{load_record, sql_error, version_to_sql};
use crate::metrics::StoreInstruments;
use crate::store::{Record, StoreError};
use crate::workers::{PoolError, WorkerPool};

/// Where the writer records commits; empty until `SqliteStore::set_instruments`.
pub(super) type InstrumentSlot = Arc<OnceLock<StoreInstruments>>;

pub(super) enum WriteOp {
    Create(Record),
    Update {
        record: Record,
        expected_version: u64,
    },
    /// Answers 1 when a record was removed, 0 when there was none.
    Delete {
        uid: String,
        expected_version: Option<u64>,
    },
    /// Writes the record exactly as given (version and timestamps included),
    /// over a record with its uid and a lower version; answers 1 when written,
    /// 0 when a record with the same or a higher version is there. A local
    /// copy of a record whose truth is elsewhere (the index of a remote
    /// store), never a client's write.
    Put(Record),
}

pub(super) struct WriteRequest {
    pub op: WriteOp,
    /// The record version after the operation, sent after the commit.
    pub reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// The longest a commit may take and still count as quick (see
/// `crate::workers`): one fsync of the WAL on a busy disk.
const INLINE_MAX_COMMIT: Duration = Duration::from_millis(5);

/// Writes waiting for a batch.
type Pending = Mutex<VecDeque<WriteRequest>>;

/// The writable connection, owned by the writer's pool.
struct Connected {
    conn: Connection,
    max_batch: usize,
    instruments: InstrumentSlot,
}

/// Where writes go. Dropping it waits for the batch being committed and
/// closes the connection (which also checkpoints the WAL and removes it).
/// A write whose caller stopped waiting before a batch took it is dropped,
/// not committed late.
pub(super) struct Writer {
    /// Stopped (and joined) before the pool closes the writer's connection.
    checkpointer: Option<Checkpointer>,
    pending: Arc<Pending>,
    /// Writes that may wait at once; beyond, callers wait to enqueue.
    room: Semaphore,
    /// The room when no write waits.
    depth: usize,
    pool: WorkerPool<Connected>,
}

impl Writer {
    pub(super) fn start(
        mut conn: Connection,
        checkpointer: Checkpointer,
        max_batch: usize,
        queue_depth: usize,
        instruments: InstrumentSlot,
    ) -> Result<Writer, StoreError> {
        checkpointer.watch(&mut conn)?;
        let queue_depth = queue_depth.max(1);
        let connected = Connected {
            conn,
            max_batch: max_batch.max(1),
            instruments,
        };
        Ok(Writer {
            checkpointer: Some(checkpointer),
            pending: Arc::new(Mutex::new(VecDeque::new())),
            room: Semaphore::new(queue_depth),
            depth: queue_depth,
            // One job per waiting write at most (each holds room).
            pool: WorkerPool::new("keyward-store-writer", vec![connected], queue_depth + 1)
                .with_inline_calls_under(INLINE_MAX_COMMIT),
        })
    }

    /// Whether writes can still be committed.
    pub(super) fn is_running(&self) -> bool {
        self.pool.is_running()
    }

    /// Applies `op` in the next batch; answers once that batch is on disk.
    pub(super) async fn write(&self, op: WriteOp) -> Result<u64, StoreError> {
        let stopped = || StoreError::unavailable("store writer stopped");
        let _room = self.room.acquire().await.map_err(|_| stopped())?;
        let (reply, mut answer) = oneshot::channel();
        lock(&self.pending).push_back(WriteRequest { op, reply });
        // Only a write with no company (no other write waiting, queued or being
        // committed) may commit on the caller's thread: under load the writer
        // thread batches them (group commit), and no async thread waits on an
        // fsync.
        let mut inline = self.room.available_permits() + 1 == self.depth;
        loop {
            let pending = Arc::clone(&self.pending);
            let commit = move |connected: &mut Connected| connected.commit_pending(&pending);
            let job = async {
                if inline {
                    self.pool.run(commit).await
                } else {
                    self.pool.run_queued(commit).await
                }
            };
            // The answer comes from whichever job commits the write, often an
            // earlier caller's: then this caller's own job is dropped unrun
            // (the pool skips it) instead of waiting for a batch of its own.
            let committed = tokio::select! {
                biased;
                answered = &mut answer => return answered.map_err(|_| stopped())?,
                ran = job => ran,
            };
            inline = false;
            committed.map_err(|e| match e {
                PoolError::Panicked => StoreError::Other("the store writer failed".into()),
                PoolError::Full | PoolError::Stopped => stopped(),
            })?;
            // This job or an earlier one (which had the connection before it)
            // has committed the write — unless a full batch was ahead of it.
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Empty) => continue,
                Err(oneshot::error::TryRecvError::Closed) => return Err(stopped()),
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The checkpoint thread's connection closes first: the writer's, closed
        // last when the pool drops, then checkpoints and removes the WAL.
        self.checkpointer = None;
    }
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, VecDeque<WriteRequest>> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connected {
    /// Commits up to a batch of the pending writes, in arrival order. Writes
    /// whose callers stopped waiting are dropped, not committed late.
    fn commit_pending(&mut self, pending: &Pending) {
        let mut batch: Vec<WriteRequest> = {
            let mut queue = lock(pending);
            let n = queue.len().min(self.max_batch);
            queue.drain(..n).collect()
        };
        batch.retain(|request| !request.reply.is_closed());
        if !batch.is_empty() {
            commit_batch(&self.conn, &mut batch, self.instruments.get());
        }
    }
}

fn commit_batch(conn: &Connection, batch: &mut Vec<WriteRequest>, instruments: Option<&StoreInstruments>) {
    let started = Instant::now();
    let applied = apply_batch(conn, batch);
    if let Some(instruments) = instruments {
        instruments.observe_commit(started.elapsed(), batch.len(), applied.is_ok());
    }
    match applied {
        Ok(results) => {
            for (request, result) in batch.drain(..).zip(results) {
                // The caller may have gone away; nothing to do then.
                let _ = request.reply.send(result);
            }
        }
        Err(err) => {
            // Nothing in this batch is durable: every caller gets the error.
            // (ROLLBACK fails harmlessly when no transaction is open.)
            let _ = exec(conn, "ROLLBACK");
            for request in batch.drain(..) {
                let _ = request.reply.send(Err(err.clone()));
            }
        }
    }
}

/// Runs the batch in one transaction and commits it. The outer error means the
/// transaction as a whole failed; the inner results are per operation.
///
/// Each operation runs under a savepoint so that one failing operation leaves
/// no partial writes while the others still commit. If undoing a savepoint
/// itself fails, the transaction's state is unknown and the whole batch fails.
fn apply_batch(
    conn: &Connection,
    batch: &[WriteRequest],
) -> Result<Vec<Result<u64, StoreError>>, StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    if let [request] = batch {
        // Alone in its transaction, an operation needs no savepoint: if it
        // fails, the transaction is rolled back whole. (A savepoint copies each
        // page it touches to a statement journal first.)
        let result = apply(conn, &request.op);
        exec(conn, if result.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        return Ok(vec![result]);
    }
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        exec(conn, "SAVEPOINT op")?;
        let result = apply(conn, &request.op);
        if result.is_err() {
            exec(conn, "ROLLBACK TO op")?;
        }
        exec(conn, "RELEASE op")?;
        results.push(result);
    }
    exec(conn, "COMMIT")?;
    Ok(results)
}

fn apply(conn: &Connection, op: &WriteOp) -> Result<u64, StoreError> {
    match op {
        WriteOp::Create(record) => create(conn, record),
        WriteOp::Update {
            record,
            expected_version,
        } => update(conn, record, *expected_version),
        WriteOp::Delete {
            uid,
            expected_version,
        } => delete(conn, uid, *expected_version),
        WriteOp::Put(record) => put(conn, record),
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(sql_error)
}

fn create(conn: &Connection, record: &Record) -> Result<u64, StoreError> {
    if let Some((_, existing)) = load_record(conn, &record.uid)? {
        return if existing.same_content(record) {
            Ok(existing.version)
        } else {
            Err(StoreError::Conflict(crate::store::Conflict::Exists))
        };
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO records (uid, object_type, state, grp, crk_version, sealed, attributes,
                                  version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9)",
        )
        .map_err(sql_error)?;
    insert
        .execute(params![
            record.uid,
            record.object_type,
            record.state,
            record.group,
            record.crk_version,
            record.sealed,
            record.attributes,
            record.created_at,
            record.updated_at,
        ])
        .map_err(sql_error)?;
    insert_index(conn, conn.last_insert_rowid(), record)?;
    Ok(1)
}

fn update(conn: &Connection, record: &Record, expected_version: u64) -> Result<u64, StoreError> {
    let current: Option<(i64, i64)> = {
        let mut stmt = conn
            .prepare_cached("SELECT seq, version FROM records WHERE uid = ?1")
            .map_err(sql_error)?;
        let mut rows = stmt.query([&record.uid]).map_err(sql_error)?;
        match rows.next().map_err(sql_error)? {
            Some(row) => Some((row.get(0).map_err(sql_error)?, row.get(1).map_err(sql_error)?)),
            None => None,
        }
    };
    let Some((seq, version)) = current else {
        return Err(StoreError::NotFound);
    };
    if version != version_to_sql(expected_version)? {
        return Err(StoreError::Conflict(crate::store::Conflict::Version));
    }
    let new_version = expected_version
        .checked_add(1)
        .ok_or_else(|| StoreError::Other("record version overflow".into()))?;
    let new_version_sql = version_to_sql(new_version)?;
    conn.prepare_cached(
        "UPDATE records SET object_type = ?1, state = ?2, grp = ?3, crk_version = ?4, sealed = ?5,
                            attributes = ?6, version = ?7, updated_at = ?8
         WHERE seq = ?9",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            record.object_type,
            record.state,
            record.group,
            record.crk_version,
            record.sealed,
            record.attributes,
            new_version_sql,
            record.updated_at,
            seq,
        ])
    })
    .map_err(sql_error)?;
    conn.prepare_cached("DELETE FROM record_index WHERE seq = ?1")
        .and_then(|mut stmt| stmt.execute([seq]))
        .map_err(sql_error)?;
    insert_index(conn, seq, record)?;
    Ok(new_version)
}

fn delete(conn: &Connection, uid: &str, expected_version: Option<u64>) -> Result<u64, StoreError> {
    let Some((seq, existing)) = load_record(conn, uid)? else {
        return Ok(0);
    };
    if expected_version.is_some_and(|v| v != existing.version) {
        return Err(StoreError::Conflict(crate::store::Conflict::Version));
    }
    remove_seq(conn, seq)?;
    Ok(1)
}

fn remove_seq(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM record_index WHERE seq = ?1",
        "DELETE FROM records WHERE seq = ?1",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([seq]))
            .map_err(sql_error)?;
    }
    Ok(())
}

fn put(conn: &Connection, record: &Record) -> Result<u64, StoreError> {
    if record.version == 0 {
        return Err(StoreError::Corrupt("a record with version 0".into()));
    }
    if let Some((seq, existing)) = load_record(conn, &record.uid)? {
        if existing.version >= record.version {
            return Ok(0);
        }
        remove_seq(conn, seq)?;
    }
    super::bulk::insert_exact(conn, record)?;
    Ok(1)
}

pub(super) fn insert_index(conn: &Connection, seq: i64, record: &Record) -> Result<(), StoreError> {
    // OR IGNORE: duplicate entries in the caller's list collapse to one row.
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO record_index (name, value, seq) VALUES (?1, ?2, ?3)")
        .map_err(sql_error)?;
    for entry in &record.index {
        stmt.execute(params![entry.name, entry.value, seq])
            .map_err(sql_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::metrics::Metrics;
    use crate::store::Store;
    use crate::store::conformance::sample_record;
    use crate::store::sqlite::{SqliteOptions, SqliteStore};

    /// Many writers at once, batches smaller than the crowd: every write is
    /// answered once its own batch is on disk, whichever caller's job took it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crowd_of_writes_is_committed_in_small_batches() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            max_batch: 3,
            ..SqliteOptions::default()
        };
        let store = std::sync::Arc::new(SqliteStore::open(dir.path().join("b.db"), options).unwrap());
        let mut writers = tokio::task::JoinSet::new();
        for n in 0..60u32 {
            let store = std::sync::Arc::clone(&store);
            writers.spawn(async move { store.create(&sample_record(&format!("uid-{n}"), n)).await });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap().unwrap();
        }
        for n in 0..60u32 {
            assert!(store.get(&format!("uid-{n}")).await.unwrap().is_some(), "uid-{n}");
        }
        // A failing write alone in its transaction leaves nothing behind.
        let mut other = sample_record("uid-0", 99);
        other.sealed = vec![9; 8];
        assert!(store.create(&other).await.is_err());
        assert_eq!(
            store.get("uid-0").await.unwrap().unwrap().sealed,
            sample_record("uid-0", 0).sealed
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn commits_are_recorded_once_instruments_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("k.db"), SqliteOptions::default()).unwrap();
        store.create(&sample_record("before", 1)).await.unwrap();
        let metrics = Metrics::new();
        store.set_instruments(metrics.store_instruments());
        store.create(&sample_record("after", 2)).await.unwrap();
        assert!(metrics.store_instruments().available());
        let text = metrics.encode();
        assert!(
            text.contains("keyward_store_commit_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("keyward_store_commit_batch_size_bucket{le=\"1\"} 1\n"),
            "{text}"
        );
    }
}
