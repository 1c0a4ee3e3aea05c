//! Export and import of the whole store (backup, restore).
//!
//! An export runs on its own thread with its own read-only connection inside
//! one read transaction: every page comes from the same WAL snapshot, so a
//! backup taken while the server writes is consistent, and the writer is never
//! blocked. An import runs on its own write connection in one transaction:
//! all or nothing. Both read and write rows through the columns this build
//! knows; nothing of a source file's schema (triggers, views, extra tables)
//! travels with the records.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use tokio::sync::oneshot;

use super::reader;
use super::rows::{load_record, sql_error, version_to_sql};
use super::writer::insert_index;
use crate::store::{Export, Record, StoreError};

/// Pages read ahead of the consumer.
const EXPORT_BUFFER_PAGES: usize = 2;

/// Starts an export of the database at `path`; completes once its snapshot is taken.
pub(super) async fn export(
    path: PathBuf,
    busy_timeout: Duration,
    page_size: usize,
) -> Result<Export, StoreError> {
    let (sender, export) = Export::channel(EXPORT_BUFFER_PAGES);
    let (started_tx, started) = oneshot::channel();
    std::thread::Builder::new()
        .name("keyward-store-export".into())
        .spawn(move || {
            let conn = match open_snapshot(&path, busy_timeout) {
                Ok(conn) => {
                    let _ = started_tx.send(Ok(()));
                    conn
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            let mut after: Option<String> = None;
            loop {
                match reader::list_page(&conn, after.as_deref(), page_size.max(1)) {
                    Ok(page) if page.is_empty() => break,
                    Ok(page) => {
                        after = page.last().map(|r| r.uid.clone());
                        if !sender.blocking_send(Ok(page)) {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = sender.blocking_send(Err(e));
                        break;
                    }
                }
            }
            let _ = conn.execute_batch("COMMIT");
        })
        .map_err(|e| StoreError::Other(format!("cannot start the export thread: {e}")))?;
    started
        .await
        .map_err(|_| StoreError::Other("the export thread stopped".into()))??;
    Ok(export)
}

/// A read-only connection inside a read transaction that has taken its snapshot.
fn open_snapshot(path: &std::path::Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_error)?;
    conn.busy_timeout(busy_timeout).map_err(sql_error)?;
    // The file may be a backup from elsewhere: whatever its schema holds (views,
    // triggers) may not call functions with side effects, and nothing is written.
    conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA query_only = ON; BEGIN")
        .map_err(sql_error)?;
    // The first read fixes the snapshot every page then comes from.
    conn.query_row("SELECT COUNT(*) FROM records", [], |row| row.get::<_, i64>(0))
        .map_err(sql_error)?;
    Ok(conn)
}

/// Writes every record of `records` into the database at `path` in one transaction.
pub(super) fn import(
    path: &std::path::Path,
    busy_timeout: Duration,
    mut records: Export,
    replace: bool,
) -> Result<u64, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error)?;
    conn.busy_timeout(busy_timeout).map_err(sql_error)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; BEGIN IMMEDIATE")
        .map_err(sql_error)?;
    let result = import_in_transaction(&conn, &mut records, replace);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(sql_error);
    let count = result?;
    ended?;
    Ok(count)
}

fn import_in_transaction(conn: &Connection, records: &mut Export, replace: bool) -> Result<u64, StoreError> {
    if replace {
        conn.execute_batch("DELETE FROM record_index; DELETE FROM records")
            .map_err(sql_error)?;
    }
    let mut count = 0u64;
    while let Some(page) = records.blocking_next_page()? {
        for record in &page {
            insert_exact(conn, record)?;
            count += 1;
        }
    }
    Ok(count)
}

/// Inserts `record` with its own version and timestamps.
pub(super) fn insert_exact(conn: &Connection, record: &Record) -> Result<(), StoreError> {
    if record.version == 0 {
        return Err(StoreError::Corrupt("imported record has version 0".into()));
    }
    if load_record(conn, &record.uid)?.is_some() {
        return Err(StoreError::Conflict(crate::store::Conflict::Exists));
    }
    let version = version_to_sql(record.version)?;
    conn.prepare_cached(
        "INSERT INTO records (uid, object_type, state, grp, crk_version, sealed, attributes,
                              version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            record.uid,
            record.object_type,
            record.state,
            record.group,
            record.crk_version,
            record.sealed,
            record.attributes,
            version,
            record.created_at,
            record.updated_at,
        ])
    })
    .map_err(sql_error)?;
    insert_index(conn, conn.last_insert_rowid(), record)
}
