//! Read-only connections and the queries that run on them.
//!
//! WAL lets readers run alongside the writer, each on a consistent snapshot of
//! the last commit. A few reader threads (see `crate::workers`) each own one
//! read-only connection and drain a shared queue of queries: a point read
//! takes microseconds, and handing each one to tokio's blocking pool cost more
//! in thread wake-ups than the read itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::rows::{RECORD_COLUMNS, load_index, load_record, record_from_row, sql_error};
use super::schema;
use crate::store::{Query, Record, StoreError};
use crate::workers::{PoolError, WorkerPool};

/// Most reads waiting for a reader thread.
///
/// Stops: unbounded memory when the disk stalls under load; beyond this a
/// read fails at once with `Unavailable`.
const MAX_QUEUED_READS: usize = 16 * 1024;

/// One reader thread's connection, opened on its first query (and reopened
/// after an open failed).
struct Reader {
    path: PathBuf,
    busy_timeout: Duration,
    conn: Option<Connection>,
}

impl Reader {
    fn conn(&mut self) -> Result<&Connection, StoreError> {
        if self.conn.is_none() {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(&self.path, flags).map_err(sql_error)?;
            conn.busy_timeout(self.busy_timeout).map_err(sql_error)?;
            // keyward's schema has no triggers or views; a file from elsewhere (a
            // backup being restored) must not run any it carries.
            conn.pragma_update(None, "trusted_schema", "OFF")
                .map_err(sql_error)?;
            self.conn = Some(conn);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| StoreError::Other("reader connection missing".into()))
    }
}

pub(super) struct ReadPool {
    threads: WorkerPool<Reader>,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf, size: usize, busy_timeout: Duration) -> Self {
        let readers = (0..size.max(1))
            .map(|_| Reader {
                path: path.clone(),
                busy_timeout,
                conn: None,
            })
            .collect();
        ReadPool {
            // A point read from the page cache takes microseconds: inline when
            // idle (see `crate::workers`).
            threads: WorkerPool::new("keyward-store-reader", readers, MAX_QUEUED_READS).with_inline_calls(),
        }
    }

    /// Runs `job` on a reader thread's connection.
    pub(super) async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let job = move |reader: &mut Reader| job(reader.conn()?);
        Self::answer(self.threads.run_queued(job).await)
    }

    /// [`ReadPool::run`] for a point read (one record by its uid), which may
    /// run on the caller's thread when the pool is idle. Only point reads: a
    /// client's Locate over many keys must not hold an async thread.
    pub(super) async fn point<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let job = move |reader: &mut Reader| job(reader.conn()?);
        Self::answer(self.threads.run(job).await)
    }

    fn answer<T>(ran: Result<Result<T, StoreError>, PoolError>) -> Result<T, StoreError> {
        ran.map_err(|e| match e {
            PoolError::Full => StoreError::unavailable("too many reads waiting"),
            PoolError::Stopped => StoreError::unavailable("store readers stopped"),
            PoolError::Panicked => StoreError::Other("read task failed".into()),
        })?
    }
}

pub(super) fn get(conn: &Connection, uid: &str) -> Result<Option<Record>, StoreError> {
    Ok(load_record(conn, uid)?.map(|(_, record)| record))
}

/// The version of the record with this uid, without reading the record.
pub(super) fn version_of(conn: &Connection, uid: &str) -> Result<Option<u64>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT version FROM records WHERE uid = ?1")
        .map_err(sql_error)?;
    let mut rows = stmt.query([uid]).map_err(sql_error)?;
    match rows.next().map_err(sql_error)? {
        Some(row) => {
            let v: i64 = row.get(0).map_err(sql_error)?;
            u64::try_from(v)
                .map(Some)
                .map_err(|_| StoreError::Corrupt(format!("record {uid} has version {v}")))
        }
        None => Ok(None),
    }
}

pub(super) fn find(conn: &Connection, query: &Query) -> Result<Vec<String>, StoreError> {
    let (sql, args) = find_sql(query);
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |row| row.get(0))
        .map_err(sql_error)?;
    rows.map(|uid| uid.map_err(sql_error)).collect()
}

/// The statement for `query`: its criteria, ordered, offset and limit applied.
fn find_sql(query: &Query) -> (String, Vec<Value>) {
    let (mut sql, mut args) = where_sql(query, "SELECT uid");
    // LIMIT -1 means no limit in SQLite.
    let limit = query.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
    args.push(Value::Integer(limit));
    args.push(Value::Integer(offset));
    sql.push_str(&format!(
        " ORDER BY created_at, uid LIMIT ?{} OFFSET ?{}",
        args.len() - 1,
        args.len()
    ));
    (sql, args)
}

/// How many records match `query` (offset and limit ignored), counted where
/// the records are.
pub(super) fn count(conn: &Connection, query: &Query) -> Result<u64, StoreError> {
    let (sql, args) = where_sql(query, "SELECT COUNT(*)");
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let n: i64 = stmt
        .query_row(rusqlite::params_from_iter(args), |row| row.get(0))
        .map_err(sql_error)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `select` over the records matching `query`'s criteria, with its arguments
/// (values are always bound, never spliced into the text).
fn where_sql(query: &Query, select: &str) -> (String, Vec<Value>) {
    let mut sql = format!("{select} FROM records WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut filter = |column: &str, value: Value| {
        args.push(value);
        sql.push_str(&format!(" AND {column} ?{}", args.len()));
    };
    if let Some(object_type) = query.object_type {
        filter("object_type =", Value::Integer(object_type.into()));
    }
    if let Some(state) = query.state {
        filter("state =", Value::Integer(state.into()));
    }
    let mut in_list = |column: &str, negate: bool, values: &[u32]| {
        if values.is_empty() {
            return;
        }
        let mut marks = Vec::with_capacity(values.len());
        for v in values {
            args.push(Value::Integer((*v).into()));
            marks.push(format!("?{}", args.len()));
        }
        let not = if negate { "NOT " } else { "" };
        sql.push_str(&format!(" AND {column} {not}IN ({})", marks.join(", ")));
    };
    in_list("state", false, &query.state_in);
    in_list("state", true, &query.state_not_in);
    let mut filter = |column: &str, value: Value| {
        args.push(value);
        sql.push_str(&format!(" AND {column} ?{}", args.len()));
    };
    if let Some(group) = &query.group {
        // With index entries, the record_index lookup finds the few matches:
        // `+grp` keeps SQLite from walking the whole group in creation order
        // (records_by_group_created) to check each record against them.
        let column = if query.index.is_empty() { "grp =" } else { "+grp =" };
        filter(column, Value::Text(group.clone()));
    }
    if let Some(crk_version) = query.crk_version {
        filter("crk_version =", Value::Integer(crk_version.into()));
    }
    if let Some(after) = query.created_after {
        filter("created_at >=", Value::Integer(after));
    }
    if let Some(before) = query.created_before {
        filter("created_at <=", Value::Integer(before));
    }
    for entry in &query.index {
        // `seq IN (...)` lets SQLite drive the lookup from the (name, value)
        // primary key of record_index instead of scanning records.
        args.push(Value::Text(entry.name.clone()));
        args.push(Value::Text(entry.value.clone()));
        let (name_arg, value_arg) = (args.len() - 1, args.len());
        sql.push_str(&format!(
            " AND seq IN (SELECT seq FROM record_index WHERE name = ?{name_arg} AND value = ?{value_arg})"
        ));
    }
    (sql, args)
}

pub(super) fn count_by_crk(conn: &Connection) -> Result<BTreeMap<u32, u64>, StoreError> {
    count_grouped(
        conn,
        "SELECT crk_version, COUNT(*) FROM records GROUP BY crk_version",
        "crk_version",
    )
}

pub(super) fn count_by_state(conn: &Connection) -> Result<BTreeMap<u32, u64>, StoreError> {
    count_grouped(
        conn,
        "SELECT state, COUNT(*) FROM records GROUP BY state",
        "state",
    )
}

/// Runs a `SELECT column, COUNT(*) … GROUP BY column` over a u32 column.
fn count_grouped(conn: &Connection, sql: &str, column: &str) -> Result<BTreeMap<u32, u64>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut counts = BTreeMap::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let value: i64 = row.get(0).map_err(sql_error)?;
        let count: i64 = row.get(1).map_err(sql_error)?;
        let value =
            u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} out of range")))?;
        counts.insert(value, u64::try_from(count).unwrap_or(0));
    }
    Ok(counts)
}

pub(super) fn list_page(
    conn: &Connection,
    after_uid: Option<&str>,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Two statements rather than `?1 IS NULL OR uid > ?1`, which would keep
    // SQLite from seeking the uid index.
    let (sql, after) = match after_uid {
        Some(uid) => (
            format!("SELECT {RECORD_COLUMNS} FROM records WHERE uid > ?2 ORDER BY uid LIMIT ?1"),
            Some(uid),
        ),
        None => (
            format!("SELECT {RECORD_COLUMNS} FROM records ORDER BY uid LIMIT ?1"),
            None,
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let mut rows = match after {
        Some(uid) => stmt.query(rusqlite::params![limit, uid]),
        None => stmt.query([limit]),
    }
    .map_err(sql_error)?;
    let mut page = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let (seq, mut record) = record_from_row(row)?;
        record.index = load_index(conn, seq)?;
        page.push(record);
    }
    Ok(page)
}

pub(super) fn health(conn: &Connection) -> Result<(), StoreError> {
    let found = schema::read_version(conn)?;
    if (schema::READABLE_SINCE..=schema::current_version()).contains(&found) {
        Ok(())
    } else {
        Err(StoreError::Other(format!("unexpected schema version {found}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IndexEntry;

    /// The query plan SQLite picks for `query` on a freshly migrated database.
    fn plan(query: &Query) -> String {
        let conn = Connection::open_in_memory().unwrap();
        schema::migrate(&conn).unwrap();
        let (sql, args) = find_sql(query);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let details: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(args), |row| row.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        details.join("\n")
    }

    #[test]
    fn locate_by_index_entry_does_not_scan() {
        let query = Query {
            index: vec![
                IndexEntry::new("x-Name", "web"),
                IndexEntry::new("x-Vendor", "VMware"),
            ],
            ..Query::default()
        };
        let plan = plan(&query);
        assert!(!plan.contains("SCAN records"), "{plan}");
        assert!(!plan.contains("SCAN record_index"), "{plan}");
    }

    #[test]
    fn locate_by_fixed_fields_uses_indexes() {
        for query in [
            Query {
                object_type: Some(2),
                state: Some(2),
                ..Query::default()
            },
            Query {
                group: Some("g".into()),
                ..Query::default()
            },
            Query {
                crk_version: Some(1),
                ..Query::default()
            },
            Query {
                created_after: Some(10),
                created_before: Some(20),
                ..Query::default()
            },
        ] {
            let plan = plan(&query);
            assert!(!plan.contains("SCAN records"), "{query:?}: {plan}");
        }
    }

    #[test]
    fn locate_by_index_entry_within_a_group_does_not_walk_the_group() {
        let query = Query {
            index: vec![IndexEntry::new("x-Name", "vm-7")],
            group: Some("default".into()),
            state_not_in: vec![4, 5],
            limit: Some(100),
            ..Query::default()
        };
        let plan = plan(&query);
        assert!(!plan.contains("records_by_group_created"), "{plan}");
        assert!(!plan.contains("SCAN records"), "{plan}");
    }

    #[test]
    fn a_walk_over_a_group_by_state_reads_in_creation_order_without_sorting() {
        // Locate State=Active walks its group in pages: with a million keys in
        // one group, sorting them all for each page cost 450 ms.
        let query = Query {
            state_in: vec![1, 2],
            state_not_in: vec![4, 5],
            group: Some("default".into()),
            limit: Some(512),
            ..Query::default()
        };
        let plan = plan(&query);
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        assert!(plan.contains("records_by_group_created"), "{plan}");
    }

    /// A Get's statements are prepared once per connection, not at every run
    /// (an `ORDER BY` in the index read made SQLite prepare it again each time).
    #[tokio::test(flavor = "current_thread")]
    async fn point_reads_are_not_prepared_again_at_each_run() {
        use crate::store::{SqliteOptions, SqliteStore, Store, conformance::sample_record};
        use rusqlite::StatementStatus;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        for n in 0..4u32 {
            store
                .create(&sample_record(&format!("uid-{n}"), n))
                .await
                .unwrap();
        }
        drop(store);
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        for _ in 0..3 {
            for n in 0..4u32 {
                let record = get(&conn, &format!("uid-{n}")).unwrap().unwrap();
                assert!(!record.index.is_empty(), "the sample record has index entries");
                assert!(
                    record
                        .index
                        .windows(2)
                        .all(|w| (&w[0].name, &w[0].value) <= (&w[1].name, &w[1].value))
                );
                assert_eq!(
                    version_of(&conn, &format!("uid-{n}")).unwrap(),
                    Some(record.version)
                );
            }
        }
        for sql in [
            format!("SELECT {RECORD_COLUMNS} FROM records WHERE uid = ?1"),
            "SELECT name, value FROM record_index WHERE seq = ?1".to_owned(),
            "SELECT version FROM records WHERE uid = ?1".to_owned(),
        ] {
            let stmt = conn.prepare_cached(&sql).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
            assert_eq!(
                stmt.get_status(StatementStatus::Run),
                12,
                "{sql} ran once per read"
            );
        }
    }

    /// State lists, counts and pages agree with the reference matcher (the
    /// memory store) on the same records.
    #[tokio::test]
    async fn state_lists_counts_and_pages_agree_with_the_reference() {
        use crate::store::{MemoryStore, SqliteOptions, SqliteStore, Store, conformance::sample_record};
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path().join("s.db"), SqliteOptions::default()).unwrap();
        let memory = MemoryStore::new();
        for n in 0..12u32 {
            let mut record = sample_record(&format!("uid-{n:02}"), n);
            record.state = 1 + n % 6;
            record.group = if n % 4 == 0 { "b".into() } else { "a".into() };
            sqlite.create(&record).await.unwrap();
            memory.create(&record).await.unwrap();
        }
        let queries = [
            Query::default(),
            Query {
                state_in: vec![1, 2],
                ..Query::default()
            },
            Query {
                state_not_in: vec![4, 6],
                group: Some("a".into()),
                ..Query::default()
            },
            Query {
                state_in: vec![1, 2, 3],
                state_not_in: vec![2],
                index: vec![IndexEntry::new("x-Vendor", "VMware, Inc.")],
                offset: 1,
                limit: Some(2),
                ..Query::default()
            },
        ];
        for query in &queries {
            assert_eq!(
                sqlite.find(query).await.unwrap(),
                memory.find(query).await.unwrap(),
                "{query:?}"
            );
            let count = sqlite.count(query).await.unwrap();
            assert_eq!(count, memory.count(query).await.unwrap(), "{query:?}");
            let mut all = query.clone();
            all.offset = 0;
            all.limit = None;
            assert_eq!(count, sqlite.find(&all).await.unwrap().len() as u64, "{query:?}");
        }
    }
}
