//! OpenBao / HashiCorp Vault KV version 2 as a [`Store`]: the first remote
//! backend of issue 9 (a KMS cluster whose durable store is the customer's
//! key manager).
//!
//! - **Layout**: one KV secret per record at `<mount>/data/<prefix>/<uid>`,
//!   its data a JSON object with the plain metadata fields and base64 of the
//!   sealed blob and the attributes (see [`layout`]).
//! - **Versions**: the record version is a field of that data; the KV version
//!   is the compare-and-swap token. A create writes with `cas=0`; an update
//!   reads the secret, checks the record version, and writes with `cas=<the KV
//!   version it read>`, so two nodes racing an update have exactly one winner.
//! - **Idempotent create**: a `cas=0` refusal reads the existing record and
//!   answers `Ok` for the same content, `AlreadyExists` otherwise.
//! - **Deadlines and retries**: every call has a deadline (`timeout`). Reads,
//!   LISTs and deletes are retried on transient faults with exponential backoff
//!   and jitter, honouring `Retry-After`; a write whose outcome is unknown is
//!   never repeated blindly: it is reconciled by a read first.
//! - **Auth**: a token from a file or an AppRole login ([`auth`]); a refused
//!   token is replaced once (file read again, or a new login) and the call
//!   retried once.
//! - **Queries**: KV has no server-side query and LIST has no paging, so
//!   `find`, `count_by_crk`, `list_page` and `export` list every key and read
//!   every record: O(store) per call, until the local index of issue 9 item 2
//!   answers them.
//! - **Not atomic**: `import` checks everything it can before its first write
//!   (duplicate uids, version 0, existing uids without `replace`); a failure
//!   part-way removes what it created (without `replace`, best effort) or
//!   leaves the records written so far (with `replace`: running it again
//!   converges). `export` reads records one by one:
//!   each is consistent, the set is not a point-in-time snapshot under
//!   concurrent writes.

mod auth;
mod http;
mod layout;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::Method;
use tokio::task::JoinSet;

use self::auth::Authenticator;
pub use self::auth::OpenBaoAuth;
use self::http::{BaoFault, Endpoint, Fault, Reply, backoff, to_store_error};
use self::layout::Read;
use super::{Capabilities, Export, Query, Record, Store, StoreError, StoreFuture};

/// Default deadline of one store call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most attempts of one idempotent exchange (the deadline bounds them too).
const MAX_ATTEMPTS: u32 = 6;
/// Records read at once by the listing calls.
const READ_CONCURRENCY: usize = 16;
/// The key `health` reads: a leading dot is never a record uid.
const HEALTH_KEY: &str = ".keyward-health";

/// Where and how to reach the store (the `[store] kind = "openbao"` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBaoConfig {
    /// `https://host:8200`, or `http://127.0.0.1:8200` for a loopback dev server.
    pub address: String,
    /// The KV v2 mount, e.g. `secret` or `kv/keyward`.
    pub mount: String,
    /// The folder under the mount that holds one secret per record.
    pub prefix: String,
    pub auth: OpenBaoAuth,
    /// PEM CA bundle that issued the server's certificate (required for https).
    pub ca_file: Option<PathBuf>,
    /// Deadline of each store call.
    pub timeout: Duration,
}

impl OpenBaoConfig {
    /// The checks that need no file and no network: address (plain http
    /// only to loopback, https only with a CA), mount, prefix, timeout.
    /// `Err((key, why))` names the `[store]` key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        http::Address::parse(&self.address, self.ca_file.is_some()).map_err(|why| ("address", why))?;
        clean_path("value", &self.mount).map_err(|e| ("mount", e))?;
        clean_path("value", &self.prefix).map_err(|e| ("prefix", e))?;
        if self.timeout.is_zero() {
            return Err(("timeout", "must be above zero".to_owned()));
        }
        if let OpenBaoAuth::AppRole { mount, .. } = &self.auth {
            clean_path("value", mount).map_err(|e| ("approle_mount", e))?;
        }
        Ok(())
    }

    /// Where the records are, for messages: `https://host:8200/v1/secret/keyward/`.
    pub fn location(&self) -> String {
        format!(
            "{}/v1/{}/{}/",
            self.address.trim_end_matches('/'),
            self.mount,
            self.prefix
        )
    }
}

/// The store. Cheap to share: clones of the inner state are what the
/// concurrent reads of the listing calls hold.
pub struct OpenBaoStore {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    auth: Authenticator,
    /// `/v1/<mount>/data/<prefix>/`
    data: String,
    /// `/v1/<mount>/metadata/<prefix>/`
    metadata: String,
    timeout: Duration,
    read_only: bool,
    /// Whole-store walks (find, counts, export) at once: until the local index
    /// answers Locate, each walk reads every record, so a batch of Locates from
    /// one client must not run N walks side by side.
    walks: tokio::sync::Semaphore,
}

impl std::fmt::Debug for OpenBaoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoStore")
            .field("endpoint", &self.inner.endpoint)
            .field("data", &self.inner.data)
            .field("read_only", &self.inner.read_only)
            .finish_non_exhaustive()
    }
}

impl OpenBaoStore {
    /// Checks the settings, reads the CA and token files, and builds the
    /// client. Does not contact the server (the first call does): it never
    /// blocks on the network.
    pub fn open(config: &OpenBaoConfig) -> Result<OpenBaoStore, StoreError> {
        Self::open_with(config, false)
    }

    /// As [`open`](Self::open), refusing every write (backup, status).
    pub fn open_read_only(config: &OpenBaoConfig) -> Result<OpenBaoStore, StoreError> {
        Self::open_with(config, true)
    }

    fn open_with(config: &OpenBaoConfig, read_only: bool) -> Result<OpenBaoStore, StoreError> {
        config
            .check()
            .map_err(|(key, why)| StoreError::Other(format!("store.{key}: {why}")))?;
        let mount = clean_path("store.mount", &config.mount).map_err(StoreError::Other)?;
        let prefix = clean_path("store.prefix", &config.prefix).map_err(StoreError::Other)?;
        let ca = crate::store::remote::read_ca_file(config.ca_file.as_deref())?;
        let endpoint = Endpoint::new(&config.address, ca.as_deref()).map_err(StoreError::Other)?;
        let auth = Authenticator::new(config.auth.clone()).map_err(to_store_error)?;
        Ok(OpenBaoStore {
            inner: Arc::new(Inner {
                endpoint,
                auth,
                data: format!("/v1/{mount}/data/{prefix}/"),
                metadata: format!("/v1/{mount}/metadata/{prefix}/"),
                timeout: config.timeout,
                read_only,
                walks: tokio::sync::Semaphore::new(crate::limits::STORE_SCAN_WALKS),
            }),
        })
    }
}

/// A mount or prefix: slash-separated segments of `[A-Za-z0-9._-]`, no `.`
/// or `..` segment; outer slashes are dropped.
fn clean_path(key: &str, text: &str) -> Result<String, String> {
    let trimmed = text.trim_matches('/');
    let ok = !trimmed.is_empty()
        && trimmed.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(format!(
            "{key} {text:?} must be path segments of letters, digits, '.', '_' and '-'"
        ))
    }
}

/// Sleeps before retry `attempt` unless that would pass the deadline.
async fn wait_to_retry(attempt: u32, fault: &Fault, deadline: Instant) -> bool {
    if attempt + 1 >= MAX_ATTEMPTS {
        return false;
    }
    let wait = backoff(attempt, fault.retry_after());
    if Instant::now().checked_add(wait).is_none_or(|at| at >= deadline) {
        return false;
    }
    tokio::time::sleep(wait).await;
    true
}

impl Inner {
    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    fn writable(&self) -> Result<(), Fault> {
        if self.read_only {
            Err(Fault::Local("the store was opened read-only".to_owned()))
        } else {
            Ok(())
        }
    }

    /// One authenticated exchange; a refused token is replaced once and the
    /// request sent once more.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Reply, Fault> {
        let (token, generation) = self.auth.current(&self.endpoint, deadline).await?;
        match self
            .endpoint
            .send(method.clone(), path, Some(&token), body.clone(), deadline)
            .await
        {
            Err(fault) if fault.is_denied() => {
                if !self
                    .auth
                    .replace_refused(generation, &self.endpoint, deadline)
                    .await?
                {
                    return Err(fault);
                }
                let (token, _) = self.auth.current(&self.endpoint, deadline).await?;
                self.endpoint
                    .send(method, path, Some(&token), body, deadline)
                    .await
            }
            other => other,
        }
    }

    /// [`call`](Self::call) retried on transient faults: for requests that
    /// may be repeated (reads, LIST, deleting all versions).
    async fn call_idempotent(&self, method: Method, path: &str, deadline: Instant) -> Result<Reply, Fault> {
        let mut attempt = 0;
        loop {
            match self.call(method.clone(), path, None, deadline).await {
                Err(fault) if fault.is_transient() && wait_to_retry(attempt, &fault, deadline).await => {
                    attempt += 1
                }
                other => return other,
            }
        }
    }

    async fn read(&self, uid: &str, deadline: Instant) -> Result<Option<Read>, Fault> {
        // A uid keyward could never have stored (a client's guess) is simply absent.
        if layout::check_uid(uid).is_err() {
            return Ok(None);
        }
        match self
            .call_idempotent(Method::GET, &format!("{}{uid}", self.data), deadline)
            .await
        {
            Ok(reply) => layout::decode_read(uid, &reply.body),
            Err(fault) if fault.is_not_found() => Ok(None),
            Err(fault) => Err(fault),
        }
    }

    /// One write with `cas`; never retried here (see create and update).
    async fn write(&self, record: &Record, cas: u64, deadline: Instant) -> Result<u64, Fault> {
        let body = layout::write_body(record, cas)?;
        let reply = self
            .call(
                Method::POST,
                &format!("{}{}", self.data, record.uid),
                Some(body),
                deadline,
            )
            .await?;
        layout::decode_write(&reply.body)
    }

    /// Every record uid under the prefix, sorted.
    async fn list(&self, deadline: Instant) -> Result<Vec<String>, Fault> {
        match self
            .call_idempotent(Method::GET, &format!("{}?list=true", self.metadata), deadline)
            .await
        {
            Ok(reply) => layout::decode_list(&reply.body),
            Err(fault) if fault.is_not_found() => Ok(Vec::new()),
            Err(fault) => Err(fault),
        }
    }

    /// The records of `uids` that exist, in that order; up to
    /// [`READ_CONCURRENCY`] reads at once, each with its own deadline.
    async fn read_many(self: &Arc<Self>, uids: &[String]) -> Result<Vec<Record>, Fault> {
        let mut records = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(READ_CONCURRENCY) {
            let mut reads = JoinSet::new();
            for (n, uid) in chunk.iter().enumerate() {
                let inner = Arc::clone(self);
                let uid = uid.clone();
                reads.spawn(async move { (n, inner.read(&uid, inner.deadline()).await) });
            }
            let mut got: Vec<(usize, Record)> = Vec::with_capacity(chunk.len());
            while let Some(joined) = reads.join_next().await {
                let (n, read) = joined.map_err(|e| Fault::Local(format!("a store read task failed: {e}")))?;
                if let Some(read) = read? {
                    got.push((n, read.record));
                }
            }
            got.sort_by_key(|(n, _)| *n);
            records.extend(got.into_iter().map(|(_, r)| r));
        }
        Ok(records)
    }

    async fn all_records(self: &Arc<Self>) -> Result<Vec<Record>, Fault> {
        let _walk = self
            .walks
            .acquire()
            .await
            .map_err(|_| Fault::Local("the store is closing".to_owned()))?;
        let uids = self.list(self.deadline()).await?;
        self.read_many(&uids).await
    }

    async fn create(&self, record: &Record) -> Result<(), Fault> {
        self.writable()?;
        layout::check_uid(&record.uid)?;
        let deadline = self.deadline();
        let mut stored = record.clone();
        stored.version = 1;
        stored.normalize_index();
        let mut attempt = 0;
        loop {
            match self.write(&stored, 0, deadline).await {
                Ok(_) => return Ok(()),
                Err(fault) if fault.is_cas_mismatch() => {
                    return match self.read(&record.uid, deadline).await? {
                        Some(existing) if existing.record.same_content(record) => Ok(()),
                        Some(_) => Err(already_exists()),
                        None => Err(Fault::Local(format!(
                            "uid {} exists in OpenBao with its latest version deleted; \
                             remove its metadata before creating it again",
                            record.uid
                        ))),
                    };
                }
                Err(fault) if fault.is_transient() => {
                    // The write may or may not have landed: read before
                    // writing again.
                    if !wait_to_retry(attempt, &fault, deadline).await {
                        return Err(fault);
                    }
                    attempt += 1;
                    match self.read(&record.uid, deadline).await {
                        Ok(Some(existing)) if existing.record.same_content(record) => return Ok(()),
                        Ok(Some(_)) => return Err(already_exists()),
                        Ok(None) => {}
                        Err(_) => return Err(fault),
                    }
                }
                Err(fault) => return Err(fault),
            }
        }
    }

    async fn update(&self, record: &Record, expected_version: u64) -> Result<u64, Fault> {
        self.writable()?;
        layout::check_uid(&record.uid)?;
        let deadline = self.deadline();
        let current = self.read(&record.uid, deadline).await?.ok_or_else(not_found)?;
        if current.record.version != expected_version {
            return Err(cas_mismatch());
        }
        let new_version = expected_version
            .checked_add(1)
            .ok_or_else(|| Fault::Local("record version overflow".to_owned()))?;
        let mut stored = record.clone();
        stored.version = new_version;
        stored.created_at = current.record.created_at;
        stored.normalize_index();
        let is_ours = |read: &Read| read.record.version == new_version && read.record.same_content(&stored);
        let mut uncertain = false;
        let mut attempt = 0;
        loop {
            match self.write(&stored, current.kv_version, deadline).await {
                Ok(_) => return Ok(new_version),
                Err(fault) if fault.is_cas_mismatch() => {
                    // After an unknown outcome the winner may be our own
                    // earlier attempt.
                    if uncertain
                        && self
                            .read(&record.uid, deadline)
                            .await?
                            .is_some_and(|r| is_ours(&r))
                    {
                        return Ok(new_version);
                    }
                    return Err(fault);
                }
                Err(fault) if fault.is_transient() => {
                    if !wait_to_retry(attempt, &fault, deadline).await {
                        return Err(fault);
                    }
                    attempt += 1;
                    uncertain = true;
                    match self.read(&record.uid, deadline).await {
                        Ok(Some(now)) if is_ours(&now) => return Ok(new_version),
                        Ok(Some(now)) if now.kv_version == current.kv_version => {} // not landed: write again
                        Ok(Some(_)) => return Err(cas_mismatch()),
                        Ok(None) => return Err(not_found()),
                        Err(_) => return Err(fault),
                    }
                }
                Err(fault) => return Err(fault),
            }
        }
    }

    async fn find(self: &Arc<Self>, query: &Query) -> Result<Vec<String>, Fault> {
        Ok(query.select(&self.all_records().await?))
    }

    async fn list_page(
        self: &Arc<Self>,
        after_uid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, Fault> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let uids = self.list(self.deadline()).await?;
        let start = after_uid.map_or(0, |after| uids.partition_point(|uid| uid.as_str() <= after));
        let mut rest = uids.get(start..).unwrap_or_default();
        let mut page = Vec::new();
        // A record deleted between LIST and read leaves a gap: read on until
        // the page is full or the keys run out.
        while page.len() < limit && !rest.is_empty() {
            let take = (limit - page.len()).min(rest.len());
            page.extend(self.read_many(&rest[..take]).await?);
            rest = &rest[take..];
        }
        Ok(page)
    }

    async fn health(&self) -> Result<(), Fault> {
        let path = format!("{}{HEALTH_KEY}", self.data);
        match self.call_idempotent(Method::GET, &path, self.deadline()).await {
            Ok(_) => Ok(()),
            Err(fault) if fault.is_not_found() => Ok(()),
            Err(fault) => Err(fault),
        }
    }

    /// Removes every version and the metadata of `uid` (absent is fine).
    async fn destroy(&self, uid: &str) -> Result<(), Fault> {
        layout::check_uid(uid)?;
        let path = format!("{}{uid}", self.metadata);
        match self.call_idempotent(Method::DELETE, &path, self.deadline()).await {
            Ok(_) => Ok(()),
            Err(fault) if fault.is_not_found() => Ok(()),
            Err(fault) => Err(fault),
        }
    }

    /// The store contract's delete. With an expected version, the record is
    /// read and compared first; KV v2 has no compare-and-swap on delete, so
    /// an update another node makes between that read and the delete is
    /// removed with it (deletes are administrative: restore, migration).
    async fn delete(&self, uid: &str, expected_version: Option<u64>) -> Result<bool, Fault> {
        self.writable()?;
        layout::check_uid(uid)?;
        let Some(current) = self.read(uid, self.deadline()).await? else {
            return Ok(false);
        };
        if expected_version.is_some_and(|v| v != current.record.version) {
            return Err(cas_mismatch());
        }
        self.destroy(uid).await?;
        Ok(true)
    }

    /// The token's capabilities on the records and their metadata
    /// (`sys/capabilities-self`), against what keyward needs.
    async fn check_access(&self) -> Result<String, Fault> {
        let data = format!("{}probe", self.data.trim_start_matches("/v1/"));
        let metadata = format!("{}probe", self.metadata.trim_start_matches("/v1/"));
        let body = serde_json::json!({ "paths": [&data, &metadata] })
            .to_string()
            .into_bytes();
        let reply = self
            .call(
                Method::POST,
                "/v1/sys/capabilities-self",
                Some(body),
                self.deadline(),
            )
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|e| Fault::Decode(format!("capabilities-self: {e}")))?;
        let has = |path: &str, what: &str| {
            answer[path]
                .as_array()
                .is_some_and(|caps| caps.iter().any(|c| c == what || c == "root"))
        };
        let mut missing = Vec::new();
        // What the server needs, also when asked through a read-only store
        // (check-config opens it so, and writes nothing).
        for what in ["read", "create", "update"] {
            if !has(&data, what) {
                missing.push(format!("{what} on {}*", data.trim_end_matches("probe")));
            }
        }
        for what in ["read", "list"] {
            if !has(&metadata, what) {
                missing.push(format!("{what} on {}*", metadata.trim_end_matches("probe")));
            }
        }
        if missing.is_empty() {
            Ok("the token may read, create and update records and list them".to_owned())
        } else {
            Err(Fault::Local(format!(
                "the token lacks {} (see docs/store-openbao.md for the policy)",
                missing.join(", ")
            )))
        }
    }

    /// The secret's current KV version, 0 when it has no metadata.
    async fn kv_version(&self, uid: &str) -> Result<u64, Fault> {
        let path = format!("{}{uid}", self.metadata);
        match self.call_idempotent(Method::GET, &path, self.deadline()).await {
            Ok(reply) => layout::decode_metadata_version(&reply.body),
            Err(fault) if fault.is_not_found() => Ok(0),
            Err(fault) => Err(fault),
        }
    }

    async fn import(&self, mut records: Export, replace: bool) -> Result<u64, Fault> {
        self.writable()?;
        let mut incoming: BTreeMap<String, Record> = BTreeMap::new();
        while let Some(page) = records
            .next_page()
            .await
            .map_err(|e| Fault::Local(e.to_string()))?
        {
            for mut record in page {
                layout::check_uid(&record.uid)?;
                if record.version == 0 {
                    return Err(Fault::Decode("imported record has version 0".to_owned()));
                }
                record.normalize_index();
                if incoming.insert(record.uid.clone(), record).is_some() {
                    return Err(already_exists());
                }
            }
        }
        let existing = self.list(self.deadline()).await?;
        if !replace && existing.iter().any(|uid| incoming.contains_key(uid)) {
            return Err(already_exists());
        }
        let mut written: Vec<&str> = Vec::new();
        for record in incoming.values() {
            // Over an existing secret, `cas` is its current version; the
            // record keeps the version the import gives it.
            let outcome = if replace {
                match self.kv_version(&record.uid).await {
                    Ok(cas) => self.write(record, cas, self.deadline()).await,
                    Err(fault) => Err(fault),
                }
            } else {
                self.write(record, 0, self.deadline()).await
            };
            match outcome {
                Ok(_) => written.push(&record.uid),
                Err(fault) => {
                    if !replace {
                        // Created by this import only (cas=0): remove them
                        // again, best effort, so that a refused import leaves
                        // nothing behind.
                        for uid in &written {
                            let _ = self.destroy(uid).await;
                        }
                    }
                    return Err(if fault.is_cas_mismatch() {
                        already_exists()
                    } else {
                        fault
                    });
                }
            }
        }
        if replace {
            for uid in existing.iter().filter(|uid| !incoming.contains_key(*uid)) {
                self.destroy(uid).await?;
            }
        }
        Ok(incoming.len() as u64)
    }
}

fn already_exists() -> Fault {
    // Mapped by `to_store_error` like any 409-style refusal; kept as a local
    // marker so the mapping stays in one function.
    Fault::Status {
        status: ::http::StatusCode::CONFLICT,
        message: String::new(),
        retry_after: None,
    }
}

fn cas_mismatch() -> Fault {
    Fault::Status {
        status: ::http::StatusCode::BAD_REQUEST,
        message: "check-and-set: the record version is not the expected one".to_owned(),
        retry_after: None,
    }
}

fn not_found() -> Fault {
    Fault::Status {
        status: ::http::StatusCode::NOT_FOUND,
        message: String::new(),
        retry_after: None,
    }
}

impl Store for OpenBaoStore {
    fn create<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.inner.create(record).await.map_err(to_store_error) })
    }

    fn get<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let read = self.inner.read(uid, self.inner.deadline()).await;
            read.map(|r| r.map(|r| r.record)).map_err(to_store_error)
        })
    }

    fn update<'a>(&'a self, record: &'a Record, expected_version: u64) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            self.inner
                .update(record, expected_version)
                .await
                .map_err(to_store_error)
        })
    }

    fn delete<'a>(&'a self, uid: &'a str, expected_version: Option<u64>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.inner
                .delete(uid, expected_version)
                .await
                .map_err(to_store_error)
        })
    }

    fn check_access(&self) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move { self.inner.check_access().await.map(Some).map_err(to_store_error) })
    }

    fn list_uids<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            // KV's LIST has no paging: each page is cut from one whole listing.
            let mut uids = self
                .inner
                .list(self.inner.deadline())
                .await
                .map_err(to_store_error)?;
            uids.sort_unstable();
            Ok(uids
                .into_iter()
                .filter(|uid| after_uid.is_none_or(|after| uid.as_str() > after))
                .take(limit)
                .collect())
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compare_and_swap: true,
            server_side_query: false,
            mutable_records: true,
            // KV v2 has no fixed limit; the server's request size limit
            // (32 MiB by default) is far above keyward's own record bounds.
            max_record_bytes: None,
            atomic_import: false,
            local: false,
        }
    }

    fn find<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move { self.inner.find(query).await.map_err(to_store_error) })
    }

    fn count_by_crk(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        Box::pin(async move {
            let records = self.inner.all_records().await.map_err(to_store_error)?;
            Ok(crate::store::query::count_by_crk(&records))
        })
    }

    fn list_page<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Record>> {
        Box::pin(async move {
            self.inner
                .list_page(after_uid, limit)
                .await
                .map_err(to_store_error)
        })
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.inner.health().await.map_err(to_store_error) })
    }

    fn export(&self, page_size: usize) -> StoreFuture<'_, Export> {
        Box::pin(async move {
            let records = self.inner.all_records().await.map_err(to_store_error)?;
            Ok(Export::from_records(records, page_size))
        })
    }

    fn import(&self, records: Export, replace: bool) -> StoreFuture<'_, u64> {
        Box::pin(async move { self.inner.import(records, replace).await.map_err(to_store_error) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a secret file readable by its owner only (keyward refuses a
    /// world-readable one).
    pub(super) fn write_secret(
        path: impl AsRef<std::path::Path>,
        text: impl AsRef<[u8]>,
    ) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(text.as_ref())
    }

    fn config(dir: &std::path::Path) -> OpenBaoConfig {
        let token = dir.join("token");
        write_secret(&token, "root\n").unwrap();
        OpenBaoConfig {
            address: "http://127.0.0.1:1".into(),
            mount: "secret".into(),
            prefix: "keyward".into(),
            auth: OpenBaoAuth::TokenFile(token),
            ca_file: None,
            timeout: Duration::from_millis(300),
        }
    }

    #[test]
    fn mount_and_prefix_are_plain_segments() {
        assert_eq!(clean_path("k", "/kv/prod/").unwrap(), "kv/prod");
        for bad in ["", "/", "a//b", "a/../b", "a b", "a?b", "."] {
            assert!(clean_path("k", bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.prefix = "../sys".into();
        assert!(OpenBaoStore::open(&c).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_store_is_unavailable_within_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let store = OpenBaoStore::open(&config(dir.path())).unwrap();
        let started = Instant::now();
        let err = store.get("uid-a").await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(!err.to_string().contains("root"), "{err}");
    }

    #[tokio::test]
    async fn a_read_only_store_refuses_writes_before_any_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let store = OpenBaoStore::open_read_only(&config(dir.path())).unwrap();
        let err = store
            .create(&crate::store::conformance::sample_record("a", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Other(m) if m.contains("read-only")),
            "{err}"
        );
    }

    #[test]
    fn conflict_marker_maps_to_already_exists() {
        // `to_store_error` must know 409: see the mapping's arm.
        assert_eq!(
            to_store_error(already_exists()),
            StoreError::Conflict(crate::store::Conflict::Exists)
        );
    }
}
