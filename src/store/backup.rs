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
#[path = "backup_tests.rs"]
mod tests;
