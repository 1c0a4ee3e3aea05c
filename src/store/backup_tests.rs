//! Tests of backup files: round trip, refused schemas, records that do not match the manifest.

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
            "table \"extra\" is not part of keyward's schema",
        ),
        (
            "CREATE INDEX extra ON records (state)",
            "index \"extra\" is not part of",
        ),
        ("CREATE VIEW extra AS SELECT 1", "view \"extra\" is not part of"),
        ("DROP INDEX records_by_crk", "index \"records_by_crk\" is missing"),
        (
            "ALTER TABLE backup_manifest ADD COLUMN x",
            "table \"backup_manifest\" differs",
        ),
        (
            "ALTER TABLE record_index ADD COLUMN x",
            "table \"record_index\" differs",
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
