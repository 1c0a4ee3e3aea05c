//! The manifest of a backup file: what `keyward backup` wrote, so that a
//! restore can tell that the file is whole and unchanged.
//!
//! Each record's seal binds its own fields, but not its neighbours: a record
//! removed from a backup, one put back at an older version of itself (whose
//! seal still opens), records added from another backup, all go unseen record
//! by record. The manifest closes that: the number of records and a SHA-256
//! digest over every record ([`RecordsHasher`]: a fixed-width or
//! length-prefixed encoding of every field, records in uid order — the order
//! every export gives), with the format, the keyward version and the time the
//! backup was taken. The layer above (which may use the HSM; the store does
//! not know it) authenticates [`ManifestBody::authenticated_data`] under the
//! HSM's root key (`keys::backup_mac`), and the tag is kept here with the CRK
//! version that made it.
//!
//! The manifest is one row of the backup file's own `backup_manifest` table
//! (a backup stays one file, and otherwise a store file): [`write`] adds it,
//! [`read`] reads it back, [`verified`] passes an export through and fails it
//! at its end when the records it gave are not the ones expected.

use std::path::Path;

use aws_lc_rs::digest::{Context, SHA256};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use super::{Export, Record, StoreError};

/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;
/// The table holding the manifest in a backup file.
pub const TABLE: &str = "backup_manifest";
/// The SQL that makes [`TABLE`]; a restore accepts it exactly, beside the store's schema.
pub const TABLE_SQL: &str = "CREATE TABLE backup_manifest (
        format          INTEGER NOT NULL,
        keyward_version TEXT    NOT NULL,
        created_at      INTEGER NOT NULL,
        records         INTEGER NOT NULL,
        digest          BLOB    NOT NULL,
        crk_version     INTEGER NOT NULL,
        mac             BLOB    NOT NULL
    )";

/// Domain of the records digest.
const RECORDS_DOMAIN: &[u8] = b"keyward-backup-records-v1\0";
/// Domain of the data the MAC covers; no record seal's additional data
/// (`keyward-record-v3`, `keyward-object-v*`) starts like it.
const MANIFEST_DOMAIN: &[u8] = b"keyward-backup-manifest-v1\0";

/// How many records, and their digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsDigest {
    pub records: u64,
    pub digest: [u8; 32],
}

/// The digest of a stream of records, computed as they pass (constant memory).
pub struct RecordsHasher {
    context: Context,
    /// One record's encoding, reused.
    buf: Vec<u8>,
    records: u64,
    last_uid: Option<String>,
}

impl Default for RecordsHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordsHasher {
    pub fn new() -> Self {
        let mut context = Context::new(&SHA256);
        context.update(RECORDS_DOMAIN);
        RecordsHasher {
            context,
            buf: Vec::with_capacity(1024),
            records: 0,
            last_uid: None,
        }
    }

    /// Adds the next record. Records must come in strictly ascending uid
    /// order (an export's order): anything else is refused, so that one set
    /// of records has one digest.
    pub fn add(&mut self, record: &Record) -> Result<(), StoreError> {
        match &mut self.last_uid {
            Some(last) if record.uid.as_str() <= last.as_str() => {
                return Err(StoreError::Corrupt(
                    "records out of uid order (or a uid twice) in a backup".into(),
                ));
            }
            Some(last) => {
                last.clear();
                last.push_str(&record.uid);
            }
            None => self.last_uid = Some(record.uid.clone()),
        }
        // Every field, by name: a field added to `Record` does not compile
        // here until it is in the digest.
        let Record {
            uid,
            object_type,
            state,
            group,
            crk_version,
            sealed,
            attributes,
            index,
            version,
            created_at,
            updated_at,
        } = record;
        let buf = &mut self.buf;
        buf.clear();
        put_bytes(buf, uid.as_bytes());
        buf.extend_from_slice(&object_type.to_be_bytes());
        buf.extend_from_slice(&state.to_be_bytes());
        put_bytes(buf, group.as_bytes());
        buf.extend_from_slice(&crk_version.to_be_bytes());
        put_bytes(buf, sealed);
        put_bytes(buf, attributes);
        // The index in its stored form: sorted, without duplicates.
        let sorted = index.windows(2).all(|w| w[0] < w[1]);
        let mut normalized;
        let index = if sorted {
            index
        } else {
            normalized = index.clone();
            normalized.sort();
            normalized.dedup();
            &normalized
        };
        buf.extend_from_slice(&(index.len() as u64).to_be_bytes());
        for entry in index {
            put_bytes(buf, entry.name.as_bytes());
            put_bytes(buf, entry.value.as_bytes());
        }
        buf.extend_from_slice(&version.to_be_bytes());
        buf.extend_from_slice(&created_at.to_be_bytes());
        buf.extend_from_slice(&updated_at.to_be_bytes());
        self.context.update(buf);
        self.records += 1;
        Ok(())
    }

    pub fn finish(mut self) -> RecordsDigest {
        self.context.update(&self.records.to_be_bytes());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(self.context.finish().as_ref());
        RecordsDigest {
            records: self.records,
            digest,
        }
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// What a manifest states about its backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBody {
    pub format: u32,
    /// The keyward version that wrote the backup.
    pub keyward_version: String,
    /// Unix seconds the backup was taken at.
    pub created_at: i64,
    pub records: u64,
    pub digest: [u8; 32],
}

impl ManifestBody {
    /// The manifest of records `found`, written by this build at `created_at`.
    pub fn new(found: RecordsDigest, created_at: i64) -> Self {
        ManifestBody {
            format: FORMAT,
            keyward_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            records: found.records,
            digest: found.digest,
        }
    }

    /// The bytes the MAC covers: every field, and the CRK version the MAC is
    /// made under, after a domain of their own.
    pub fn authenticated_data(&self, crk_version: u32) -> Vec<u8> {
        let mut data = Vec::with_capacity(MANIFEST_DOMAIN.len() + 80 + self.keyward_version.len());
        data.extend_from_slice(MANIFEST_DOMAIN);
        data.extend_from_slice(&self.format.to_be_bytes());
        put_bytes(&mut data, self.keyward_version.as_bytes());
        data.extend_from_slice(&self.created_at.to_be_bytes());
        data.extend_from_slice(&self.records.to_be_bytes());
        data.extend_from_slice(&self.digest);
        data.extend_from_slice(&crk_version.to_be_bytes());
        data
    }
}

/// A manifest and its MAC.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    pub body: ManifestBody,
    /// The root key version the MAC was made under.
    pub crk_version: u32,
    /// What the HSM sealed over [`Manifest::authenticated_data`].
    pub mac: Vec<u8>,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("body", &self.body)
            .field("crk_version", &self.crk_version)
            .field("mac_len", &self.mac.len())
            .finish()
    }
}

impl Manifest {
    pub fn authenticated_data(&self) -> Vec<u8> {
        self.body.authenticated_data(self.crk_version)
    }

    /// Compares the records a backup file holds with what its manifest says.
    pub fn check_records(&self, found: &RecordsDigest) -> Result<(), ManifestMismatch> {
        if found.records != self.body.records {
            return Err(ManifestMismatch::Count {
                manifest: self.body.records,
                file: found.records,
            });
        }
        if found.digest != self.body.digest {
            return Err(ManifestMismatch::Digest);
        }
        Ok(())
    }
}

/// How a backup file's records differ from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestMismatch {
    /// Records were removed or added.
    Count { manifest: u64, file: u64 },
    /// As many records, but not the same ones (a record changed, replaced by
    /// an older version of itself, or swapped for another backup's).
    Digest,
}

impl std::fmt::Display for ManifestMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestMismatch::Count { manifest, file } => write!(
                f,
                "record count does not match the manifest: the file holds {file} records, \
                 its manifest says {manifest} (records were removed or added)"
            ),
            ManifestMismatch::Digest => f.write_str(
                "records digest does not match the manifest: a record was changed, \
                 replaced by another version or swapped since the backup was written",
            ),
        }
    }
}

impl std::error::Error for ManifestMismatch {}

/// Adds `manifest` to the backup file at `path` (one that has none), in one
/// transaction.
pub(super) fn write(path: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error)?;
    let body = &manifest.body;
    let records =
        i64::try_from(body.records).map_err(|_| StoreError::Other("record count out of range".into()))?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; BEGIN IMMEDIATE; {TABLE_SQL};"
    ))
    .map_err(sql_error)?;
    let inserted = conn
        .execute(
            "INSERT INTO backup_manifest (format, keyward_version, created_at, records, digest, crk_version, mac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                body.format,
                body.keyward_version,
                body.created_at,
                records,
                body.digest.as_slice(),
                manifest.crk_version,
                manifest.mac,
            ],
        )
        .map_err(sql_error);
    let end = if inserted.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(sql_error);
    inserted?;
    ended?;
    conn.close().map_err(|(_, e)| sql_error(e))
}

/// The manifest of the backup file at `path` (opened read-only; its schema
/// already checked), or `None` for a backup written before manifests were.
pub fn read(path: &Path) -> Result<Option<Manifest>, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_error)?;
    conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA query_only = ON;")
        .map_err(sql_error)?;
    let present: Option<String> = conn
        .query_row("SELECT type FROM sqlite_master WHERE name = ?1", [TABLE], |row| {
            row.get(0)
        })
        .optional()
        .map_err(sql_error)?;
    match present.as_deref() {
        None => return Ok(None),
        Some("table") => {}
        Some(_) => return Err(bad(format!("`{TABLE}` is not a table"))),
    }
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM backup_manifest", [], |row| row.get(0))
        .map_err(sql_error)?;
    if rows != 1 {
        return Err(bad(format!("the manifest table holds {rows} rows, not one")));
    }
    let row = conn
        .query_row(
            "SELECT format, keyward_version, created_at, records, digest, crk_version, mac FROM backup_manifest",
            [],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, Vec<u8>>(6)?,
                ))
            },
        )
        .map_err(sql_error)?;
    let (format, keyward_version, created_at, records, digest, crk_version, mac) = row;
    let format = u32::try_from(format).map_err(|_| bad("format out of range".into()))?;
    if format != FORMAT {
        return Err(bad(format!(
            "manifest format {format} (written by keyward {keyward_version:?}); this build reads format {FORMAT}"
        )));
    }
    Ok(Some(Manifest {
        body: ManifestBody {
            format,
            keyward_version,
            created_at,
            records: u64::try_from(records).map_err(|_| bad("record count out of range".into()))?,
            digest: digest
                .try_into()
                .map_err(|_| bad("the digest is not 32 bytes".into()))?,
        },
        crk_version: u32::try_from(crk_version).map_err(|_| bad("CRK version out of range".into()))?,
        mac,
    }))
}

fn bad(why: String) -> StoreError {
    StoreError::Corrupt(format!("bad backup manifest: {why}"))
}

fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::Other(format!("backup manifest: {e}"))
}

/// Passes `source` through unchanged, hashing its records; the receiver gets
/// their digest once the last page passed. With `expected`, an export whose
/// records are not those ends with an error instead of its end, so that an
/// import of it (all or nothing) writes nothing: the file changed between a
/// check and the import.
pub(super) fn hashing(
    mut source: Export,
    expected: Option<RecordsDigest>,
) -> (Export, oneshot::Receiver<RecordsDigest>) {
    let (sender, export) = Export::channel(2);
    let (done, digest) = oneshot::channel();
    tokio::spawn(async move {
        let mut hasher = RecordsHasher::new();
        loop {
            let page = match source.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    let _ = sender.send(Err(e)).await;
                    return;
                }
            };
            if let Err(e) = page.iter().try_for_each(|r| hasher.add(r)) {
                let _ = sender.send(Err(e)).await;
                return;
            }
            if !sender.send(Ok(page)).await {
                return;
            }
        }
        let found = hasher.finish();
        if expected.is_some_and(|want| want != found) {
            let _ = sender
                .send(Err(StoreError::Corrupt(
                    "the backup file changed while it was read: its records are not the ones checked".into(),
                )))
                .await;
            return;
        }
        let _ = done.send(found);
    });
    (export, digest)
}

/// `source`, failing at its end unless its records are `expected`.
pub fn verified(source: Export, expected: RecordsDigest) -> Export {
    hashing(source, Some(expected)).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IndexEntry;

    fn record(uid: &str) -> Record {
        Record {
            uid: uid.into(),
            object_type: 2,
            state: 2,
            group: "g".into(),
            crk_version: 1,
            sealed: vec![1; 40],
            attributes: vec![2; 30],
            index: vec![IndexEntry::new("Name", uid), IndexEntry::new("x-Name", "vm")],
            version: 3,
            created_at: 10,
            updated_at: 20,
        }
    }

    fn digest(records: &[Record]) -> RecordsDigest {
        let mut hasher = RecordsHasher::new();
        records.iter().for_each(|r| hasher.add(r).unwrap());
        hasher.finish()
    }

    #[test]
    fn the_digest_covers_every_field_of_every_record() {
        let base = vec![record("a"), record("b")];
        let want = digest(&base);
        assert_eq!(want.records, 2);
        assert_eq!(digest(&base), want, "deterministic");
        let changes: [fn(&mut Record); 12] = [
            |r| r.object_type += 1,
            |r| r.state += 1,
            |r| r.group.push('x'),
            |r| r.crk_version += 1,
            |r| r.sealed[0] ^= 1,
            |r| r.sealed.clear(),
            |r| r.attributes.push(0),
            |r| r.index.pop().map(|_| ()).unwrap_or(()),
            |r| r.index[0].value.push('x'),
            |r| r.version -= 1,
            |r| r.created_at += 1,
            |r| r.updated_at += 1,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed[1]);
            assert_ne!(digest(&changed), want, "change {i}");
        }
        // Fields cannot trade bytes (each is length-prefixed or fixed-width).
        let mut shifted = base.clone();
        shifted[1].group = "gx".into();
        shifted[1].index[0].value = "b".into();
        let mut other = base.clone();
        other[1].group = "g".into();
        other[1].index[0].value = "xb".into();
        assert_ne!(digest(&shifted), digest(&other));
        // Fewer records, another record: another digest.
        assert_ne!(digest(&base[..1]), want);
        assert_ne!(digest(&[record("a"), record("c")]), want);
        // The index in any order is the stored (sorted) index.
        let mut reordered = base.clone();
        reordered[1].index.reverse();
        assert_eq!(digest(&reordered), want);
    }

    #[test]
    fn records_out_of_uid_order_are_refused() {
        let mut hasher = RecordsHasher::new();
        hasher.add(&record("b")).unwrap();
        assert!(hasher.add(&record("a")).is_err());
        assert!(hasher.add(&record("b")).is_err(), "a uid twice");
        hasher.add(&record("c")).unwrap();
    }

    async fn drain(mut export: Export) -> Result<usize, StoreError> {
        let mut n = 0;
        while let Some(page) = export.next_page().await? {
            n += page.len();
        }
        Ok(n)
    }

    #[tokio::test]
    async fn a_verified_export_fails_at_its_end_unless_its_records_are_those_expected() {
        let records: Vec<Record> = ["a", "b", "c", "d", "e"].iter().map(|u| record(u)).collect();
        let want = digest(&records);
        let export = Export::from_records(records.clone(), 2);
        assert_eq!(drain(verified(export, want)).await.unwrap(), 5);

        let mut older = records.clone();
        older[3].version = 2;
        let export = Export::from_records(older, 2);
        let err = drain(verified(export, want)).await.unwrap_err();
        assert!(err.to_string().contains("not the ones checked"), "{err}");

        let (export, found) = hashing(Export::from_records(records, 2), None);
        assert_eq!(drain(export).await.unwrap(), 5);
        assert_eq!(found.await.unwrap(), want);
    }

    #[test]
    fn a_manifest_tells_a_count_from_a_digest_mismatch() {
        let found = digest(&[record("a"), record("b")]);
        let manifest = Manifest {
            body: ManifestBody::new(found, 1),
            crk_version: 1,
            mac: Vec::new(),
        };
        manifest.check_records(&found).unwrap();
        let fewer = digest(&[record("a")]);
        let err = manifest.check_records(&fewer).unwrap_err();
        assert_eq!(err, ManifestMismatch::Count { manifest: 2, file: 1 });
        assert!(err.to_string().contains("record count"), "{err}");
        let other = digest(&[record("a"), record("c")]);
        let err = manifest.check_records(&other).unwrap_err();
        assert!(err.to_string().contains("records digest"), "{err}");
    }
}
