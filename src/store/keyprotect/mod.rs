//! IBM Key Protect / Hyper Protect Crypto Services (keys API v2) as a
//! [`Store`]: each record an imported standard key the customer sees in
//! their console (see docs/store-keyprotect.md).
//!
//! - **Layout** ([`layout`]): one key per record *generation*, named
//!   `kmip-<uid>`, with the alias `kmip-<uid>-g<N>` and the record in its
//!   payload (at most 7,500 base64 characters; larger is `TooLarge`).
//! - **Updates are copy-on-write**: Key Protect keys cannot be changed, so an
//!   update imports generation N+1 and then deletes generation N. Aliases are
//!   unique per instance, so importing `kmip-<uid>-g<N+1>` is the
//!   compare-and-swap: of two nodes that read generation N, exactly one
//!   import succeeds; the other gets 409 and reports a version conflict. The
//!   read side serves the highest generation, and nothing when that one is
//!   deleted (a customer's delete in the console, a KMIP Destroy) — never an
//!   older generation.
//! - **Create** imports generation 1 (or the one after a deleted record's
//!   last): the alias is the create-if-absent guard; a retry after an unknown
//!   outcome reads first and answers `Ok` for its own content.
//! - **Delete** writes a tombstone generation first (so a racing update
//!   loses), then deletes every generation's key, newest first.
//! - **Deadlines and retries**: every call has a deadline (`timeout`); GETs,
//!   listings and DELETEs are retried on 429/5xx/timeouts with backoff and
//!   jitter, honouring `Retry-After`; an import whose outcome is unknown is
//!   never repeated blindly: the next attempt reads first.
//! - **Auth** ([`iam`]): an IAM API key from a file, exchanged for a bearer
//!   token refreshed before expiry; a 401 refreshes it once and the call is
//!   sent once more. Every call carries `bluemix-instance` and a fresh
//!   `correlation-id`.
//! - **Queries**: Key Protect has none keyward can use, so `find`, the counts
//!   and `export` page through every key (deleted ones included, which keeps
//!   offsets stable while keys are deleted) and read each live record:
//!   O(store) per call, until the local index answers them. `list_page` lists
//!   every key too but reads the payloads of its page only.

mod api;
mod iam;
mod layout;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::Method;
use ::http::header::{HeaderName, HeaderValue};
use tokio::task::JoinSet;

use self::api::{Key, already_exists, is_alias_taken, is_gone, not_found, to_store_error, version_conflict};
use self::iam::Iam;
use super::remote::http::{Address, Body, Endpoint, Fault, Reply, backoff};
use super::{Capabilities, Export, Query, Record, Store, StoreError, StoreFuture};

/// Default deadline of one store call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// IBM Cloud's IAM token endpoint.
pub const DEFAULT_IAM_ADDRESS: &str = "https://iam.cloud.ibm.com/identity/token";
/// Most attempts of one exchange (the deadline bounds them too).
const MAX_ATTEMPTS: u32 = 6;
/// Records read at once by the listing calls.
const READ_CONCURRENCY: usize = 16;
/// Keys per listing page (Key Protect allows 1..=5000).
const PAGE: usize = 1000;
/// The states a listing asks for: every one, deleted keys included.
const ALL_STATES: &str = "0,1,2,3,5";

/// Where and how to reach Key Protect (the `[store] kind = "keyprotect"` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProtectConfig {
    /// The API endpoint, `https://<region>.kms.cloud.ibm.com` (Key Protect)
    /// or `https://<instance>.api.<region>.hs-crypto.appdomain.cloud` (HPCS);
    /// keyward adds `/api/v2/...`.
    pub address: String,
    /// IAM's token endpoint (a full URL).
    pub iam_address: String,
    /// The service instance GUID (`bluemix-instance`).
    pub instance_id: String,
    /// A file holding the IAM API key (never inline; refused when world-readable).
    pub api_key_file: PathBuf,
    /// PEM CA bundle for https (Key Protect and IAM); required for https.
    pub ca_file: Option<PathBuf>,
    /// The key ring keyward's keys go to (`x-kms-key-ring`), if not the default.
    pub key_ring: Option<String>,
    /// Deadline of each store call.
    pub timeout: Duration,
}

impl KeyProtectConfig {
    /// The checks that need no file and no network. `Err((key, why))` names
    /// the `[store]` key at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let has_ca = self.ca_file.is_some();
        Address::parse(&self.address, has_ca, "keyward adds /api/v2").map_err(|why| ("address", why))?;
        let iam = Address::parse_url(&self.iam_address, has_ca).map_err(|why| ("iam_address", why))?;
        if iam.path.is_empty() {
            return Err((
                "iam_address",
                format!(
                    "{:?} needs the token path ({DEFAULT_IAM_ADDRESS})",
                    self.iam_address
                ),
            ));
        }
        if uuid::Uuid::parse_str(&self.instance_id).is_err() {
            return Err((
                "instance_id",
                format!(
                    "{:?} is not a service instance GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                    self.instance_id
                ),
            ));
        }
        if let Some(ring) = &self.key_ring {
            let ok = (2..=100).contains(&ring.len())
                && ring.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err((
                    "key_ring",
                    format!("{ring:?} must be 2-100 letters, digits or '-'"),
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err(("timeout", "must be above zero".to_owned()));
        }
        Ok(())
    }

    /// Where the records are, for messages.
    pub fn location(&self) -> String {
        format!(
            "{}/api/v2/keys (instance {})",
            self.address.trim_end_matches('/'),
            self.instance_id
        )
    }
}

/// The store. Cheap to share: clones of the inner state are what the
/// concurrent reads of the listing calls hold.
pub struct KeyProtectStore {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    iam: Iam,
    instance: HeaderValue,
    key_ring: Option<HeaderValue>,
    timeout: Duration,
    read_only: bool,
    /// Whole-store walks at once (see the OpenBao store).
    walks: tokio::sync::Semaphore,
}

impl std::fmt::Debug for KeyProtectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyProtectStore")
            .field("endpoint", &self.inner.endpoint)
            .field("instance", &self.inner.instance)
            .field("read_only", &self.inner.read_only)
            .finish_non_exhaustive()
    }
}

impl KeyProtectStore {
    /// Checks the settings, reads the CA and API key files, and builds the
    /// clients. Contacts neither IAM nor Key Protect (the first call does).
    pub fn open(config: &KeyProtectConfig) -> Result<KeyProtectStore, StoreError> {
        Self::open_with(config, false)
    }

    /// As [`open`](Self::open), refusing every write (backup, status).
    pub fn open_read_only(config: &KeyProtectConfig) -> Result<KeyProtectStore, StoreError> {
        Self::open_with(config, true)
    }

    fn open_with(config: &KeyProtectConfig, read_only: bool) -> Result<KeyProtectStore, StoreError> {
        config
            .check()
            .map_err(|(key, why)| StoreError::Other(format!("store.{key}: {why}")))?;
        let ca = crate::store::remote::read_ca_file(config.ca_file.as_deref())?;
        let endpoint = Endpoint::new(
            &config.address,
            ca.as_deref(),
            "keyward adds /api/v2",
            api::kp_message,
        )
        .map_err(|why| StoreError::Other(format!("store.address: {why}")))?;
        let iam_address = Address::parse_url(&config.iam_address, ca.is_some())
            .map_err(|why| StoreError::Other(format!("store.iam_address: {why}")))?;
        let iam_path = iam_address.path.clone();
        let iam_endpoint =
            Endpoint::from_address(&config.iam_address, iam_address, ca.as_deref(), iam::iam_message)
                .map_err(|why| StoreError::Other(format!("store.iam_address: {why}")))?;
        let iam = Iam::new(iam_endpoint, iam_path, config.api_key_file.clone()).map_err(to_store_error)?;
        let header = |text: &str, key: &str| {
            HeaderValue::from_str(text)
                .map_err(|_| StoreError::Other(format!("store.{key} cannot be sent in a header")))
        };
        Ok(KeyProtectStore {
            inner: Arc::new(Inner {
                endpoint,
                iam,
                instance: header(&config.instance_id, "instance_id")?,
                key_ring: config
                    .key_ring
                    .as_deref()
                    .map(|ring| header(ring, "key_ring"))
                    .transpose()?,
                timeout: config.timeout,
                read_only,
                walks: tokio::sync::Semaphore::new(crate::limits::STORE_SCAN_WALKS),
            }),
        })
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

/// Every generation of one uid found in a listing.
#[derive(Debug, Clone, Default)]
struct Generations {
    /// `(generation, key, tombstone)`, ascending by generation.
    keys: Vec<(u64, Key, bool)>,
}

impl Generations {
    fn newest(&self) -> Option<&(u64, Key, bool)> {
        self.keys.last()
    }

    fn highest(&self) -> u64 {
        self.newest().map_or(0, |(g, _, _)| *g)
    }

    /// The newest generation when it is a live record (not deleted, not a
    /// tombstone).
    fn live(&self) -> Option<&(u64, Key, bool)> {
        self.newest()
            .filter(|(_, key, tombstone)| !key.is_deleted() && !tombstone)
    }
}

/// Groups listed keys by uid (keys keyward did not write are skipped).
fn group(keys: Vec<Key>, only: Option<&str>) -> BTreeMap<String, Generations> {
    let mut by_uid: BTreeMap<String, Generations> = BTreeMap::new();
    for key in keys {
        if let Some((uid, generation, tombstone)) = layout::parse_description(&key.name, &key.description) {
            if only.is_some_and(|want| want != uid) {
                continue;
            }
            by_uid
                .entry(uid)
                .or_default()
                .keys
                .push((generation, key, tombstone));
        }
    }
    for generations in by_uid.values_mut() {
        generations.keys.sort_by_key(|(g, _, _)| *g);
    }
    by_uid
}

/// The record a uid currently has, with the generation that holds it.
struct Current {
    record: Record,
    generation: u64,
    all: Generations,
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

    fn headers(&self, token: HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
        let correlation = uuid::Uuid::new_v4().hyphenated().to_string();
        let mut headers = vec![
            (::http::header::AUTHORIZATION, token),
            (HeaderName::from_static("bluemix-instance"), self.instance.clone()),
            (
                HeaderName::from_static("correlation-id"),
                HeaderValue::from_str(&correlation).unwrap_or_else(|_| HeaderValue::from_static("keyward")),
            ),
            (
                ::http::header::ACCEPT,
                HeaderValue::from_static("application/json"),
            ),
        ];
        if let Some(ring) = &self.key_ring {
            headers.push((HeaderName::from_static("x-kms-key-ring"), ring.clone()));
        }
        headers
    }

    /// One authenticated exchange; on a 401 the token is replaced once and
    /// the request sent once more.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Reply, Fault> {
        let body_of = || {
            body.map(|bytes| Body {
                content_type: api::KEY_TYPE,
                bytes: bytes.to_vec(),
            })
        };
        let (token, generation) = self.iam.current(deadline).await?;
        match self
            .endpoint
            .send(method.clone(), path, &self.headers(token), body_of(), deadline)
            .await
        {
            Err(fault) if fault.status() == Some(::http::StatusCode::UNAUTHORIZED) => {
                self.iam.refused(generation);
                let (token, _) = self.iam.current(deadline).await?;
                self.endpoint
                    .send(method, path, &self.headers(token), body_of(), deadline)
                    .await
            }
            other => other,
        }
    }

    /// [`call`](Self::call) retried on transient faults: GET and DELETE.
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

    /// Every key a listing gives (all pages), optionally narrowed by `search`.
    async fn list_keys(&self, search: Option<&str>, deadline: Instant) -> Result<Vec<Key>, Fault> {
        let mut keys = Vec::new();
        let mut offset = 0usize;
        loop {
            let mut path =
                format!("/api/v2/keys?limit={PAGE}&offset={offset}&state={ALL_STATES}&extractable=true");
            if let Some(search) = search {
                path.push_str("&search=");
                path.push_str(search);
            }
            let reply = self.call_idempotent(Method::GET, &path, deadline).await?;
            let page = api::decode_collection(&reply.body, "list")?.resources;
            let got = page.len();
            keys.extend(page);
            if got < PAGE {
                return Ok(keys);
            }
            offset += got;
        }
    }

    /// Every generation of `uid` (a search on the key name).
    async fn generations(&self, uid: &str, deadline: Instant) -> Result<Generations, Fault> {
        // `exact:` matches the whole name (or alias, or id) only.
        let search = format!("exact:{}", layout::key_name(uid));
        let keys = self.list_keys(Some(&search), deadline).await?;
        Ok(group(keys, Some(uid)).remove(uid).unwrap_or_default())
    }

    /// One key with its payload; `None` when absent.
    async fn get_key(&self, id: &str, deadline: Instant) -> Result<Option<Key>, Fault> {
        match self
            .call_idempotent(Method::GET, &format!("/api/v2/keys/{id}"), deadline)
            .await
        {
            Ok(reply) => Ok(api::decode_collection(&reply.body, "get")?
                .resources
                .into_iter()
                .next()),
            Err(fault) if is_gone(&fault) => Ok(None),
            Err(fault) => Err(fault),
        }
    }

    /// The record in the key of `generation` of `uid`: `None` when the key
    /// was deleted (state 5: no payload is served, never an older one) or
    /// holds a tombstone.
    async fn read_key(&self, uid: &str, id: &str, deadline: Instant) -> Result<Option<Record>, Fault> {
        let Some(key) = self.get_key(id, deadline).await? else {
            return Ok(None);
        };
        if key.is_deleted() {
            return Ok(None);
        }
        match key.payload.as_deref() {
            Some(payload) if !payload.is_empty() => layout::decode(uid, payload),
            _ => Ok(None),
        }
    }

    async fn read(&self, uid: &str, deadline: Instant) -> Result<Option<Current>, Fault> {
        if layout::check_uid(uid).is_err() {
            return Ok(None);
        }
        let mut seen_generation = 0;
        loop {
            let all = self.generations(uid, deadline).await?;
            if all.highest() <= seen_generation {
                // The newest generation is the one found deleted: the
                // record is gone (never an older generation).
                return Ok(None);
            }
            let Some((generation, key, _)) = all.live() else {
                return Ok(None);
            };
            let (generation, id) = (*generation, key.id.clone());
            match self.read_key(uid, &id, deadline).await? {
                Some(record) => {
                    return Ok(Some(Current {
                        record,
                        generation,
                        all,
                    }));
                }
                // Deleted between the listing and the read: an update
                // (which deletes the generation it replaces) or a delete.
                // List again to tell which.
                None => seen_generation = generation,
            }
        }
    }

    /// Imports generation `generation` of `uid`; never retried here.
    async fn import(
        &self,
        uid: &str,
        generation: u64,
        tombstone: bool,
        payload: &str,
        deadline: Instant,
    ) -> Result<(), Fault> {
        let body = api::import_body(
            &layout::key_name(uid),
            &layout::description(uid, generation, tombstone),
            &layout::alias(uid, generation),
            payload,
        )?;
        self.call(Method::POST, "/api/v2/keys", Some(&body), deadline)
            .await?;
        Ok(())
    }

    /// Deletes the keys of `keys` that are not deleted yet, in that order
    /// (404 and 410 are done).
    async fn delete_keys(&self, keys: &[&Key], deadline: Instant) -> Result<(), Fault> {
        for key in keys.iter().filter(|k| !k.is_deleted()) {
            match self
                .call_idempotent(Method::DELETE, &format!("/api/v2/keys/{}", key.id), deadline)
                .await
            {
                Ok(_) => {}
                Err(fault) if is_gone(&fault) => {}
                Err(fault) => return Err(fault),
            }
        }
        Ok(())
    }

    /// Best effort: deletes every generation of `all` below `newest`. A
    /// leftover is never served (reads take the newest generation) and is
    /// removed by the next write of the uid.
    async fn remove_older(&self, all: &Generations, newest: u64) {
        let older: Vec<&Key> = all
            .keys
            .iter()
            .rev()
            .filter(|(g, _, _)| *g < newest)
            .map(|(_, k, _)| k)
            .collect();
        let _ = self.delete_keys(&older, self.deadline()).await;
    }

    async fn create(&self, record: &Record) -> Result<(), Fault> {
        self.writable()?;
        layout::check_uid(&record.uid)?;
        let mut stored = record.clone();
        stored.version = 1;
        stored.normalize_index();
        let payload = layout::encode(&stored)?;
        let deadline = self.deadline();
        let mut attempt = 0;
        loop {
            // Read first, every time: after an import of unknown outcome (or
            // one that lost the alias) this is the reconciliation.
            let all = self.generations(&record.uid, deadline).await?;
            if let Some((_, key, _)) = all.live() {
                return match self.read_key(&record.uid, &key.id, deadline).await? {
                    Some(existing) if existing.same_content(&stored) => Ok(()),
                    Some(_) => Err(already_exists()),
                    // Deleted between the listing and the read: list again.
                    None if wait_to_retry(attempt, &not_found(), deadline).await => {
                        attempt += 1;
                        continue;
                    }
                    None => Err(already_exists()),
                };
            }
            let generation = all.highest() + 1;
            match self
                .import(&record.uid, generation, false, &payload, deadline)
                .await
            {
                Ok(()) => {
                    self.remove_older(&all, generation).await;
                    return Ok(());
                }
                // Another writer (or our own earlier attempt) holds the
                // alias: read again to tell which.
                Err(fault) if is_alias_taken(&fault) || fault.is_transient() => {
                    if !wait_to_retry(attempt, &fault, deadline).await {
                        return Err(if is_alias_taken(&fault) {
                            already_exists()
                        } else {
                            fault
                        });
                    }
                    attempt += 1;
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
            return Err(version_conflict());
        }
        let new_version = expected_version
            .checked_add(1)
            .ok_or_else(|| Fault::Local("record version overflow".to_owned()))?;
        let mut stored = record.clone();
        stored.version = new_version;
        stored.created_at = current.record.created_at;
        stored.normalize_index();
        let payload = layout::encode(&stored)?;
        let generation = current.generation + 1;
        let mut uncertain = false;
        let mut attempt = 0;
        loop {
            let fault = match self
                .import(&record.uid, generation, false, &payload, deadline)
                .await
            {
                Ok(()) => {
                    self.remove_older(&current.all, generation).await;
                    return Ok(new_version);
                }
                Err(fault) => fault,
            };
            let lost = is_alias_taken(&fault);
            if !lost && !fault.is_transient() {
                return Err(fault);
            }
            if lost && !uncertain {
                // Another node imported this generation first: it won.
                return Err(version_conflict());
            }
            if !lost && !wait_to_retry(attempt, &fault, deadline).await {
                return Err(fault);
            }
            attempt += 1;
            uncertain = true;
            // After an unknown outcome the alias may be held by our own
            // earlier attempt: look at who holds that generation.
            let now = self.generations(&record.uid, deadline).await?;
            match now.keys.iter().find(|(g, _, _)| *g == generation) {
                None if lost => return Err(version_conflict()),
                None => {} // not landed: import again
                Some((_, key, false)) => {
                    let ours = self
                        .read_key(&record.uid, &key.id, deadline)
                        .await?
                        .is_some_and(|r| r.version == new_version && r.same_content(&stored));
                    if ours {
                        self.remove_older(&now, generation).await;
                        return Ok(new_version);
                    }
                    return Err(version_conflict());
                }
                Some(_) => return Err(version_conflict()),
            }
        }
    }

    /// Deletes the record of `uid` (KMIP Destroy): `Ok(false)` when absent.
    /// A tombstone generation is imported first, so that an update racing
    /// this delete loses (or this delete does); then every key of the uid
    /// is deleted, newest first, and the customer sees them deleted.
    async fn delete(&self, uid: &str, expected_version: Option<u64>) -> Result<bool, Fault> {
        self.writable()?;
        let deadline = self.deadline();
        let Some(current) = self.read(uid, deadline).await? else {
            // Absent. A delete that stopped part-way (or a crash between an
            // update's import and its clean-up) may have left keys that are
            // not deleted yet: finish the job so the console shows none.
            if layout::check_uid(uid).is_ok() {
                let all = self.generations(uid, deadline).await?;
                if all.live().is_none() {
                    self.remove_up_to(&all, all.highest(), deadline).await?;
                }
            }
            return Ok(false);
        };
        if expected_version.is_some_and(|v| v != current.record.version) {
            return Err(version_conflict());
        }
        let generation = current.generation + 1;
        let payload = layout::encode_tombstone(uid)?;
        let mut attempt = 0;
        loop {
            match self.import(uid, generation, true, &payload, deadline).await {
                Ok(()) => break,
                Err(fault) if fault.is_transient() => {
                    if !wait_to_retry(attempt, &fault, deadline).await {
                        return Err(fault);
                    }
                    attempt += 1;
                    let now = self.generations(uid, deadline).await?;
                    match now.keys.iter().find(|(g, _, _)| *g == generation) {
                        Some((_, _, true)) => break, // our tombstone landed
                        Some(_) => return Err(version_conflict()),
                        None => {}
                    }
                }
                Err(fault) if is_alias_taken(&fault) && attempt > 0 => {
                    let now = self.generations(uid, deadline).await?;
                    if now.keys.iter().any(|(g, _, t)| *g == generation && *t) {
                        break;
                    }
                    return Err(version_conflict());
                }
                Err(fault) if is_alias_taken(&fault) => return Err(version_conflict()),
                Err(fault) => return Err(fault),
            }
        }
        // Up to the tombstone only: a create that lands after it (a new
        // generation) is another record and stays.
        let all = self.generations(uid, deadline).await?;
        self.remove_up_to(&all, generation, deadline).await?;
        Ok(true)
    }

    /// Deletes the keys of `all` up to generation `last`, newest first.
    async fn remove_up_to(&self, all: &Generations, last: u64, deadline: Instant) -> Result<(), Fault> {
        let keys: Vec<&Key> = all
            .keys
            .iter()
            .rev()
            .filter(|(g, _, _)| *g <= last)
            .map(|(_, k, _)| k)
            .collect();
        self.delete_keys(&keys, deadline).await
    }

    /// Every live record's `(uid, key id)`, sorted by uid: one walk through
    /// the listing (no payloads).
    async fn live_keys(&self) -> Result<Vec<(String, String)>, Fault> {
        let keys = self.list_keys(None, self.deadline()).await?;
        Ok(group(keys, None)
            .into_iter()
            .filter_map(|(uid, g)| g.live().map(|(_, key, _)| (uid.clone(), key.id.clone())))
            .collect())
    }

    /// The records of `live`, in that order, up to [`READ_CONCURRENCY`]
    /// reads at once; a record deleted since the listing is left out, one
    /// replaced since is read at its newest generation.
    async fn read_live(self: &Arc<Self>, live: &[(String, String)]) -> Result<Vec<Record>, Fault> {
        let mut records = Vec::with_capacity(live.len());
        for chunk in live.chunks(READ_CONCURRENCY) {
            let mut reads = JoinSet::new();
            for (n, (uid, id)) in chunk.iter().enumerate() {
                let (uid, id) = (uid.clone(), id.clone());
                let inner = Arc::clone(self);
                reads.spawn(async move {
                    let read = match inner.read_key(&uid, &id, inner.deadline()).await {
                        Ok(None) => inner
                            .read(&uid, inner.deadline())
                            .await
                            .map(|c| c.map(|c| c.record)),
                        other => other,
                    };
                    (n, read)
                });
            }
            let mut got: Vec<(usize, Record)> = Vec::with_capacity(chunk.len());
            while let Some(joined) = reads.join_next().await {
                let (n, read) = joined.map_err(|e| Fault::Local(format!("a store read task failed: {e}")))?;
                if let Some(record) = read? {
                    got.push((n, record));
                }
            }
            got.sort_by_key(|(n, _)| *n);
            records.extend(got.into_iter().map(|(_, r)| r));
        }
        Ok(records)
    }

    /// Every live record, sorted by uid.
    async fn all_records(self: &Arc<Self>) -> Result<Vec<Record>, Fault> {
        let _walk = self
            .walks
            .acquire()
            .await
            .map_err(|_| Fault::Local("the store is closing".to_owned()))?;
        let live = self.live_keys().await?;
        self.read_live(&live).await
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
        // One listing, then payloads for this page only.
        let live = self.live_keys().await?;
        let start = after_uid.map_or(0, |after| live.partition_point(|(uid, _)| uid.as_str() <= after));
        let mut rest = live.get(start..).unwrap_or_default();
        let mut page = Vec::new();
        // A record deleted since the listing leaves a gap: read on until the
        // page is full or the records run out.
        while page.len() < limit && !rest.is_empty() {
            let take = (limit - page.len()).min(rest.len());
            page.extend(self.read_live(&rest[..take]).await?);
            rest = &rest[take..];
        }
        Ok(page)
    }

    async fn health(&self) -> Result<(), Fault> {
        self.call_idempotent(Method::GET, "/api/v2/keys?limit=1", self.deadline())
            .await
            .map(|_| ())
    }

    async fn import_records(self: &Arc<Self>, mut records: Export, replace: bool) -> Result<u64, Fault> {
        self.writable()?;
        let mut incoming: BTreeMap<String, (Record, String)> = BTreeMap::new();
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
                let payload = layout::encode(&record)?;
                if incoming.insert(record.uid.clone(), (record, payload)).is_some() {
                    return Err(already_exists());
                }
            }
        }
        let existing = group(self.list_keys(None, self.deadline()).await?, None);
        if !replace
            && existing
                .iter()
                .any(|(uid, g)| g.live().is_some() && incoming.contains_key(uid))
        {
            return Err(already_exists());
        }
        let mut written: Vec<(&str, u64)> = Vec::new();
        for (uid, (_, payload)) in &incoming {
            let before = existing.get(uid).cloned().unwrap_or_default();
            let generation = before.highest() + 1;
            match self
                .import(uid, generation, false, payload, self.deadline())
                .await
            {
                Ok(()) => {
                    written.push((uid, generation));
                    self.remove_older(&before, generation).await;
                }
                Err(fault) => {
                    if !replace {
                        // Created by this import only: remove them again, best
                        // effort, so that a refused import leaves nothing.
                        for (uid, _) in &written {
                            if let Ok(all) = self.generations(uid, self.deadline()).await {
                                let keys: Vec<&Key> = all.keys.iter().rev().map(|(_, k, _)| k).collect();
                                let _ = self.delete_keys(&keys, self.deadline()).await;
                            }
                        }
                    }
                    return Err(if is_alias_taken(&fault) {
                        already_exists()
                    } else {
                        fault
                    });
                }
            }
        }
        if replace {
            for (_, all) in existing.iter().filter(|(uid, _)| !incoming.contains_key(*uid)) {
                let keys: Vec<&Key> = all.keys.iter().rev().map(|(_, k, _)| k).collect();
                self.delete_keys(&keys, self.deadline()).await?;
            }
        }
        Ok(incoming.len() as u64)
    }
}

impl Store for KeyProtectStore {
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

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // The unique alias of the next generation (see the module doc).
            compare_and_swap: true,
            server_side_query: false,
            // Keys cannot be changed: an update imports a new key.
            mutable_records: false,
            max_record_bytes: Some(layout::MAX_RECORD_BYTES),
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

    fn list_uids<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            // The listing alone: no payload is read.
            let live = self.inner.live_keys().await.map_err(to_store_error)?;
            Ok(live
                .into_iter()
                .map(|(uid, _)| uid)
                .filter(|uid| after_uid.is_none_or(|after| uid.as_str() > after))
                .take(limit)
                .collect())
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
        Box::pin(async move {
            self.inner
                .import_records(records, replace)
                .await
                .map_err(to_store_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> KeyProtectConfig {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key = dir.join("apikey");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        file.write_all(b"secret-api-key\n").unwrap();
        KeyProtectConfig {
            address: "http://127.0.0.1:1".into(),
            iam_address: "http://127.0.0.1:1/identity/token".into(),
            instance_id: "8c1d2a10-0a4b-4a3c-9c1e-2f4b6a8d0e11".into(),
            api_key_file: key,
            ca_file: None,
            key_ring: None,
            timeout: Duration::from_millis(300),
        }
    }

    #[test]
    fn settings_are_checked_with_the_key_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let good = config(dir.path());
        assert!(good.check().is_ok());
        let with = |f: &dyn Fn(&mut KeyProtectConfig)| {
            let mut c = good.clone();
            f(&mut c);
            c.check().unwrap_err().0
        };
        assert_eq!(with(&|c| c.address = "http://10.1.1.1".into()), "address");
        assert_eq!(
            with(&|c| c.address = "http://127.0.0.1:1/api/v2".into()),
            "address"
        );
        assert_eq!(
            with(&|c| c.iam_address = "https://iam.example/x".into()),
            "iam_address"
        );
        assert_eq!(
            with(&|c| c.iam_address = "http://127.0.0.1:1".into()),
            "iam_address"
        );
        assert_eq!(with(&|c| c.instance_id = "not-a-guid".into()), "instance_id");
        assert_eq!(with(&|c| c.key_ring = Some("a b".into())), "key_ring");
        assert_eq!(with(&|c| c.timeout = Duration::ZERO), "timeout");
    }

    #[tokio::test]
    async fn an_unreachable_store_is_unavailable_within_the_deadline_and_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyProtectStore::open(&config(dir.path())).unwrap();
        let started = Instant::now();
        let err = store.get("uid-a").await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(!err.to_string().contains("secret-api-key"), "{err}");
        assert!(!format!("{store:?}").contains("secret-api-key"));
    }

    #[tokio::test]
    async fn a_read_only_store_refuses_writes_before_any_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyProtectStore::open_read_only(&config(dir.path())).unwrap();
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
    fn a_world_readable_api_key_file_is_refused_at_open() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        std::fs::set_permissions(&c.api_key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyProtectStore::open(&c).unwrap_err();
        assert!(err.to_string().contains("world-readable"), "{err}");
    }
}
