//! Connection settings and the versioned schema.
//!
//! `meta.schema_version` records which entries of `MIGRATIONS` have run; a new
//! schema change is appended as a new entry, never edited in place.

use rusqlite::{Connection, OptionalExtension};

use super::rows::sql_error;
use crate::store::StoreError;

/// `MIGRATIONS[i]` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: records with their fixed, searchable fields; the index in its own table.
    // `seq` (the rowid) is the join key so index rows stay small.
    "CREATE TABLE records (
        seq         INTEGER PRIMARY KEY,
        uid         TEXT    NOT NULL UNIQUE,
        object_type INTEGER NOT NULL,
        state       INTEGER NOT NULL,
        grp         TEXT    NOT NULL,
        crk_version INTEGER NOT NULL,
        sealed      BLOB    NOT NULL,
        attributes  BLOB    NOT NULL,
        version     INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX records_by_created ON records (created_at, uid);
    CREATE INDEX records_by_type_state ON records (object_type, state);
    CREATE INDEX records_by_group ON records (grp);
    CREATE INDEX records_by_crk ON records (crk_version);
    CREATE TABLE record_index (
        name  TEXT    NOT NULL,
        value TEXT    NOT NULL,
        seq   INTEGER NOT NULL REFERENCES records (seq),
        PRIMARY KEY (name, value, seq)
    ) WITHOUT ROWID;
    CREATE INDEX record_index_by_seq ON record_index (seq);",
    // 2: a group's records in creation order, so that a walk over a group (a
    // Locate by State) reads its first matches instead of sorting the group.
    "CREATE INDEX records_by_group_created ON records (grp, created_at, uid);
    DROP INDEX records_by_group;",
];

/// The table holding the schema version, made before any migration runs.
const META_TABLE: &str = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)";

/// The oldest schema version whose records this build reads unchanged
/// (versions since then add indexes only): a backup written by an earlier
/// build restores, and a read-only command opens a store the server has not
/// migrated yet.
pub(super) const READABLE_SINCE: i64 = 1;

/// The schema version this build writes.
pub(super) fn current_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Settings for the one writer connection: WAL so readers never block the
/// writer, and `synchronous=FULL` so a commit is on disk before it returns
/// (an acknowledged Create survives power loss, DESIGN §4).
pub(super) fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!(
            "cannot enable WAL (journal mode is {mode})"
        )));
    }
    // temp_store: a batch's savepoints keep their statement journals in
    // memory (a batch is bounded), not in temporary files. journal_size_limit:
    // a WAL that a burst grew past 64 MiB shrinks back once checkpointed.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(sql_error)
}

/// Brings the schema up to `current_version()`, in one transaction.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_error)?;
    let result = migrate_in_transaction(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(sql_error);
    result.and(ended)
}

fn migrate_in_transaction(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(META_TABLE).map_err(sql_error)?;
    let found: i64 = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(sql_error)?
        .unwrap_or(0);
    let target = current_version();
    if found > target {
        return Err(StoreError::Other(format!(
            "database schema version {found} is newer than this build supports ({target})"
        )));
    }
    let start =
        usize::try_from(found).map_err(|_| StoreError::Corrupt(format!("invalid schema version {found}")))?;
    for step in MIGRATIONS.iter().skip(start) {
        conn.execute_batch(step).map_err(sql_error)?;
    }
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [target],
    )
    .map_err(sql_error)?;
    Ok(())
}

/// Reads the schema version (a cheap query that proves the file is usable).
pub(super) fn read_version(conn: &Connection) -> Result<i64, StoreError> {
    // `meta` and `records` must be tables: a view planted in a foreign file (a
    // backup) could stand for anything, a recursive query that never ends included.
    for name in ["meta", "records"] {
        let kind: Option<String> = conn
            .query_row("SELECT type FROM sqlite_master WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sql_error)?;
        if kind.as_deref() != Some("table") {
            return Err(StoreError::Corrupt(format!("`{name}` is not a table")));
        }
    }
    conn.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| {
        row.get(0)
    })
    .map_err(sql_error)
}

/// One entry of a database's schema: type, name, table and the SQL that made it.
type SchemaObject = (String, String, String, Option<String>);

fn schema_objects(conn: &Connection) -> Result<Vec<SchemaObject>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .map_err(sql_error)?;
    let rows = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .map_err(sql_error)?;
    rows.map(|r| r.map_err(sql_error)).collect()
}

/// Checks that the schema of `conn` (a file of schema `version` from
/// elsewhere: a backup) is exactly the one this build makes for that version,
/// plus those of the `optional` tables (name, SQL) the file holds: nothing
/// more (a view, a trigger, another table or index), nothing less, nothing
/// altered. The reference is built by running the same SQL in memory.
pub(super) fn check_exact(
    conn: &Connection,
    version: i64,
    optional: &[(&str, &str)],
) -> Result<(), StoreError> {
    let found = schema_objects(conn)?;
    let reference = Connection::open_in_memory().map_err(sql_error)?;
    reference.execute_batch(META_TABLE).map_err(sql_error)?;
    let steps = usize::try_from(version).unwrap_or(0);
    for step in MIGRATIONS.iter().take(steps) {
        reference.execute_batch(step).map_err(sql_error)?;
    }
    for (name, sql) in optional {
        if found.iter().any(|(kind, n, _, _)| kind == "table" && n == name) {
            reference.execute_batch(sql).map_err(sql_error)?;
        }
    }
    let expected = schema_objects(&reference)?;
    if let Some((kind, name, _, _)) = found.iter().find(|o| !expected.contains(o)) {
        let why = match expected.iter().any(|(k, n, _, _)| k == kind && n == name) {
            true => "differs from keyward's",
            false => "is not part of keyward's schema",
        };
        return Err(StoreError::Corrupt(format!("{kind} {name:?} {why}")));
    }
    if let Some((kind, name, _, _)) = expected.iter().find(|o| !found.contains(o)) {
        return Err(StoreError::Corrupt(format!("{kind} {name:?} is missing")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_is_migrated_and_read_only_opens_accept_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO meta VALUES ('schema_version', 1);",
        )
        .unwrap();
        drop(conn);
        // A read-only open (restore of an older backup) reads version 1 as is.
        let old = crate::store::SqliteStore::open_read_only(&path, Default::default());
        assert!(old.is_ok(), "{:?}", old.err());
        drop(old);
        // And so does the exact open of a backup file (an older build's backup).
        let exact = crate::store::SqliteStore::open_read_only_exact(&path, Default::default(), &[]);
        assert!(exact.is_ok(), "{:?}", exact.err());
        drop(exact);
        let conn = Connection::open(&path).unwrap();
        migrate(&conn).unwrap();
        assert_eq!(read_version(&conn).unwrap(), current_version());
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            indexes.contains(&"records_by_group_created".to_owned()),
            "{indexes:?}"
        );
        assert!(!indexes.contains(&"records_by_group".to_owned()), "{indexes:?}");
    }
}
