//! Checkpoints of the WAL on a thread of their own, off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its
//! threshold: that caller (and every write batched with it) waits while the
//! WAL's pages are copied into the database file and it is synced — the
//! slowest commits of a Create load by far (bench/NOTES.md). Here the writer's
//! WAL hook only signals when the WAL has grown past [`CHECKPOINT_AT`] pages,
//! and a checkpoint thread with its own connection copies the pages back
//! (`PASSIVE`: it never waits for readers or the writer) while commits go on.
//!
//! Should that thread fall behind or stop, the writer checkpoints itself once
//! the WAL reaches [`BACKSTOP_AT`] pages, so the WAL stays bounded either way.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::rows::sql_error;
use crate::store::StoreError;

/// WAL pages after a commit that ask the checkpoint thread to run (SQLite's
/// own default threshold).
pub(super) const CHECKPOINT_AT: i32 = 4000;

/// WAL pages after a commit at which the writer checkpoints on its own.
pub(super) const BACKSTOP_AT: i32 = 8 * CHECKPOINT_AT;

#[derive(Default)]
struct Signal {
    /// A checkpoint is asked for.
    wanted: bool,
    /// The store is closing: stop.
    closing: bool,
}

#[derive(Default)]
struct Shared {
    signal: Mutex<Signal>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Signal> {
        self.signal.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The checkpoint thread. Dropping it stops the thread and waits for it, so
/// that the writer's connection is the last one to close (and removes the WAL).
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection to `path` and starts the thread.
    pub(super) fn start(path: &Path, busy_timeout: Duration) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path).map_err(sql_error)?;
        conn.busy_timeout(busy_timeout).map_err(sql_error)?;
        // Only the writer's hook decides when to checkpoint.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sql_error)?;
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("keyward-store-checkpoint".into())
            .spawn(move || run(&conn, &worker))
            .map_err(|e| StoreError::Other(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Installs the hook on the writer's connection: after each commit it asks
    /// for a checkpoint past [`CHECKPOINT_AT`] pages, and runs one itself past
    /// [`BACKSTOP_AT`].
    pub(super) fn watch(&self, writer: &mut Connection) -> Result<(), StoreError> {
        let shared = Arc::clone(&self.shared);
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
                if pages >= BACKSTOP_AT {
                    // Best effort; the next commit tries again.
                    let _ = wal.checkpoint();
                } else if pages >= CHECKPOINT_AT {
                    let mut signal = shared.lock();
                    if !signal.wanted {
                        signal.wanted = true;
                        drop(signal);
                        shared.wake.notify_one();
                    }
                }
                Ok(())
            }))
            .map_err(sql_error)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let mut signal = shared.lock();
            while !signal.wanted && !signal.closing {
                signal = shared.wake.wait(signal).unwrap_or_else(PoisonError::into_inner);
            }
            if signal.closing {
                return;
            }
            signal.wanted = false;
        }
        // PASSIVE: copies what no reader still needs, waits for nobody. A
        // failure (busy, I/O) is retried at the next signal; the writer's
        // backstop bounds the WAL meanwhile, and a disk that fails shows in
        // the writer's own commits.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::CHECKPOINT_AT;
    use crate::store::conformance::sample_record;
    use crate::store::{SqliteOptions, SqliteStore, Store};

    /// Commits past the threshold get the WAL copied into the database file
    /// by the checkpoint thread (the file grows while commits go on), and a
    /// closed store leaves no WAL behind.
    #[tokio::test(flavor = "current_thread")]
    async fn the_checkpoint_thread_copies_the_wal_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let db_len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let wal_len = || {
            std::fs::metadata(dir.path().join("c.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let empty = db_len();
        let threshold = u64::try_from(CHECKPOINT_AT).unwrap() * 4096;
        let mut n = 0u32;
        while wal_len() < threshold {
            store
                .create(&sample_record(&format!("uid-{n}"), n))
                .await
                .unwrap();
            n += 1;
        }
        // The event: the checkpoint thread has written pages into the file.
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while db_len() <= empty {
            assert!(Instant::now() < deadline, "no checkpoint after {n} commits");
            // Without the thread the WAL would grow to the writer's backstop.
            assert!(wal_len() < 2 * threshold, "the WAL grows: no checkpoint thread");
            store
                .create(&sample_record(&format!("uid-{n}"), n))
                .await
                .unwrap();
            n += 1;
        }
        drop(store);
        assert!(
            !dir.path().join("c.db-wal").exists(),
            "the WAL is removed at close"
        );
        let reopened = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert!(reopened.get("uid-0").await.unwrap().is_some());
        assert!(reopened.get(&format!("uid-{}", n - 1)).await.unwrap().is_some());
    }
}
