//! Backup files, whatever the live store's backend.
//!
//! A backup is read from the live store through [`Store::export`] (one
//! consistent snapshot, taken while the server keeps writing) and written
//! through [`Store::import`] into a fresh SQLite file: one self-contained file
//! holding sealed blobs and metadata only, useless without the HSM's root keys.
//! The file carries a manifest (`backup_manifest`: the number of records and
//! a digest of them all, MACed under the HSM's root key by the caller) so that
//! a restore can tell a whole, unchanged backup from one with records removed,
//! added or put back at older versions.
//!
//! A restore opens a backup file read-only and only if its schema is exactly
//! keyward's (a store's, plus the manifest table): no view, trigger or other
//! table. It reads the records through the same trait (only the record
//! columns this build knows: nothing of the file's schema reaches the live
//! store), checks them against the manifest, and imports them through an
//! export that fails at its end if they are not the records checked.
//!
//! The file is written to `<out>.partial` (created 0600, never over an existing
//! file), switched to a rollback journal so that it is one file, read back,
//! given its manifest, then linked into place (a link, unlike a rename, never
//! replaces a file made meanwhile).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::backup_manifest::{self, Manifest, ManifestBody, RecordsDigest, RecordsHasher};
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

/// What `store` holds and the digest of its records, from one consistent
/// export (a backup file checked against its manifest).
pub async fn summarize_with_digest(store: &dyn Store) -> Result<(Summary, RecordsDigest), StoreError> {
    let mut export = store.export(DEFAULT_PAGE_SIZE).await?;
    let mut summary = Summary::default();
    let mut hasher = RecordsHasher::new();
    while let Some(page) = export.next_page().await? {
        for record in &page {
            summary.add(record);
            hasher.add(record)?;
        }
    }
    Ok((summary, hasher.finish()))
}

/// A backup written to `<out>.partial` and read back, waiting for the MAC of
/// its manifest; [`PendingBackup::finish`] puts it in place. Dropped
/// unfinished, the partial file goes.
#[derive(Debug)]
pub struct PendingBackup {
    partial: PartialFile,
    out: PathBuf,
    summary: Summary,
    manifest: ManifestBody,
}

/// The partial file's name, removed when dropped (the backup's name, once
/// linked, keeps the file).
#[derive(Debug)]
struct PartialFile(PathBuf);

impl Drop for PartialFile {
    fn drop(&mut self) {
        remove_partial(&self.0);
    }
}

/// Copies everything `store` holds into a new backup file `out` (refused if
/// `out` exists): the records are written beside it and read back; the
/// caller MACs the manifest and calls [`PendingBackup::finish`].
pub async fn write_file(store: &dyn Store, out: &Path) -> Result<PendingBackup, StoreError> {
    if out.exists() {
        return Err(refuse_overwrite(out));
    }
    let partial = partial_path(out);
    // Created here, 0600 and new: never over another file, never world-readable.
    create_new_private(&partial)?;
    let partial = PartialFile(partial);
    let written = fill(store, &partial.0).await?;
    // Read back as a restore will read it: the file must hold what was sent.
    let backup = SqliteStore::open_read_only_exact(&partial.0, SqliteOptions::default(), &[])?;
    let (summary, found) = summarize_with_digest(&backup).await?;
    drop(backup);
    if found != written {
        return Err(StoreError::Corrupt(
            "the backup file does not read back as it was written".into(),
        ));
    }
    Ok(PendingBackup {
        partial,
        out: out.to_path_buf(),
        summary,
        manifest: ManifestBody::new(found, crate::clock::unix_now()),
    })
}

impl PendingBackup {
    /// What the backup holds.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The manifest to MAC.
    pub fn manifest(&self) -> &ManifestBody {
        &self.manifest
    }

    /// Stores the manifest with its `mac` (made under root key `crk_version`)
    /// in the file and puts the file in place; returns what it holds.
    pub fn finish(self, crk_version: u32, mac: Vec<u8>) -> Result<Summary, StoreError> {
        let manifest = Manifest {
            body: self.manifest.clone(),
            crk_version,
            mac,
        };
        let partial = &self.partial.0;
        backup_manifest::write(partial, &manifest)?;
        // The file as a restore opens it: exact schema, the same manifest.
        if open_file(partial)?.manifest.as_ref() != Some(&manifest) {
            return Err(StoreError::Corrupt(
                "the backup manifest does not read back as it was written".into(),
            ));
        }
        let out = &self.out;
        // Put in place by a hard link, which fails if `out` exists (a rename would
        // replace a file made meanwhile), then the partial name goes.
        match std::fs::hard_link(partial, out) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(refuse_overwrite(out)),
            // A file system without hard links (FAT, some network shares): the
            // existence check and a rename, the best it allows.
            Err(_) if out.exists() => return Err(refuse_overwrite(out)),
            Err(_) => {
                std::fs::rename(partial, out).map_err(|e| io_error("renaming the backup into place", &e))?
            }
        }
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            // The new name is durable once the folder is.
            let _ = d.sync_all();
        }
        // The partial name goes when `self` does (the link keeps the file).
        Ok(self.summary.clone())
    }
}

/// Writes the export of `store` into `partial`; answers the digest of the
/// records sent.
async fn fill(store: &dyn Store, partial: &Path) -> Result<RecordsDigest, StoreError> {
    let dest = SqliteStore::open(partial, SqliteOptions::default())?;
    let (export, digest) = backup_manifest::hashing(store.export(DEFAULT_PAGE_SIZE).await?, None);
    dest.import(export, false).await?;
    let sent = digest
        .await
        .map_err(|_| StoreError::Other("the backup's digest task failed".into()))?;
    // One self-contained file: no -wal/-shm beside it.
    tokio::task::spawn_blocking(move || dest.close_as_single_file())
        .await
        .map_err(|_| StoreError::Other("the backup task failed".into()))??;
    Ok(sent)
}

/// A backup file opened for a restore: its records (read-only) and its
/// manifest (`None`: written before backups had one).
#[derive(Debug)]
pub struct BackupFile {
    pub records: SqliteStore,
    pub manifest: Option<Manifest>,
}

/// Opens the backup file at `path` read-only. Fails with a one-line reason
/// when the file is missing, is not a SQLite database, is not keyward's, or
/// holds anything but a store's schema and the manifest table.
pub fn open_file(path: &Path) -> Result<BackupFile, StoreError> {
    let records = SqliteStore::open_read_only_exact(
        path,
        SqliteOptions::default(),
        &[(backup_manifest::TABLE, backup_manifest::TABLE_SQL)],
    )?;
    let manifest = backup_manifest::read(path)?;
    Ok(BackupFile { records, manifest })
}

/// An export of the backup file's records that fails at its end (so that an
/// all-or-nothing import writes nothing) unless they are `expected`: the
/// records checked before.
pub async fn export_file(backup: &BackupFile, expected: RecordsDigest) -> Result<Export, StoreError> {
    let export = backup.records.export(DEFAULT_PAGE_SIZE).await?;
    Ok(backup_manifest::verified(export, expected))
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

    /// A backup as `keyward backup` writes one, with a stand-in MAC (the
    /// store keeps the MAC; it does not make or check it).
    pub(crate) async fn backup(store: &dyn Store, out: &Path) -> Summary {
        let pending = write_file(store, out).await.unwrap();
        pending.finish(1, b"stand-in MAC".to_vec()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_then_restore_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled(&dir.path().join("live.db")).await;

        let out = dir.path().join("backup.db");
        let summary = backup(&store, &out).await;
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

        // The manifest: what the file holds, stated and MACed at backup time.
        let file = open_file(&out).unwrap();
        let manifest = file.manifest.clone().unwrap();
        assert_eq!(manifest.crk_version, 1);
        assert_eq!(manifest.mac, b"stand-in MAC");
        assert_eq!(manifest.body.records, 3);
        assert_eq!(manifest.body.keyward_version, env!("CARGO_PKG_VERSION"));
        assert!(manifest.body.created_at > 1_700_000_000);
        let (read, found) = summarize_with_digest(&file.records).await.unwrap();
        assert_eq!(read, summary);
        manifest.check_records(&found).unwrap();
        // The digest is the live store's records' digest.
        assert_eq!(summarize_with_digest(&store).await.unwrap().1, found);

        let fresh = MemoryStore::new();
        let n = fresh
            .import(export_file(&file, found).await.unwrap(), false)
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
        backup(&store, &out).await;
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

    /// A backup file is data, not code: a trigger planted in it is refused, and
    /// even read through a plain read-only open (as a live store is) it must
    /// not reach the store its records are imported into, nor run there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trigger_planted_in_a_backup_is_refused_and_has_no_effect() {
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
        let err = open_file(&out).unwrap_err().to_string();
        assert!(err.contains("is not part of keyward's schema"), "{err}");

        let target = dir.path().join("restored.db");
        let restored = SqliteStore::open(&target, SqliteOptions::default()).unwrap();
        let backup = SqliteStore::open_read_only(&out, SqliteOptions::default()).unwrap();
        restored
            .import(backup.export(DEFAULT_PAGE_SIZE).await.unwrap(), true)
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

    /// A copy of `from` at `name`, changed by `sql` (run with `old`, if any, attached).
    fn tampered(from: &Path, name: &str, old: Option<&Path>, sql: &str) -> PathBuf {
        let to = from.with_file_name(name);
        std::fs::copy(from, &to).unwrap();
        let conn = rusqlite::Connection::open(&to).unwrap();
        if let Some(old) = old {
            conn.execute("ATTACH ?1 AS old", [old.to_str().unwrap()]).unwrap();
        }
        conn.execute_batch(sql).unwrap();
        to
    }

    async fn check(path: &Path) -> Result<(), crate::store::backup_manifest::ManifestMismatch> {
        let file = open_file(path).unwrap();
        let (_, found) = summarize_with_digest(&file.records).await.unwrap();
        file.manifest.unwrap().check_records(&found)
    }

    /// What a record's seal cannot show — a record removed, one put back at
    /// an older version of itself, the manifest of another backup — the
    /// manifest does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_removed_or_rolled_back_do_not_match_the_manifest() {
        use crate::store::backup_manifest::ManifestMismatch;
        let dir = tempfile::tempdir().unwrap();
        let store = filled(&dir.path().join("live.db")).await;
        let earlier = dir.path().join("earlier.db");
        backup(&store, &earlier).await;
        let mut a = store.get("a").await.unwrap().unwrap();
        a.state = 2;
        a.updated_at = 5;
        store.update(&a, 1).await.unwrap();
        let out = dir.path().join("backup.db");
        backup(&store, &out).await;
        check(&out).await.unwrap();

        let removed = tampered(
            &out,
            "removed.db",
            Some(&earlier),
            "DELETE FROM record_index WHERE seq = (SELECT seq FROM records WHERE uid = 'c');
             DELETE FROM records WHERE uid = 'c';",
        );
        assert_eq!(
            check(&removed).await,
            Err(ManifestMismatch::Count { manifest: 3, file: 2 })
        );
        let rolled_back = tampered(
            &out,
            "rolled-back.db",
            Some(&earlier),
            "UPDATE records SET (state, version, updated_at, sealed, attributes) =
                 (SELECT state, version, updated_at, sealed, attributes FROM old.records WHERE uid = 'a')
             WHERE uid = 'a';",
        );
        assert_eq!(check(&rolled_back).await, Err(ManifestMismatch::Digest));
        // The earlier backup's manifest (genuine, MACed) over these records.
        let swapped = tampered(
            &out,
            "swapped.db",
            Some(&earlier),
            "DELETE FROM backup_manifest; INSERT INTO backup_manifest SELECT * FROM old.backup_manifest;",
        );
        assert_eq!(check(&swapped).await, Err(ManifestMismatch::Digest));
        // And an import of records other than those checked writes nothing.
        let target = SqliteStore::open(dir.path().join("target.db"), SqliteOptions::default()).unwrap();
        target.create(&record("z", 1, b"blob-z")).await.unwrap();
        let file = open_file(&rolled_back).unwrap();
        let checked = summarize_with_digest(&open_file(&out).unwrap().records)
            .await
            .unwrap()
            .1;
        let err = target
            .import(export_file(&file, checked).await.unwrap(), true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not the ones checked"), "{err}");
        assert_eq!(target.list_page(None, 10).await.unwrap().len(), 1);
        assert!(target.get("z").await.unwrap().is_some());
    }

    /// A backup file holds a store's schema and the manifest table, nothing
    /// else; one without the manifest table is a backup from before manifests.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_a_store_schema_and_the_manifest_table_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let out = backup_of_a_filled_store(dir.path()).await;
        let old_style = tampered(&out, "old-style.db", None, "DROP TABLE backup_manifest;");
        let file = open_file(&old_style).unwrap();
        assert!(file.manifest.is_none());
        assert_eq!(summarize(&file.records).await.unwrap().records, 3);

        for (sql, needle) in [
            (
                "CREATE TABLE extra (x)",
                "table `extra` is not part of keyward's schema",
            ),
            (
                "CREATE INDEX extra ON records (state)",
                "index `extra` is not part of",
            ),
            ("CREATE VIEW extra AS SELECT 1", "view `extra` is not part of"),
            ("DROP INDEX records_by_crk", "index `records_by_crk` is missing"),
            (
                "ALTER TABLE backup_manifest ADD COLUMN x",
                "table `backup_manifest` differs",
            ),
            (
                "ALTER TABLE record_index ADD COLUMN x",
                "table `record_index` differs",
            ),
            (
                "INSERT INTO backup_manifest SELECT * FROM backup_manifest",
                "holds 2 rows, not one",
            ),
            ("UPDATE backup_manifest SET digest = x'00'", "not 32 bytes"),
            ("UPDATE backup_manifest SET format = 2", "manifest format 2"),
        ] {
            let bad = tampered(&out, "bad.db", None, sql);
            let err = open_file(&bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{sql}: {err}");
            std::fs::remove_file(&bad).unwrap();
        }
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
