//! Backup files, whatever the live store's backend.
//!
//! A backup is read from the live store through [`Store::export`] (one
//! consistent snapshot, taken while the server keeps writing) and written
//! through [`Store::import`] into a fresh SQLite file: one self-contained file
//! holding sealed blobs and metadata only, useless without the HSM's root keys.
//! A restore reads a backup file's records through the same trait (the file is
//! opened read-only, and only the record columns this build knows are read:
//! nothing of the file's schema reaches the live store) and imports them.
//!
//! The file is written to `<out>.partial` (created 0600, never over an existing
//! file), switched to a rollback journal so that it is one file, then linked
//! into place (a link, unlike a rename, never replaces a file made meanwhile).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{DEFAULT_PAGE_SIZE, Export, Record, SqliteOptions, SqliteStore, Store, StoreError};

/// Records of one CRK version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrkCount {
    pub records: u64,
    /// Of those, records holding sealed key material (not destroyed).
    pub with_material: u64,
}

/// What a store or a backup file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub by_crk: BTreeMap<u32, CrkCount>,
}

impl Summary {
    /// Counts one record.
    pub fn add(&mut self, record: &Record) {
        let count = self.by_crk.entry(record.crk_version).or_default();
        count.records += 1;
        if !record.sealed.is_empty() {
            count.with_material += 1;
        }
        self.records += 1;
    }

    /// CRK versions that some record's key material is sealed under.
    pub fn crks_with_material(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.by_crk
            .iter()
            .filter(|(_, c)| c.with_material > 0)
            .map(|(&v, c)| (v, c.with_material))
    }
}

/// What `store` holds, read from one consistent export.
pub async fn summarize(store: &dyn Store) -> Result<Summary, StoreError> {
    let mut export = store.export(DEFAULT_PAGE_SIZE).await?;
    let mut summary = Summary::default();
    while let Some(page) = export.next_page().await? {
        page.iter().for_each(|r| summary.add(r));
    }
    Ok(summary)
}

/// Copies everything `store` holds into a new backup file `out` (refused if
/// `out` exists) and returns what the copy holds.
pub async fn write_file(store: &dyn Store, out: &Path) -> Result<Summary, StoreError> {
    if out.exists() {
        return Err(refuse_overwrite(out));
    }
    let partial = partial_path(out);
    // Created here, 0600 and new: never over another file, never world-readable.
    create_new_private(&partial)?;
    let result = fill(store, &partial).await;
    if let Err(e) = result {
        remove_partial(&partial);
        return Err(e);
    }
    // Put in place by a hard link, which fails if `out` exists (a rename would
    // replace a file made meanwhile), then the partial name goes.
    match std::fs::hard_link(&partial, out) {
        Ok(()) => remove_partial(&partial),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove_partial(&partial);
            return Err(refuse_overwrite(out));
        }
        // A file system without hard links (FAT, some network shares): the
        // existence check and a rename, the best it allows.
        Err(_) if out.exists() => {
            remove_partial(&partial);
            return Err(refuse_overwrite(out));
        }
        Err(_) => {
            std::fs::rename(&partial, out).map_err(|e| io_error("renaming the backup into place", &e))?
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        // The new name is durable once the folder is.
        let _ = d.sync_all();
    }
    let backup = open_file(out)?;
    summarize(&backup).await
}

async fn fill(store: &dyn Store, partial: &Path) -> Result<(), StoreError> {
    let dest = SqliteStore::open(partial, SqliteOptions::default())?;
    let export = store.export(DEFAULT_PAGE_SIZE).await?;
    dest.import(export, false).await?;
    // One self-contained file: no -wal/-shm beside it.
    tokio::task::spawn_blocking(move || dest.close_as_single_file())
        .await
        .map_err(|_| StoreError::Other("the backup task failed".into()))?
}

/// Opens the backup file at `path` read-only, as a store to export from.
/// Fails with a one-line reason when the file is missing, is not a SQLite
/// database, or is not keyward's.
pub fn open_file(path: &Path) -> Result<SqliteStore, StoreError> {
    SqliteStore::open_read_only(path, SqliteOptions::default())
}

/// An export of the backup file at `path`.
pub async fn export_file(backup: &dyn Store) -> Result<Export, StoreError> {
    backup.export(DEFAULT_PAGE_SIZE).await
}

fn create_new_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| io_error(&format!("creating {}", path.display()), &e))
}

fn remove_partial(partial: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = partial.as_os_str().to_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

fn refuse_overwrite(out: &Path) -> StoreError {
    StoreError::Other(format!("{} exists; refusing to overwrite it", out.display()))
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

    use super::*;
    use crate::store::MemoryStore;

    fn record(uid: &str, crk: u32, sealed: &[u8]) -> Record {
        Record {
            uid: uid.into(),
            object_type: 2,
            state: 1,
            group: "g".into(),
            crk_version: crk,
            sealed: sealed.to_vec(),
            attributes: vec![1, 2, 3],
            index: vec![crate::store::IndexEntry::new("Name", uid)],
            version: 0,
            created_at: 1,
            updated_at: 1,
        }
    }

    async fn filled(db: &Path) -> SqliteStore {
        let store = SqliteStore::open(db, SqliteOptions::default()).unwrap();
        store.create(&record("a", 1, b"blob-a")).await.unwrap();
        store.create(&record("b", 2, b"blob-b")).await.unwrap();
        store.create(&record("c", 2, b"")).await.unwrap();
        let mut b = store.get("b").await.unwrap().unwrap();
        b.state = 3;
        store.update(&b, 1).await.unwrap();
        store
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_then_restore_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled(&dir.path().join("live.db")).await;

        let out = dir.path().join("backup.db");
        let summary = write_file(&store, &out).await.unwrap();
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
        assert!(!dir.path().join("backup.db.partial").exists());
        assert!(write_file(&store, &out).await.is_err(), "never overwrites");

        let fresh = MemoryStore::new();
        let backup = open_file(&out).unwrap();
        let n = fresh
            .import(export_file(&backup).await.unwrap(), false)
            .await
            .unwrap();
        assert_eq!(n, 3);
        for uid in ["a", "b", "c"] {
            let want = store.get(uid).await.unwrap().unwrap();
            let got = fresh.get(uid).await.unwrap().unwrap();
            assert!(got.same_content(&want) && got.version == want.version, "{uid}");
        }
        assert_eq!(fresh.get("b").await.unwrap().unwrap().version, 2);
    }

    /// A backup file of a filled store, written as `keyward backup` writes one.
    async fn backup_of_a_filled_store(dir: &Path) -> PathBuf {
        let store = filled(&dir.join("live.db")).await;
        let out = dir.join("backup.db");
        write_file(&store, &out).await.unwrap();
        out
    }

    /// A backup whose rows are a view (which could stand for anything) is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_whose_records_are_a_view_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = backup_of_a_filled_store(dir.path()).await;
        // The rows replaced by a view that could stand for anything (here a
        // query that never ends).
        let conn = rusqlite::Connection::open(&out).unwrap();
        conn.execute_batch(
            "ALTER TABLE records RENAME TO real_records;
             CREATE VIEW records AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
                 SELECT r.* FROM real_records r, n;",
        )
        .unwrap();
        drop(conn);
        let Err(err) = open_file(&out) else {
            panic!("a view in place of records must be refused")
        };
        assert!(err.to_string().contains("not a table"), "{err}");
    }

    /// A backup file is data, not code: a trigger planted in it must not reach
    /// the store it is restored into, nor run there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trigger_planted_in_a_backup_has_no_effect() {
        let dir = tempfile::tempdir().unwrap();
        let out = backup_of_a_filled_store(dir.path()).await;
        let conn = rusqlite::Connection::open(&out).unwrap();
        conn.execute_batch(
            "CREATE TABLE stolen (uid TEXT, sealed BLOB);
             CREATE TRIGGER leak AFTER INSERT ON records BEGIN
                 INSERT INTO stolen VALUES (new.uid, new.sealed);
                 UPDATE records SET grp = 'attacker';
             END;
             CREATE TRIGGER leak_update AFTER UPDATE ON records BEGIN
                 INSERT INTO stolen VALUES (new.uid, new.sealed);
             END;",
        )
        .unwrap();
        drop(conn);

        let target = dir.path().join("restored.db");
        let restored = SqliteStore::open(&target, SqliteOptions::default()).unwrap();
        let backup = open_file(&out).unwrap();
        restored
            .import(export_file(&backup).await.unwrap(), true)
            .await
            .unwrap();
        // New writes into the restored store fire nothing either.
        restored.create(&record("d", 2, b"blob-d")).await.unwrap();
        let mut a = restored.get("a").await.unwrap().unwrap();
        a.state = 2;
        restored.update(&a, 1).await.unwrap();
        drop(restored);

        let conn = rusqlite::Connection::open(&target).unwrap();
        let extra: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('stolen', 'leak', 'leak_update')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(extra, 0, "the backup's schema reached the store");
        let groups: Vec<String> = conn
            .prepare("SELECT DISTINCT grp FROM records")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(groups, vec!["g".to_owned()]);
        // The planted table in the backup stayed empty: reading it wrote nothing.
        let conn = rusqlite::Connection::open(&out).unwrap();
        let stolen: i64 = conn
            .query_row("SELECT COUNT(*) FROM stolen", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stolen, 0);
    }

    #[test]
    fn refuses_what_is_not_a_keyward_database() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        assert!(
            open_file(&missing)
                .unwrap_err()
                .to_string()
                .contains("no such file")
        );
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        assert!(
            open_file(&junk)
                .unwrap_err()
                .to_string()
                .contains("not a keyward database")
        );
        let other = dir.path().join("other.db");
        rusqlite::Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(
            open_file(&other)
                .unwrap_err()
                .to_string()
                .contains("not a keyward database")
        );
    }
}
