//! The store contract as executable checks, run against every backend.
//!
//! `run_all(factory)` runs each check on a fresh, empty store from `factory`
//! and reports every failure (not just the first). It is ordinary library code
//! (errors, not panics) so that a backend's own tests — including tests
//! against a real Vault or Key Protect instance — can call it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{DEFAULT_PAGE_SIZE, Export, IndexEntry, Query, Record, Store, StoreError};

/// One check that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceFailure {
    pub check: &'static str,
    pub detail: String,
}

impl fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

type CheckResult = Result<(), String>;
type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;
type Check = fn(Arc<dyn Store>) -> CheckFuture;

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("create_then_get", |s| Box::pin(create_then_get(s))),
    ("metadata_only_record", |s| Box::pin(metadata_only_record(s))),
    ("idempotent_create", |s| Box::pin(idempotent_create(s))),
    ("conflicting_create", |s| Box::pin(conflicting_create(s))),
    ("update_compare_and_swap", |s| {
        Box::pin(update_compare_and_swap(s))
    }),
    ("concurrent_cas_one_winner", |s| {
        Box::pin(concurrent_cas_one_winner(s))
    }),
    ("concurrent_creates", |s| Box::pin(concurrent_creates(s))),
    ("find_by_fields", |s| Box::pin(find_by_fields(s))),
    ("find_by_index_entries", |s| Box::pin(find_by_index_entries(s))),
    ("find_order_offset_limit", |s| {
        Box::pin(find_order_offset_limit(s))
    }),
    ("find_created_range", |s| Box::pin(find_created_range(s))),
    ("count_by_crk", |s| Box::pin(count_by_crk(s))),
    ("count_by_state", |s| Box::pin(count_by_state(s))),
    ("list_page_pagination", |s| Box::pin(list_page_pagination(s))),
    ("debug_redaction", |s| Box::pin(debug_redaction(s))),
    ("health", |s| Box::pin(health(s))),
    ("export_every_field_in_pages", |s| {
        Box::pin(export_every_field_in_pages(s))
    }),
    ("export_is_a_snapshot", |s| Box::pin(export_is_a_snapshot(s))),
    ("import_keeps_every_field", |s| {
        Box::pin(import_keeps_every_field(s))
    }),
    ("import_all_or_nothing", |s| Box::pin(import_all_or_nothing(s))),
    ("import_replace", |s| Box::pin(import_replace(s))),
    ("delete_is_idempotent", |s| Box::pin(delete_is_idempotent(s))),
    ("delete_checks_the_version", |s| {
        Box::pin(delete_checks_the_version(s))
    }),
    ("capabilities_hold", |s| Box::pin(capabilities_hold(s))),
    ("list_uids_pages", |s| Box::pin(list_uids_pages(s))),
];

/// Runs every check, each on a fresh store, and returns all failures.
pub async fn run_all<F, Fut>(factory: F) -> Result<(), Vec<ConformanceFailure>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Arc<dyn Store>, StoreError>>,
{
    let mut failures = Vec::new();
    for (check, run) in CHECKS {
        let outcome = match factory().await {
            Ok(store) => run(store).await,
            Err(err) => Err(format!("factory failed: {err}")),
        };
        if let Err(detail) = outcome {
            failures.push(ConformanceFailure { check, detail });
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// Labels a store error with the step that produced it.
fn step<T>(what: &str, result: Result<T, StoreError>) -> Result<T, String> {
    result.map_err(|err| format!("{what}: unexpected error: {err}"))
}

/// A record with every field set, distinct per `n`.
pub fn sample_record(uid: &str, n: u32) -> Record {
    Record {
        uid: uid.to_owned(),
        object_type: 2,
        state: 1,
        group: String::new(),
        crk_version: 1,
        sealed: vec![0xA5; 60],
        attributes: n.to_be_bytes().to_vec(),
        index: vec![
            IndexEntry::new("x-Vendor", "VMware, Inc."),
            IndexEntry::new("Cryptographic Algorithm", "AES"),
            IndexEntry::new("x-Name", format!("vm-{n}")),
        ],
        version: 1,
        created_at: 1_700_000_000 + i64::from(n),
        updated_at: 1_700_000_000 + i64::from(n),
    }
}

async fn create_all(store: &dyn Store, records: &[Record]) -> CheckResult {
    for record in records {
        step(&format!("create {}", record.uid), store.create(record).await)?;
    }
    Ok(())
}

async fn find(store: &dyn Store, query: &Query) -> Result<Vec<String>, String> {
    step(&format!("find {query:?}"), store.find(query).await)
}

fn uids(list: &[&str]) -> Vec<String> {
    list.iter().map(|uid| (*uid).to_owned()).collect()
}

/// Compares content the way the contract promises to return it.
fn expect_stored(got: &Record, sent: &Record, version: u64) -> CheckResult {
    let mut want = sent.clone();
    want.normalize_index();
    want.version = version;
    ensure!(*got == want, "stored record differs: got {got:?}, want {want:?}");
    ensure!(
        got.sealed == want.sealed && got.attributes == want.attributes,
        "opaque bytes differ"
    );
    Ok(())
}

async fn create_then_get(store: Arc<dyn Store>) -> CheckResult {
    let mut record = sample_record("uid-a", 1);
    record.version = 77; // ignored: the store owns versions
    record.index.push(IndexEntry::new("x-Vendor", "VMware, Inc.")); // duplicate collapses
    step("create", store.create(&record).await)?;
    let got = step("get", store.get("uid-a").await)?.ok_or("created record not found")?;
    expect_stored(&got, &record, 1)?;
    ensure!(
        got.index.windows(2).all(|w| w[0] < w[1]),
        "index not sorted/deduplicated: {:?}",
        got.index
    );
    ensure!(
        step("get missing", store.get("uid-missing").await)?.is_none(),
        "get of unknown uid returned a record"
    );
    Ok(())
}

async fn metadata_only_record(store: Arc<dyn Store>) -> CheckResult {
    let mut record = sample_record("uid-meta", 2);
    record.sealed.clear();
    record.attributes.clear();
    record.index.clear();
    step("create", store.create(&record).await)?;
    let got = step("get", store.get("uid-meta").await)?.ok_or("created record not found")?;
    expect_stored(&got, &record, 1)
}

async fn idempotent_create(store: Arc<dyn Store>) -> CheckResult {
    let record = sample_record("uid-a", 1);
    step("create", store.create(&record).await)?;
    let mut retry = record.clone();
    retry.index.reverse(); // order of index entries is not content
    step("retried create", store.create(&retry).await)?;
    let got = step("get", store.get("uid-a").await)?.ok_or("record not found")?;
    expect_stored(&got, &record, 1)
}

async fn conflicting_create(store: Arc<dyn Store>) -> CheckResult {
    let record = sample_record("uid-a", 1);
    step("create", store.create(&record).await)?;
    let mut other = record.clone();
    other.sealed[0] ^= 1;
    let result = store.create(&other).await;
    ensure!(
        result == Err(StoreError::Conflict(crate::store::Conflict::Exists)),
        "create with other sealed bytes: {result:?}"
    );
    let mut other = record.clone();
    other.index.push(IndexEntry::new("x-Extra", "1"));
    let result = store.create(&other).await;
    ensure!(
        result == Err(StoreError::Conflict(crate::store::Conflict::Exists)),
        "create with other index: {result:?}"
    );
    let got = step("get", store.get("uid-a").await)?.ok_or("record not found")?;
    expect_stored(&got, &record, 1)
}

async fn update_compare_and_swap(store: Arc<dyn Store>) -> CheckResult {
    let record = sample_record("uid-a", 1);
    step("create", store.create(&record).await)?;
    let mut changed = record.clone();
    changed.state = 2;
    changed.crk_version = 2;
    changed.sealed = vec![0x5A; 61];
    changed.index = vec![IndexEntry::new("x-Name", "renamed")];
    changed.created_at = 1; // ignored: creation time is kept
    changed.updated_at = record.updated_at + 100;
    let version = step("update", store.update(&changed, 1).await)?;
    ensure!(version == 2, "update returned version {version}, want 2");
    let got = step("get", store.get("uid-a").await)?.ok_or("record not found")?;
    let mut want = changed.clone();
    want.created_at = record.created_at;
    expect_stored(&got, &want, 2)?;

    let stale = store.update(&changed, 1).await;
    ensure!(
        stale == Err(StoreError::Conflict(crate::store::Conflict::Version)),
        "stale update: {stale:?}"
    );
    let ahead = store.update(&changed, 3).await;
    ensure!(
        ahead == Err(StoreError::Conflict(crate::store::Conflict::Version)),
        "update with future version: {ahead:?}"
    );
    let missing = store.update(&sample_record("uid-missing", 9), 1).await;
    ensure!(
        missing == Err(StoreError::NotFound),
        "update of unknown uid: {missing:?}"
    );

    // The old index entries are gone, the new ones searchable.
    let by_old = find(
        &*store,
        &Query {
            index: vec![IndexEntry::new("x-Name", "vm-1")],
            ..Query::default()
        },
    )
    .await?;
    ensure!(by_old.is_empty(), "old index entry still matches: {by_old:?}");
    let by_new = find(
        &*store,
        &Query {
            index: vec![IndexEntry::new("x-Name", "renamed")],
            ..Query::default()
        },
    )
    .await?;
    ensure!(by_new == uids(&["uid-a"]), "new index entry: {by_new:?}");
    let version = step("second update", store.update(&changed, 2).await)?;
    ensure!(version == 3, "second update returned version {version}, want 3");
    Ok(())
}

async fn concurrent_cas_one_winner(store: Arc<dyn Store>) -> CheckResult {
    const CONTENDERS: u32 = 16;
    step("create", store.create(&sample_record("uid-a", 1)).await)?;
    let mut tasks = Vec::new();
    for n in 0..CONTENDERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut mine = sample_record("uid-a", 1);
            mine.state = 100 + n;
            store.update(&mine, 1).await.map(|version| (n, version))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.map_err(|err| format!("task failed: {err}"))? {
            Ok(won) => winners.push(won),
            Err(StoreError::Conflict(crate::store::Conflict::Version)) => {}
            Err(err) => return Err(format!("contender got {err}")),
        }
    }
    ensure!(winners.len() == 1, "{} winners: {winners:?}", winners.len());
    let (winner, version) = winners[0];
    ensure!(version == 2, "winner got version {version}");
    let got = step("get", store.get("uid-a").await)?.ok_or("record not found")?;
    ensure!(
        got.state == 100 + winner && got.version == 2,
        "stored {got:?} is not the winner's ({winner})"
    );
    Ok(())
}

async fn concurrent_creates(store: Arc<dyn Store>) -> CheckResult {
    const WRITERS: u32 = 200;
    let mut tasks = Vec::new();
    for n in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.create(&sample_record(&format!("uid-{n:04}"), n)).await
        }));
    }
    for task in tasks {
        let created = task.await.map_err(|err| format!("task failed: {err}"))?;
        step("concurrent create", created)?;
    }
    for n in 0..WRITERS {
        let want = sample_record(&format!("uid-{n:04}"), n);
        let got = step("get", store.get(&want.uid).await)?.ok_or_else(|| format!("{} lost", want.uid))?;
        expect_stored(&got, &want, 1)?;
    }
    Ok(())
}

async fn find_by_fields(store: Arc<dyn Store>) -> CheckResult {
    let mut records = Vec::new();
    for (n, (object_type, state, group, crk)) in
        [(2, 1, "", 1), (2, 2, "g1", 1), (7, 2, "g1", 2), (7, 3, "g2", 2)]
            .into_iter()
            .enumerate()
    {
        let n = u32::try_from(n).unwrap_or(0);
        let mut record = sample_record(&format!("uid-{n}"), n);
        (record.object_type, record.state, record.group, record.crk_version) =
            (object_type, state, group.into(), crk);
        records.push(record);
    }
    create_all(&*store, &records).await?;
    let cases: Vec<(Query, Vec<String>)> = vec![
        (Query::default(), uids(&["uid-0", "uid-1", "uid-2", "uid-3"])),
        (
            Query {
                object_type: Some(7),
                ..Query::default()
            },
            uids(&["uid-2", "uid-3"]),
        ),
        (
            Query {
                state: Some(2),
                ..Query::default()
            },
            uids(&["uid-1", "uid-2"]),
        ),
        (
            Query {
                group: Some("g1".into()),
                ..Query::default()
            },
            uids(&["uid-1", "uid-2"]),
        ),
        (
            Query {
                group: Some(String::new()),
                ..Query::default()
            },
            uids(&["uid-0"]),
        ),
        (
            Query {
                crk_version: Some(2),
                ..Query::default()
            },
            uids(&["uid-2", "uid-3"]),
        ),
        (
            Query {
                object_type: Some(7),
                state: Some(2),
                ..Query::default()
            },
            uids(&["uid-2"]),
        ),
        (
            Query {
                object_type: Some(2),
                crk_version: Some(2),
                ..Query::default()
            },
            vec![],
        ),
        (
            Query {
                object_type: Some(99),
                ..Query::default()
            },
            vec![],
        ),
    ];
    for (query, want) in cases {
        let got = find(&*store, &query).await?;
        ensure!(got == want, "{query:?}: got {got:?}, want {want:?}");
    }
    Ok(())
}

async fn find_by_index_entries(store: Arc<dyn Store>) -> CheckResult {
    let entry = IndexEntry::new;
    let mut a = sample_record("uid-a", 1);
    a.index = vec![
        entry("x-Product", "VMware vSphere"),
        entry("x-Component", "Virtual Machine"),
        entry("x-Name", "web"),
    ];
    let mut b = sample_record("uid-b", 2);
    b.index = vec![
        entry("x-Product", "VMware vSphere"),
        entry("x-Component", "Host"),
        entry("x-Name", "esx1"),
    ];
    let mut c = sample_record("uid-c", 3);
    c.index = vec![entry("x-Name", "VMware vSphere")]; // same value under another name
    create_all(&*store, &[a, b, c]).await?;
    let cases: Vec<(Vec<IndexEntry>, Vec<String>)> = vec![
        (
            vec![entry("x-Product", "VMware vSphere")],
            uids(&["uid-a", "uid-b"]),
        ),
        (
            vec![entry("x-Product", "VMware vSphere"), entry("x-Component", "Host")],
            uids(&["uid-b"]),
        ),
        (vec![entry("x-Component", "Host"), entry("x-Name", "web")], vec![]),
        (vec![entry("x-Name", "VMware vSphere")], uids(&["uid-c"])),
        (
            vec![entry("x-Name", "web"), entry("x-Name", "web")],
            uids(&["uid-a"]),
        ),
        (vec![entry("x-name", "web")], vec![]), // names are case-sensitive
        (vec![entry("x-Nothing", "")], vec![]),
    ];
    for (index, want) in cases {
        let query = Query {
            index,
            ..Query::default()
        };
        let got = find(&*store, &query).await?;
        ensure!(got == want, "{query:?}: got {got:?}, want {want:?}");
    }
    let query = Query {
        object_type: Some(3),
        index: vec![entry("x-Name", "web")],
        ..Query::default()
    };
    let got = find(&*store, &query).await?;
    ensure!(got.is_empty(), "index match must also respect fields: {got:?}");
    Ok(())
}

async fn find_order_offset_limit(store: Arc<dyn Store>) -> CheckResult {
    // Created out of order; two share a timestamp (uid breaks the tie).
    let stamps = [
        ("uid-d", 30),
        ("uid-a", 20),
        ("uid-c", 10),
        ("uid-b", 20),
        ("uid-e", 40),
    ];
    let records: Vec<Record> = stamps
        .iter()
        .map(|(uid, at)| Record {
            created_at: *at,
            ..sample_record(uid, 0)
        })
        .collect();
    create_all(&*store, &records).await?;
    let all = uids(&["uid-c", "uid-a", "uid-b", "uid-d", "uid-e"]);
    let page = |offset, limit| Query {
        offset,
        limit,
        ..Query::default()
    };
    let cases: Vec<(Query, &[String])> = vec![
        (page(0, None), &all[..]),
        (page(0, Some(2)), &all[..2]),
        (page(2, Some(2)), &all[2..4]),
        (page(4, Some(2)), &all[4..]),
        (page(3, None), &all[3..]),
        (page(5, None), &[]),
        (page(99, Some(1)), &[]),
        (page(0, Some(0)), &[]),
    ];
    for (query, want) in cases {
        let got = find(&*store, &query).await?;
        ensure!(got == want, "{query:?}: got {got:?}, want {want:?}");
    }
    Ok(())
}

async fn find_created_range(store: Arc<dyn Store>) -> CheckResult {
    let records: Vec<Record> = (1..=5)
        .map(|n| Record {
            created_at: i64::from(n) * 100,
            ..sample_record(&format!("uid-{n}"), n)
        })
        .collect();
    create_all(&*store, &records).await?;
    let range = |after, before| Query {
        created_after: after,
        created_before: before,
        ..Query::default()
    };
    let cases = vec![
        (
            range(Some(200), None),
            uids(&["uid-2", "uid-3", "uid-4", "uid-5"]),
        ),
        (range(None, Some(200)), uids(&["uid-1", "uid-2"])),
        (range(Some(150), Some(400)), uids(&["uid-2", "uid-3", "uid-4"])),
        (range(Some(300), Some(300)), uids(&["uid-3"])),
        (range(Some(401), Some(499)), vec![]),
        (range(Some(500), Some(100)), vec![]),
    ];
    for (query, want) in cases {
        let got = find(&*store, &query).await?;
        ensure!(
            got == want,
            "{query:?} (bounds are inclusive): got {got:?}, want {want:?}"
        );
    }
    Ok(())
}

async fn count_by_crk(store: Arc<dyn Store>) -> CheckResult {
    let empty = step("count on empty store", store.count_by_crk().await)?;
    ensure!(empty.is_empty(), "empty store counts {empty:?}");
    let records: Vec<Record> = (0..6u32)
        .map(|n| Record {
            crk_version: if n < 4 { 1 } else { 3 },
            ..sample_record(&format!("uid-{n}"), n)
        })
        .collect();
    create_all(&*store, &records).await?;
    // Re-sealing one record moves it to the new CRK version.
    let mut resealed = records[0].clone();
    resealed.crk_version = 3;
    step("update", store.update(&resealed, 1).await)?;
    let got = step("count", store.count_by_crk().await)?;
    let want = BTreeMap::from([(1, 3), (3, 3)]);
    ensure!(got == want, "got {got:?}, want {want:?}");
    Ok(())
}

async fn count_by_state(store: Arc<dyn Store>) -> CheckResult {
    let empty = step("count on empty store", store.count_by_state().await)?;
    ensure!(empty.is_empty(), "empty store counts {empty:?}");
    // Enough records for more than one page of a backend that counts by walking.
    let records: Vec<Record> = (0..(DEFAULT_PAGE_SIZE as u32 + 3))
        .map(|n| Record {
            state: if n % 3 == 0 { 2 } else { 1 },
            ..sample_record(&format!("uid-{n:05}"), n)
        })
        .collect();
    create_all(&*store, &records).await?;
    let ones = records.iter().filter(|r| r.state == 1).count() as u64;
    let twos = records.len() as u64 - ones;
    // A state change moves one record from one count to the other.
    let mut changed = records[1].clone();
    changed.state = 2;
    step("update", store.update(&changed, 1).await)?;
    let got = step("count", store.count_by_state().await)?;
    let want = BTreeMap::from([(1, ones - 1), (2, twos + 1)]);
    ensure!(got == want, "got {got:?}, want {want:?}");
    Ok(())
}

async fn list_page_pagination(store: Arc<dyn Store>) -> CheckResult {
    let empty = step("list empty store", store.list_page(None, 10).await)?;
    ensure!(empty.is_empty(), "empty store listed {} records", empty.len());
    // Creation order differs from uid order: pages follow uid order.
    let records: Vec<Record> = (0..25u32)
        .rev()
        .map(|n| sample_record(&format!("uid-{n:02}"), n))
        .collect();
    create_all(&*store, &records).await?;
    let mut seen: Vec<Record> = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = step("list_page", store.list_page(after.as_deref(), 10).await)?;
        ensure!(sizes.len() < 10, "pagination does not end");
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.uid.clone());
        seen.extend(page);
    }
    ensure!(
        sizes == [10, 10, 5, 0],
        "page sizes {sizes:?}, want [10, 10, 5, 0]"
    );
    let mut want = records.clone();
    want.sort_by(|a, b| a.uid.cmp(&b.uid));
    ensure!(
        seen.len() == want.len(),
        "listed {} of {} records",
        seen.len(),
        want.len()
    );
    for (got, want) in seen.iter().zip(&want) {
        expect_stored(got, want, 1)?;
    }
    let tail = step(
        "list after a uid that is not stored",
        store.list_page(Some("uid-22x"), 10).await,
    )?;
    let tail: Vec<&str> = tail.iter().map(|r| r.uid.as_str()).collect();
    ensure!(tail == ["uid-23", "uid-24"], "list after uid-22x: {tail:?}");
    let none = step("list with limit 0", store.list_page(None, 0).await)?;
    ensure!(none.is_empty(), "limit 0 listed {} records", none.len());
    Ok(())
}

async fn debug_redaction(store: Arc<dyn Store>) -> CheckResult {
    let mut record = sample_record("uid-a", 1);
    record.sealed = vec![0xC3, 0x7E, 0x91, 0x2B, 0xC3, 0x7E, 0x91, 0x2B];
    step("create", store.create(&record).await)?;
    let got = step("get", store.get("uid-a").await)?.ok_or("record not found")?;
    for shown in [format!("{got:?}"), format!("{got:#?}"), format!("{record:?}")] {
        for leak in ["195, 126", "c37e912b", "C37E912B", "0xc3", "[195"] {
            ensure!(
                !shown.contains(leak),
                "Debug shows sealed bytes ({leak}): {shown}"
            );
        }
        ensure!(
            shown.contains("sealed_len: 8"),
            "Debug should show the sealed length: {shown}"
        );
    }
    Ok(())
}

async fn health(store: Arc<dyn Store>) -> CheckResult {
    step("health", store.health().await)?;
    step("create", store.create(&sample_record("uid-a", 1)).await)?;
    step("health after a write", store.health().await)
}

/// Every record of an export, page by page, checking page sizes.
async fn drain(mut export: Export, page_size: usize) -> Result<Vec<Record>, String> {
    let mut all = Vec::new();
    while let Some(page) = step("next export page", export.next_page().await)? {
        ensure!(!page.is_empty(), "the export gave an empty page");
        ensure!(
            page.len() <= page_size,
            "a page of {} records, over the page size {page_size}",
            page.len()
        );
        all.extend(page);
    }
    Ok(all)
}

/// Same content and same record version.
fn same_record(a: &Record, b: &Record) -> bool {
    a.same_content(b) && a.version == b.version
}

async fn export_every_field_in_pages(store: Arc<dyn Store>) -> CheckResult {
    let records: Vec<Record> = (0..5)
        .map(|n| sample_record(&format!("uid-{}", 4 - n), n))
        .collect();
    create_all(store.as_ref(), &records).await?;
    let mut changed = step("get", store.get("uid-2").await)?.ok_or("uid-2 not found")?;
    changed.state = 3;
    changed.updated_at += 10;
    step("update", store.update(&changed, 1).await)?;
    let exported = drain(step("export", store.export(2).await)?, 2).await?;
    let uids: Vec<&str> = exported.iter().map(|r| r.uid.as_str()).collect();
    ensure!(
        uids == ["uid-0", "uid-1", "uid-2", "uid-3", "uid-4"],
        "export order or content: {uids:?}"
    );
    for record in &exported {
        let stored = step("get", store.get(&record.uid).await)?.ok_or("record vanished")?;
        ensure!(
            same_record(record, &stored),
            "exported {record:?} differs from stored {stored:?}"
        );
    }
    ensure!(exported[2].version == 2, "the export lost the record version");
    Ok(())
}

async fn export_is_a_snapshot(store: Arc<dyn Store>) -> CheckResult {
    let records: Vec<Record> = (0..6).map(|n| sample_record(&format!("uid-{n}"), n)).collect();
    create_all(store.as_ref(), &records).await?;
    let mut export = step("export", store.export(1).await)?;
    let first = step("first page", export.next_page().await)?.ok_or("empty export")?;
    // Writes after the export began: neither may show in it.
    step("create after", store.create(&sample_record("uid-9", 9)).await)?;
    let mut last = records[5].clone();
    last.state = 4;
    step("update after", store.update(&last, 1).await)?;
    let mut all = first;
    all.extend(drain(export, 1).await?);
    ensure!(
        all.len() == 6,
        "the export holds {} records, not the 6 it began with",
        all.len()
    );
    ensure!(
        all.iter().all(|r| r.uid != "uid-9"),
        "a record created after the export began is in it"
    );
    ensure!(
        all[5].state == 1 && all[5].version == 1,
        "an update after the export began is in it"
    );
    Ok(())
}

/// Records as a backup holds them: versions and timestamps of their own.
fn imported(n: u32) -> Record {
    let mut record = sample_record(&format!("imp-{n}"), n);
    record.version = 3 + u64::from(n);
    record.created_at = 1_600_000_000 + i64::from(n);
    record.updated_at = 1_650_000_000 + i64::from(n);
    record.index.reverse();
    record
}

async fn import_keeps_every_field(store: Arc<dyn Store>) -> CheckResult {
    let records: Vec<Record> = (0..5).map(imported).collect();
    let count = step(
        "import",
        store
            .import(Export::from_records(records.clone(), 2), false)
            .await,
    )?;
    ensure!(count == 5, "import reported {count} records, not 5");
    for record in &records {
        let got = step("get", store.get(&record.uid).await)?.ok_or("imported record not found")?;
        ensure!(same_record(&got, record), "imported {record:?}, stored {got:?}");
    }
    // An imported record is an ordinary one afterwards: compare-and-swap on its version.
    let mut next = records[0].clone();
    next.state = 2;
    let v = step("update imported", store.update(&next, records[0].version).await)?;
    ensure!(v == records[0].version + 1, "update gave version {v}");
    let hits = step("find imported", store.find(&Query::default()).await)?;
    ensure!(hits.len() == 5, "find sees {} imported records", hits.len());
    Ok(())
}

async fn import_all_or_nothing(store: Arc<dyn Store>) -> CheckResult {
    step("create", store.create(&sample_record("imp-2", 2)).await)?;
    let clash: Vec<Record> = (0..4).map(imported).collect();
    let result = store.import(Export::from_records(clash, 1), false).await;
    ensure!(
        matches!(result, Err(StoreError::Conflict(crate::store::Conflict::Exists))),
        "importing over an existing uid gave {result:?}"
    );
    let mut bad: Vec<Record> = (5..8).map(imported).collect();
    bad[2].version = 0;
    let result = store.import(Export::from_records(bad, 1), false).await;
    ensure!(result.is_err(), "a record version 0 was imported");
    for n in [0, 1, 3, 5, 6, 7] {
        let uid = format!("imp-{n}");
        ensure!(
            step("get", store.get(&uid).await)?.is_none(),
            "a failed import left {uid} behind"
        );
    }
    let kept = step("get", store.get("imp-2").await)?.ok_or("a failed import removed a record")?;
    ensure!(kept.version == 1, "a failed import changed a record");
    Ok(())
}

async fn import_replace(store: Arc<dyn Store>) -> CheckResult {
    create_all(
        store.as_ref(),
        &[sample_record("old-a", 1), sample_record("imp-1", 7)],
    )
    .await?;
    let records: Vec<Record> = (0..3).map(imported).collect();
    let count = step(
        "import",
        store.import(Export::from_records(records.clone(), 2), true).await,
    )?;
    ensure!(count == 3, "import reported {count} records, not 3");
    ensure!(
        step("get", store.get("old-a").await)?.is_none(),
        "replace kept a record the import did not hold"
    );
    let replaced = step("get", store.get("imp-1").await)?.ok_or("imp-1 missing")?;
    ensure!(
        same_record(&replaced, &records[1]),
        "replace kept the old imp-1: {replaced:?}"
    );
    let counts = step("count", store.count_by_crk().await)?;
    ensure!(counts.values().sum::<u64>() == 3, "after replace: {counts:?}");
    Ok(())
}

async fn delete_is_idempotent(store: Arc<dyn Store>) -> CheckResult {
    create_all(&*store, &[sample_record("uid-a", 1), sample_record("uid-b", 2)]).await?;
    let removed = step("delete", store.delete("uid-a", None).await)?;
    ensure!(removed, "delete of an existing record answered false");
    ensure!(
        step("get", store.get("uid-a").await)?.is_none(),
        "the deleted record is still there"
    );
    let again = step("second delete", store.delete("uid-a", None).await)?;
    ensure!(!again, "a retried delete answered true");
    let absent = step("delete absent", store.delete("uid-never", Some(1)).await)?;
    ensure!(!absent, "delete of an unknown uid answered true");
    let left = find(&*store, &Query::default()).await?;
    ensure!(left == uids(&["uid-b"]), "other records touched: {left:?}");
    let listed = step("list_page", store.list_page(None, 10).await)?;
    ensure!(
        listed.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>() == ["uid-b"],
        "list_page after delete: {listed:?}"
    );
    // The uid is free again: a create with other content succeeds.
    step(
        "create after delete",
        store.create(&sample_record("uid-a", 7)).await,
    )?;
    let got = step("get", store.get("uid-a").await)?.ok_or("recreated record not found")?;
    ensure!(got.version == 1, "recreated record has version {}", got.version);
    Ok(())
}

async fn delete_checks_the_version(store: Arc<dyn Store>) -> CheckResult {
    let record = sample_record("uid-a", 1);
    step("create", store.create(&record).await)?;
    step("update", store.update(&record, 1).await)?;
    let stale = store.delete("uid-a", Some(1)).await;
    ensure!(
        stale == Err(StoreError::Conflict(crate::store::Conflict::Version)),
        "delete with a stale version: {stale:?}"
    );
    ensure!(
        step("get", store.get("uid-a").await)?.is_some(),
        "a refused delete removed the record"
    );
    let removed = step("delete at version 2", store.delete("uid-a", Some(2)).await)?;
    ensure!(removed, "delete at the current version answered false");
    Ok(())
}

async fn capabilities_hold(store: Arc<dyn Store>) -> CheckResult {
    let caps = store.capabilities();
    ensure!(
        caps.compare_and_swap,
        "every backend must offer compare-and-swap on update (the contract); capabilities: {caps:?}"
    );
    if let Some(max) = caps.max_record_bytes {
        let mut big = sample_record("uid-big", 1);
        big.attributes = vec![7; max + 1];
        let refused = store.create(&big).await;
        ensure!(
            matches!(refused, Err(StoreError::TooLarge(_))),
            "a record over max_record_bytes ({max}): {refused:?}"
        );
    }
    Ok(())
}

async fn list_uids_pages(store: Arc<dyn Store>) -> CheckResult {
    let records: Vec<Record> = (0..7).map(|n| sample_record(&format!("uid-{n}"), n)).collect();
    create_all(&*store, &records).await?;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = step("list_uids", store.list_uids(after.as_deref(), 3).await)?;
        ensure!(page.len() <= 3, "a page of {} uids with limit 3", page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page);
    }
    let want: Vec<String> = (0..7).map(|n| format!("uid-{n}")).collect();
    ensure!(seen == want, "listed {seen:?}, want {want:?}");
    Ok(())
}
