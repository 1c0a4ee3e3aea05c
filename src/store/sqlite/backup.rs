//! Online backup and restore of the SQLite store.
//!
//! Both go through SQLite's online backup API with a single step over every
//! page: the copy is read in one read transaction of the source (a consistent
//! snapshot, taken while the server keeps writing — WAL readers never block
//! the writer) and written in one write transaction of the destination (a
//! restore is all or nothing). The file holds what the store holds: sealed
//! blobs and metadata, useless without the HSM's root keys.
//!
//! A backup file is written to `<out>.partial` (created 0600, never over an
//! existing file), switched to a rollback journal so that it is one
//! self-contained file, then renamed into place.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::rows::sql_error;
use super::schema;
use crate::store::StoreError;

/// Records of one CRK version in a database file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrkCount {
    pub records: u64,
    /// Of those, records holding sealed key material (not destroyed).
    pub with_material: u64,
}

/// What a store or backup file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseSummary {
    pub schema_version: i64,
    pub records: u64,
    pub by_crk: BTreeMap<u32, CrkCount>,
}

impl DatabaseSummary {
    /// CRK versions that some record's key material is sealed under.
    pub fn crks_with_material(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.by_crk
            .iter()
            .filter(|(_, c)| c.with_material > 0)
            .map(|(&v, c)| (v, c.with_material))
    }
}

/// Copies the live store at `db` to a new file `out` (refused if `out`
/// exists) and returns what the copy holds.
pub fn backup_to(db: &Path, out: &Path) -> Result<DatabaseSummary, StoreError> {
    if !db.is_file() {
        return Err(StoreError::Other(format!("no store at {}", db.display())));
    }
    if out.exists() {
        return Err(StoreError::Other(format!(
            "{} exists; refusing to overwrite it",
            out.display()
        )));
    }
    let partial = partial_path(out);
    let result = write_backup(db, &partial);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    // A rename does not replace atomically-checked paths, so check again.
    if out.exists() {
        let _ = std::fs::remove_file(&partial);
        return Err(StoreError::Other(format!(
            "{} exists; refusing to overwrite it",
            out.display()
        )));
    }
    std::fs::rename(&partial, out).map_err(|e| io_error("renaming the backup into place", &e))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the folder is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    inspect(out)
}

fn write_backup(db: &Path, partial: &Path) -> Result<(), StoreError> {
    // Created here with 0600 so that SQLite never makes it world-readable.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(|e| io_error(&format!("creating {}", partial.display()), &e))?;
    let source = open_read_only(db)?;
    let mut dest = Connection::open(partial).map_err(sql_error)?;
    copy_all(&source, &mut dest)?;
    // One self-contained file: no -wal/-shm beside it.
    dest.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(sql_error)?;
    dest.close().map_err(|(_, e)| sql_error(e))?;
    Ok(())
}

/// Copies `backup` over the store at `db` (creating it, 0600, if absent) in
/// one transaction. The caller decides whether `db` may be overwritten and
/// whether the HSM holds the backup's root keys. Returns what was restored.
pub fn restore_from(backup: &Path, db: &Path) -> Result<DatabaseSummary, StoreError> {
    let summary = inspect(backup)?;
    if !db.exists() {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
            .map_err(|e| io_error(&format!("creating {}", db.display()), &e))?;
    }
    let source = open_read_only(backup)?;
    let mut dest = Connection::open(db).map_err(sql_error)?;
    dest.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sql_error)?;
    copy_all(&source, &mut dest)?;
    // The store runs in WAL mode (DESIGN §4); the backup file is not.
    schema::configure_writer(&dest)?;
    dest.close().map_err(|(_, e)| sql_error(e))?;
    Ok(summary)
}

/// What the keyward database at `path` holds. Fails with a one-line reason
/// when the file is missing, is not a SQLite database, or is not keyward's.
pub fn inspect(path: &Path) -> Result<DatabaseSummary, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Other(format!("{}: no such file", path.display())));
    }
    let conn = open_read_only(path)?;
    let not_ours =
        |e: StoreError| StoreError::Corrupt(format!("{} is not a keyward database ({e})", path.display()));
    let schema_version = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| {
            row.get::<_, i64>(0)
        })
        .optional()
        .map_err(|e| not_ours(sql_error(e)))?
        .ok_or_else(|| not_ours(StoreError::Other("no schema version".into())))?;
    if schema_version > schema::current_version() {
        return Err(StoreError::Other(format!(
            "{} has schema version {schema_version}, newer than this build supports ({})",
            path.display(),
            schema::current_version()
        )));
    }
    let mut stmt = conn
        .prepare("SELECT crk_version, COUNT(*), SUM(length(sealed) > 0) FROM records GROUP BY crk_version")
        .map_err(|e| not_ours(sql_error(e)))?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut summary = DatabaseSummary {
        schema_version,
        ..DatabaseSummary::default()
    };
    while let Some(row) = rows.next().map_err(sql_error)? {
        let crk: i64 = row.get(0).map_err(sql_error)?;
        let records: i64 = row.get(1).map_err(sql_error)?;
        let with_material: i64 = row.get(2).map_err(sql_error)?;
        let crk = u32::try_from(crk).map_err(|_| StoreError::Corrupt("crk_version out of range".into()))?;
        let count = CrkCount {
            records: u64::try_from(records).unwrap_or(0),
            with_material: u64::try_from(with_material).unwrap_or(0),
        };
        summary.records += count.records;
        summary.by_crk.insert(crk, count);
    }
    Ok(summary)
}

/// Records in the store at `db`: `None` when there is no store there yet (no
/// file, an empty file, or a database without keyward's tables).
pub fn count_records(db: &Path) -> Result<Option<u64>, StoreError> {
    match std::fs::metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&db.display().to_string(), &e)),
        Ok(m) if m.len() == 0 => return Ok(None),
        Ok(_) => {}
    }
    let conn = open_read_only(db)?;
    let has_records: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records')",
            [],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    if !has_records {
        return Ok(None);
    }
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))
        .map_err(sql_error)?;
    Ok(Some(u64::try_from(n).unwrap_or(0)))
}

fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sql_error)?;
    Ok(conn)
}

/// Every page of `source` into `dest`, in one step (one snapshot, one transaction).
fn copy_all(source: &Connection, dest: &mut Connection) -> Result<(), StoreError> {
    let backup = Backup::new(source, dest).map_err(sql_error)?;
    match backup.step(-1).map_err(sql_error)? {
        StepResult::Done => Ok(()),
        StepResult::Busy | StepResult::Locked => {
            Err(StoreError::unavailable("the database is locked; try again"))
        }
        StepResult::More => Err(StoreError::Other("backup stopped before the last page".into())),
        _ => Err(StoreError::Other("unexpected backup step result".into())),
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

fn io_error(what: &str, e: &std::io::Error) -> StoreError {
    StoreError::Other(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;
    use crate::store::{Record, SqliteOptions, SqliteStore, Store};

    fn record(uid: &str, crk: u32, sealed: &[u8]) -> Record {
        Record {
            uid: uid.into(),
            object_type: 2,
            state: 1,
            group: "g".into(),
            crk_version: crk,
            sealed: sealed.to_vec(),
            attributes: vec![1, 2, 3],
            index: vec![],
            version: 0,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[tokio::test]
    async fn backup_then_restore_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        let store = Arc::new(SqliteStore::open(&db, SqliteOptions::default()).unwrap());
        store.create(&record("a", 1, b"blob-a")).await.unwrap();
        store.create(&record("b", 2, b"blob-b")).await.unwrap();
        store.create(&record("c", 2, b"")).await.unwrap();

        let out = dir.path().join("backup.db");
        let summary = backup_to(&db, &out).unwrap();
        assert_eq!(summary.records, 3);
        assert_eq!(
            summary.by_crk[&1],
            CrkCount {
                records: 1,
                with_material: 1
            }
        );
        assert_eq!(
            summary.by_crk[&2],
            CrkCount {
                records: 2,
                with_material: 1
            }
        );
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("backup.db-wal").exists());
        assert!(backup_to(&db, &out).is_err(), "never overwrites");

        let fresh = dir.path().join("fresh.db");
        assert_eq!(count_records(&fresh).unwrap(), None);
        restore_from(&out, &fresh).unwrap();
        assert_eq!(count_records(&fresh).unwrap(), Some(3));
        let restored = SqliteStore::open(&fresh, SqliteOptions::default()).unwrap();
        let a = restored.get("a").await.unwrap().unwrap();
        assert_eq!(a.sealed, b"blob-a");
        assert_eq!(restored.count_by_crk().await.unwrap().get(&2), Some(&2));
    }

    #[test]
    fn refuses_what_is_not_a_keyward_database() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        assert!(
            inspect(&missing)
                .unwrap_err()
                .to_string()
                .contains("no such file")
        );
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        assert!(inspect(&junk).is_err());
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(
            inspect(&other)
                .unwrap_err()
                .to_string()
                .contains("not a keyward database")
        );
    }
}
