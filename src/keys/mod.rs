//! The key service: envelope encryption and the object lifecycle.
//!
//! This is the only place where plaintext key material exists outside the HSM.
//! A new object's material is encoded (as the TTLV of the managed object),
//! sealed under the current root key (CRK) with additional data binding the
//! object's identity, and stored; `open` reverses that for one request and the
//! plaintext lives only in zeroizing buffers.

pub mod admin;
mod error;
pub mod lifecycle;
mod locate;
mod object;
pub mod rotate;

use std::sync::{Arc, RwLock};

pub use error::{Corruption, KeyError};
pub use locate::matches_filter;
pub use object::{StoredObject, is_custom, names};

use crate::auth::Caller;
use crate::hsm::{AsyncHsm, CrkVersion, HsmError};
use crate::kmip::attribute::Attribute;
use crate::kmip::object::ManagedObject;
use crate::kmip::{ObjectType, State};
use crate::secret::SecretBytes;
use crate::store::Store;
use crate::ttlv::{self, Item, Value};

pub(crate) use crate::limits::MAX_UPDATE_ATTEMPTS;
use crate::limits::{X_NAME_MEMO_BYTES, X_NAME_MEMO_ENTRIES};

/// Objects are listed for Locate in pages of this many.
const LOCATE_PAGE: usize = 512;

/// Proof that the caller's group may see an object, and the object's
/// metadata as loaded. Only [`KeyService::load`] makes one, after comparing the
/// record's group with the caller's; opening, changing and destroying an
/// object take it, so no path reaches key material without that check.
#[derive(Debug)]
pub struct Visible {
    object: StoredObject,
}

impl Visible {
    /// The metadata, owned (the proof is spent).
    pub fn into_object(self) -> StoredObject {
        self.object
    }
}

impl std::ops::Deref for Visible {
    type Target = StoredObject;

    fn deref(&self) -> &StoredObject {
        &self.object
    }
}

pub struct KeyService {
    hsm: AsyncHsm,
    store: Arc<dyn Store>,
    /// The CRK new seals use. Root rotation moves it forward.
    crk: RwLock<CrkVersion>,
    /// The `x-Name` (vCenter's VM name) of objects recently loaded, so that audit
    /// events can name the VM without another store read.
    x_names: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Keys by state, moved by every create and state change this service makes.
    metrics: Option<crate::metrics::Metrics>,
    /// Most objects one group may hold.
    object_quota: usize,
    /// Objects per group, read from the store on a group's first create.
    group_objects: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// The additional authenticated data of a seal: the object's identity and its
/// group. A record whose blob was swapped with another object's, replayed under
/// another id or type, or moved to another group in the store (not by `keys
/// move`, which re-seals), does not open.
fn seal_aad(uid: &str, object_type: ObjectType, crk: u32, group: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40 + uid.len() + group.len());
    aad.extend_from_slice(b"keyward-object-v2\0");
    aad.extend_from_slice(&(uid.len() as u32).to_be_bytes());
    aad.extend_from_slice(uid.as_bytes());
    aad.extend_from_slice(&object_type.0.to_be_bytes());
    aad.extend_from_slice(&crk.to_be_bytes());
    aad.extend_from_slice(&(group.len() as u32).to_be_bytes());
    aad.extend_from_slice(group.as_bytes());
    aad
}

/// The AAD of seals made before the group was bound (v1). Such a blob still
/// opens — it was sealed before this build — until `keyward root rotate`
/// re-seals it under [`seal_aad`]; a v2 blob never opens under it.
fn legacy_seal_aad(uid: &str, object_type: ObjectType, crk: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + uid.len());
    aad.extend_from_slice(b"keyward-object-v1\0");
    aad.extend_from_slice(&(uid.len() as u32).to_be_bytes());
    aad.extend_from_slice(uid.as_bytes());
    aad.extend_from_slice(&object_type.0.to_be_bytes());
    aad.extend_from_slice(&crk.to_be_bytes());
    aad
}

impl KeyService {
    pub fn new(hsm: AsyncHsm, store: Arc<dyn Store>, crk: CrkVersion) -> Self {
        KeyService {
            hsm,
            store,
            crk: RwLock::new(crk),
            x_names: Default::default(),
            metrics: None,
            object_quota: crate::limits::MAX_OBJECTS_PER_GROUP,
            group_objects: Default::default(),
        }
    }

    /// Reports every object this service creates or moves to another state to
    /// `metrics`' keys-by-state gauge. The gauge starts from the store's count
    /// ([`KeyService::count_keys_by_state`]); changes made by other processes
    /// (admin commands, other nodes) reach it at the next start.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sets the keys-by-state gauge from one count in the store.
    pub async fn count_keys_by_state(&self) -> Result<(), KeyError> {
        let Some(metrics) = &self.metrics else {
            return Ok(());
        };
        let counts = self.store.count_by_state().await?;
        metrics.set_keys_by_state(
            counts
                .iter()
                .map(|(state, count)| (State(*state).name().unwrap_or("Unknown"), *count)),
        );
        Ok(())
    }

    fn state_changed(&self, from: Option<State>, to: Option<State>) {
        if let Some(metrics) = &self.metrics {
            let name = |s: State| s.name().unwrap_or("Unknown");
            metrics.keys_state_changed(from.map(name), to.map(name));
        }
    }

    pub fn current_crk(&self) -> CrkVersion {
        match self.crk.read() {
            Ok(v) => *v,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    pub fn set_current_crk(&self, crk: CrkVersion) {
        match self.crk.write() {
            Ok(mut v) => *v = crk,
            Err(poisoned) => *poisoned.into_inner() = crk,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn hsm(&self) -> &AsyncHsm {
        &self.hsm
    }

    /// Fresh random bytes from the HSM's generator, for new key material.
    pub async fn generate_material(&self, len: usize) -> Result<SecretBytes, KeyError> {
        Ok(self.hsm.random(len).await?)
    }

    /// The metadata of a new object, before its material is sealed.
    fn new_object(
        &self,
        uid: String,
        group: &str,
        object_type: ObjectType,
        attributes: Vec<Attribute>,
        now: i64,
    ) -> StoredObject {
        let mut stored = StoredObject {
            uid: uid.clone(),
            object_type,
            state: State::PRE_ACTIVE,
            group: group.to_owned(),
            attributes: Vec::with_capacity(attributes.len() + 8),
            created_at: now,
            record_version: 0,
            crk_version: self.current_crk().0,
            sealed: Vec::new(),
        };
        stored.set_single(names::UNIQUE_IDENTIFIER, Value::TextString(uid));
        stored.set_single(names::OBJECT_TYPE, Value::Enumeration(object_type.0));
        stored.attributes.extend(attributes);
        stored.set_state(State::PRE_ACTIVE);
        stored.set_single(names::INITIAL_DATE, Value::DateTime(now));
        stored.set_single(names::ORIGINAL_CREATION_DATE, Value::DateTime(now));
        stored.set_single(names::LAST_CHANGE_DATE, Value::DateTime(now));
        stored.refresh_state(now);
        stored
    }

    /// Refuses what [`KeyService::create`] would refuse before it needs the
    /// HSM — attributes past the bounds in [`crate::limits`], a full group — so
    /// that callers check before they ask the HSM for key material.
    pub async fn check_new(&self, group: &str, attributes: &[Attribute]) -> Result<(), KeyError> {
        // What the client gave, counted and sized without building the record
        // (this runs on every Create): the exact bound, server-managed
        // attributes included, is checked again before the seal.
        let bytes: usize = attributes.iter().map(|a| ttlv::encoded_len(&a.to_item())).sum();
        if attributes.len() > crate::limits::MAX_ATTRIBUTES_PER_OBJECT
            || bytes > crate::limits::MAX_ATTRIBUTE_BYTES_PER_OBJECT
        {
            return Err(KeyError::TooManyAttributes {
                max_count: crate::limits::MAX_ATTRIBUTES_PER_OBJECT,
                max_bytes: crate::limits::MAX_ATTRIBUTE_BYTES_PER_OBJECT,
            });
        }
        if self.group_count(group).await? >= self.object_quota as u64 {
            return Err(KeyError::GroupFull {
                max: self.object_quota,
            });
        }
        Ok(())
    }

    /// Stores a new managed object and returns its unique identifier.
    ///
    /// `object` is the managed object's tree (a Symmetric Key, Secret Data, ...)
    /// holding its material. `attributes` are the client's, already validated, plus
    /// any the caller derived from the object (algorithm, length); the service adds
    /// the server-managed ones. The Create is acknowledged only once durable.
    pub async fn create(
        &self,
        group: &str,
        object_type: ObjectType,
        object: &Item,
        attributes: Vec<Attribute>,
        now: i64,
    ) -> Result<String, KeyError> {
        let uid = uuid::Uuid::new_v4().to_string();
        let mut stored = self.new_object(uid.clone(), group, object_type, attributes, now);
        // Every bound before any HSM work: the attributes do not depend on the
        // seal, and a refused object costs no seal.
        check_attribute_bounds(&stored, &stored.to_record(now))?;
        self.reserve_object(group).await?;
        let result = self.seal_and_store(&mut stored, object, now).await;
        if result.is_err() {
            self.release_object(group);
        }
        result?;
        self.state_changed(None, Some(stored.state));
        Ok(uid)
    }

    async fn seal_and_store(
        &self,
        stored: &mut StoredObject,
        object: &Item,
        now: i64,
    ) -> Result<(), KeyError> {
        let crk = CrkVersion(stored.crk_version);
        let mut plaintext = Vec::with_capacity(ttlv::encoded_len(object));
        ttlv::encode(object, &mut plaintext);
        let plaintext = SecretBytes::new(plaintext);
        stored.sealed = self
            .hsm
            .seal(
                crk,
                seal_aad(&stored.uid, stored.object_type, crk.0, &stored.group),
                plaintext,
            )
            .await?;
        let record = stored.to_record(now);
        self.store.create(&record).await?;
        Ok(())
    }

    /// The object's metadata, if the caller's group may see it: the
    /// [`Visible`] proof that [`KeyService::open`], [`KeyService::update`] and
    /// [`KeyService::destroy`] require.
    pub async fn load(&self, caller: &Caller, uid: &str, now: i64) -> Result<Visible, KeyError> {
        self.load_in(caller.group(), uid, now).await
    }

    /// The group check itself: the only place a [`Visible`] is made.
    async fn load_in(&self, group: &str, uid: &str, now: i64) -> Result<Visible, KeyError> {
        let record = self.store.get(uid).await?.ok_or(KeyError::NotFound)?;
        if record.group != group {
            return Err(KeyError::NotFound);
        }
        let mut object = StoredObject::from_record(record)?;
        object.refresh_state(now);
        self.remember_x_name(&object);
        Ok(Visible { object })
    }

    fn remember_x_name(&self, object: &StoredObject) {
        if let Some(name) = object.attribute(names::X_NAME).and_then(|a| a.value.as_text()) {
            let mut memo = self
                .x_names
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if memo.len() >= X_NAME_MEMO_ENTRIES {
                memo.clear();
            }
            // Bounded per entry too: an x-Name is client text.
            let mut end = name.len().min(X_NAME_MEMO_BYTES);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            memo.insert(object.uid.clone(), name[..end].to_owned());
        }
    }

    /// The `x-Name` of an object this service loaded recently, if it has one.
    pub fn known_x_name(&self, uid: &str) -> Option<String> {
        self.x_names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uid)
            .cloned()
    }

    /// Opens the sealed material of an object the caller may see: the managed
    /// object, key material and all.
    pub async fn open(&self, object: &Visible) -> Result<ManagedObject, KeyError> {
        self.open_unchecked(&object.object).await
    }

    /// Opens without a group check: for the operator's restore verification
    /// ([`KeyService::check_opens`]), never for a client.
    async fn open_unchecked(&self, object: &StoredObject) -> Result<ManagedObject, KeyError> {
        if !object.has_material() {
            return Err(KeyError::WrongState(object.state));
        }
        let plaintext = self
            .unseal_bound(
                &object.uid,
                object.object_type,
                &object.group,
                CrkVersion(object.crk_version),
                &object.sealed,
            )
            .await?;
        // The plaintext is decoded once, and the tree's material moves into the
        // object (no further copy); `plaintext` is wiped when it drops here.
        let tree = ttlv::decode(plaintext.expose())
            .map_err(|e| KeyError::corrupt(&object.uid, Corruption::MaterialUndecodable(e)))?;
        drop(plaintext);
        ManagedObject::from_tree(tree)
            .map_err(|e| KeyError::corrupt(&object.uid, Corruption::MaterialInvalid(e)))
    }

    /// Unseals a blob bound to its object's identity and group; a blob sealed
    /// before the group was bound opens under the legacy identity alone.
    async fn unseal_bound(
        &self,
        uid: &str,
        object_type: ObjectType,
        group: &str,
        crk: CrkVersion,
        blob: &[u8],
    ) -> Result<SecretBytes, KeyError> {
        // The blob goes to an HSM worker thread by value: one copy per attempt,
        // and the second attempt only for blobs sealed by earlier builds.
        match self
            .hsm
            .unseal(crk, seal_aad(uid, object_type, crk.0, group), blob.to_vec())
            .await
        {
            Ok(p) => return Ok(p),
            Err(HsmError::BadBlob) => {}
            Err(e) => return Err(e.into()),
        }
        match self
            .hsm
            .unseal(crk, legacy_seal_aad(uid, object_type, crk.0), blob.to_vec())
            .await
        {
            Ok(p) => Ok(p),
            Err(HsmError::BadBlob) => Err(KeyError::corrupt(uid, Corruption::SealDoesNotOpen)),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives an object to another group (an administrator's `keys move`): its
    /// material is re-sealed under the new group's binding and stored with
    /// compare-and-swap. Returns the group it was in.
    pub async fn move_to_group(&self, uid: &str, group: &str, now: i64) -> Result<String, KeyError> {
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let record = self.store.get(uid).await?.ok_or(KeyError::NotFound)?;
            let mut object = StoredObject::from_record(record)?;
            if object.group == group {
                return Err(KeyError::Invalid(format!("the key is already in group {group}")));
            }
            let expected = object.record_version;
            if object.has_material() {
                let crk = CrkVersion(object.crk_version);
                let plaintext = self
                    .unseal_bound(
                        &object.uid,
                        object.object_type,
                        &object.group,
                        crk,
                        &object.sealed,
                    )
                    .await?;
                object.sealed = self
                    .hsm
                    .seal(
                        crk,
                        seal_aad(&object.uid, object.object_type, crk.0, group),
                        plaintext,
                    )
                    .await?;
            }
            let from = std::mem::replace(&mut object.group, group.to_owned());
            object.set_single(names::LAST_CHANGE_DATE, Value::DateTime(now));
            let record = object.to_record(now);
            match self.store.update(&record, expected).await {
                Ok(_) => return Ok(from),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KeyError::Contended)
    }

    /// Changes an object the caller may see with compare-and-swap: applies
    /// `change` to it and stores it if nobody changed it meanwhile (else retries
    /// from a fresh load, group checked again). Sets Last Change Date.
    pub async fn update<R>(
        &self,
        target: Visible,
        now: i64,
        mut change: impl FnMut(&mut StoredObject) -> Result<R, KeyError>,
    ) -> Result<R, KeyError> {
        let mut object = target.object;
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            if attempt > 0 {
                object = self.load_in(&object.group, &object.uid, now).await?.object;
            }
            let expected = object.record_version;
            let before = object.state;
            let result = change(&mut object)?;
            object.set_single(names::LAST_CHANGE_DATE, Value::DateTime(now));
            let record = object.to_record(now);
            check_attribute_bounds(&object, &record)?;
            match self.store.update(&record, expected).await {
                Ok(_) => {
                    self.state_changed(Some(before), Some(object.state));
                    return Ok(result);
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KeyError::Contended)
    }

    /// Destroys the material of an object the caller may see; its metadata
    /// stays, in state Destroyed (or Destroyed Compromised), with a Destroy Date.
    pub async fn destroy(&self, target: Visible, now: i64) -> Result<(), KeyError> {
        self.update(target, now, |object| {
            let next = lifecycle::destroy(object.state).map_err(transition_error)?;
            object.sealed.clear();
            object.set_state(next);
            object.set_single(names::DESTROY_DATE, Value::DateTime(now));
            Ok(())
        })
        .await
    }

    /// Objects of the caller's group that match every filter attribute, in
    /// creation order, after skipping `offset` matches, at most `max` of them;
    /// with `count_all`, also how many match in all (Located Items).
    ///
    /// When the store query says the whole filter ([`locate::store_query`]),
    /// the store pages and counts and no record is loaded. Otherwise the
    /// candidates are read a page at a time and checked here, and the walk stops
    /// once `max` are found (unless counting, which reads every candidate).
    pub async fn locate(
        &self,
        caller: &Caller,
        filter: &[Attribute],
        offset: usize,
        max: usize,
        count_all: bool,
        now: i64,
    ) -> Result<(Vec<String>, Option<usize>), KeyError> {
        let group = caller.group();
        let (mut query, exact) = locate::store_query(filter);
        query.group = Some(group.to_owned());
        if exact {
            let total = match count_all {
                true => Some(usize::try_from(self.store.count(&query).await?).unwrap_or(usize::MAX)),
                false => None,
            };
            query.offset = offset;
            query.limit = Some(max);
            let found = if max == 0 {
                Vec::new()
            } else {
                self.store.find(&query).await?
            };
            return Ok((found, total));
        }
        let mut found = Vec::new();
        let mut matched = 0usize;
        query.limit = Some(LOCATE_PAGE);
        loop {
            if !count_all && found.len() >= max {
                return Ok((found, None));
            }
            let page = self.store.find(&query).await?;
            for uid in &page {
                if !count_all && found.len() >= max {
                    return Ok((found, None));
                }
                let object = match self.load_in(group, uid, now).await {
                    Ok(o) => o.object,
                    Err(KeyError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                if matches_filter(&object, filter) {
                    if matched >= offset && found.len() < max {
                        found.push(object.uid);
                    }
                    matched += 1;
                }
            }
            if page.len() < LOCATE_PAGE {
                break;
            }
            query.offset = query.offset.saturating_add(LOCATE_PAGE);
        }
        Ok((found, count_all.then_some(matched)))
    }

    /// Takes one place in `group`'s object quota, or refuses when the group is
    /// full. The count is read from the store once per group, then kept here;
    /// objects other processes add (admin commands, other nodes) are seen at
    /// the next start. [`KeyService::release_object`] gives the place back.
    async fn reserve_object(&self, group: &str) -> Result<(), KeyError> {
        self.group_count(group).await?;
        let mut counts = self.lock_group_objects();
        let count = counts.entry(group.to_owned()).or_insert(0);
        if *count >= self.object_quota as u64 {
            return Err(KeyError::GroupFull {
                max: self.object_quota,
            });
        }
        *count += 1;
        Ok(())
    }

    /// The objects `group` holds, read from the store on the first call.
    async fn group_count(&self, group: &str) -> Result<u64, KeyError> {
        if let Some(count) = self.lock_group_objects().get(group) {
            return Ok(*count);
        }
        let query = crate::store::Query {
            group: Some(group.to_owned()),
            ..crate::store::Query::default()
        };
        let count = self.store.count(&query).await?;
        Ok(*self.lock_group_objects().entry(group.to_owned()).or_insert(count))
    }

    fn release_object(&self, group: &str) {
        if let Some(count) = self.lock_group_objects().get_mut(group) {
            *count = count.saturating_sub(1);
        }
    }

    fn lock_group_objects(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        self.group_objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the most objects one group may hold (default
    /// [`crate::limits::MAX_OBJECTS_PER_GROUP`]; a configuration setting would
    /// pass its value here).
    pub fn with_object_quota(mut self, max: usize) -> Self {
        self.object_quota = max;
        self
    }
}

/// Refuses an object whose attributes grew past the bounds in [`crate::limits`].
fn check_attribute_bounds(object: &StoredObject, record: &crate::store::Record) -> Result<(), KeyError> {
    use crate::limits::{MAX_ATTRIBUTE_BYTES_PER_OBJECT, MAX_ATTRIBUTES_PER_OBJECT};
    if object.attributes.len() > MAX_ATTRIBUTES_PER_OBJECT
        || record.attributes.len() > MAX_ATTRIBUTE_BYTES_PER_OBJECT
    {
        return Err(KeyError::TooManyAttributes {
            max_count: MAX_ATTRIBUTES_PER_OBJECT,
            max_bytes: MAX_ATTRIBUTE_BYTES_PER_OBJECT,
        });
    }
    Ok(())
}

/// Maps a refused lifecycle transition to the service's error.
pub fn transition_error(e: lifecycle::TransitionError) -> KeyError {
    match e {
        lifecycle::TransitionError::WrongState(s) => KeyError::WrongState(s),
        lifecycle::TransitionError::NotPermitted(s) => KeyError::NotAllowedInState(s),
    }
}

#[cfg(test)]
mod bounds_tests {
    use super::*;
    use crate::kmip::attribute::Attribute;

    fn object(attributes: Vec<Attribute>) -> StoredObject {
        StoredObject {
            uid: "k".into(),
            object_type: ObjectType::SYMMETRIC_KEY,
            state: State::ACTIVE,
            group: "default".into(),
            attributes,
            created_at: 0,
            record_version: 1,
            crk_version: 1,
            sealed: vec![1],
        }
    }

    #[test]
    fn attribute_count_and_size_are_bounded() {
        let tag = |i: usize| Attribute::new("x-tag", Value::TextString(format!("value {i}")));
        let fits = object((0..crate::limits::MAX_ATTRIBUTES_PER_OBJECT).map(tag).collect());
        assert!(check_attribute_bounds(&fits, &fits.to_record(0)).is_ok());
        let too_many = object((0..=crate::limits::MAX_ATTRIBUTES_PER_OBJECT).map(tag).collect());
        assert!(matches!(
            check_attribute_bounds(&too_many, &too_many.to_record(0)),
            Err(KeyError::TooManyAttributes { .. })
        ));
        let big = Attribute::new(
            "x-blob",
            Value::TextString("a".repeat(crate::limits::MAX_ATTRIBUTE_BYTES_PER_OBJECT)),
        );
        let too_big = object(vec![big]);
        assert!(matches!(
            check_attribute_bounds(&too_big, &too_big.to_record(0)),
            Err(KeyError::TooManyAttributes { .. })
        ));
    }
}

#[cfg(test)]
mod binding_tests {
    use super::*;
    use crate::auth::Caller;
    use crate::hsm::{Hsm, HsmStatus};
    use crate::store::MemoryStore;

    /// Seals as `aad || plaintext` and opens only under the same AAD: enough to
    /// see which identity a blob is bound to.
    struct PrefixHsm;

    impl Hsm for PrefixHsm {
        fn seal(&self, _: CrkVersion, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
            Ok([aad, plaintext].concat())
        }
        fn unseal(&self, _: CrkVersion, aad: &[u8], blob: &[u8]) -> Result<SecretBytes, HsmError> {
            blob.strip_prefix(aad)
                .map(SecretBytes::from_slice)
                .ok_or(HsmError::BadBlob)
        }
        fn random(&self, len: usize) -> Result<SecretBytes, HsmError> {
            Ok(SecretBytes::new(vec![7; len]))
        }
        fn crk_versions(&self) -> Result<Vec<CrkVersion>, HsmError> {
            Ok(vec![CrkVersion(1)])
        }
        fn create_crk(&self, _: CrkVersion) -> Result<(), HsmError> {
            Ok(())
        }
        fn destroy_crk(&self, _: CrkVersion) -> Result<(), HsmError> {
            Ok(())
        }
        fn health(&self) -> Result<HsmStatus, HsmError> {
            Err(HsmError::Unavailable("test".into()))
        }
    }

    async fn service_with_key() -> (KeyService, Arc<MemoryStore>, String) {
        let store = Arc::new(MemoryStore::new());
        let hsm = AsyncHsm::new(Arc::new(PrefixHsm), std::time::Duration::from_secs(5));
        let keys = KeyService::new(hsm, Arc::clone(&store) as Arc<dyn Store>, CrkVersion(1));
        let material = crate::kmip::object::KeyBlock::raw(
            crate::kmip::CryptographicAlgorithm::AES,
            SecretBytes::new(vec![9; 32]),
        );
        let object = crate::kmip::object::ManagedObject::SymmetricKey { key_block: material }.into_item();
        let uid = keys
            .create("g1", ObjectType::SYMMETRIC_KEY, &object, Vec::new(), 100)
            .await
            .unwrap();
        (keys, store, uid)
    }

    #[tokio::test]
    async fn a_record_moved_in_the_store_does_not_open_and_keys_move_re_seals() {
        let (keys, store, uid) = service_with_key().await;
        let mut record = store.get(&uid).await.unwrap().unwrap();
        record.group = "g2".into();
        store.update(&record, record.version).await.unwrap();
        let g2 = Caller::for_tests("b", "g2");
        let visible = keys.load(&g2, &uid, 200).await.unwrap();
        assert!(matches!(keys.open(&visible).await, Err(KeyError::Corrupt { .. })));

        // Back in its group it opens; moved by the key service, it opens for g2.
        let mut record = store.get(&uid).await.unwrap().unwrap();
        record.group = "g1".into();
        store.update(&record, record.version).await.unwrap();
        assert_eq!(keys.move_to_group(&uid, "g2", 300).await.unwrap(), "g1");
        let visible = keys.load(&g2, &uid, 400).await.unwrap();
        assert!(keys.open(&visible).await.is_ok());
    }

    #[tokio::test]
    async fn a_seal_made_before_the_group_was_bound_still_opens() {
        let (keys, store, uid) = service_with_key().await;
        // The same material, sealed the way earlier builds did (no group).
        let mut record = store.get(&uid).await.unwrap().unwrap();
        let bound = seal_aad(&uid, ObjectType::SYMMETRIC_KEY, 1, "g1");
        let plaintext = record.sealed.strip_prefix(bound.as_slice()).unwrap().to_vec();
        record.sealed = [legacy_seal_aad(&uid, ObjectType::SYMMETRIC_KEY, 1), plaintext].concat();
        store.update(&record, record.version).await.unwrap();
        let g1 = Caller::for_tests("a", "g1");
        let visible = keys.load(&g1, &uid, 200).await.unwrap();
        assert!(keys.open(&visible).await.is_ok());
    }
}
