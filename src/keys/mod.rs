//! The key service: envelope encryption and the object lifecycle.
//!
//! This is the only place where plaintext key material exists outside the HSM.
//! A new object's material is encoded (as the TTLV of the managed object),
//! sealed under the current root key (CRK) with additional data binding the
//! object's identity, and stored; `open` reverses that for one request and the
//! plaintext lives only in zeroizing buffers.

pub mod admin;
pub mod backup_mac;
mod binding;
mod error;
pub mod lifecycle;
mod locate;
#[cfg(test)]
mod locate_tests;
mod object;
pub mod rotate;
#[cfg(test)]
mod testing;
mod undo;

use std::sync::{Arc, RwLock};

pub use error::{Corruption, KeyError};
pub use locate::matches_filter;
pub use object::{StoredObject, is_custom, names};

use crate::auth::Caller;
use crate::hsm::{AsyncHsm, CrkVersion};
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
/// Candidates read from the store in one step while Locate walks a page.
const LOCATE_READ_CHUNK: usize = 64;

/// Proof that the caller's group may see an object, and the object's
/// metadata as loaded. Only [`KeyService::load`] makes one, after comparing the
/// record's group with the caller's; opening, changing and destroying an
/// object take it, so no path reaches key material without that check.
#[derive(Debug)]
pub struct Visible {
    object: StoredObject,
    /// The material its seal held when it was loaded (empty for an object
    /// without material): the load opened the seal to check the binding, so
    /// a Get needs no second HSM call.
    material: SecretBytes,
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
        self.create_as(new_uid(), group, object_type, object, attributes, now)
            .await
    }

    /// [`KeyService::create`] under an identifier from [`new_uid`], for
    /// objects whose attributes name each other (a key pair's Links).
    pub async fn create_as(
        &self,
        uid: String,
        group: &str,
        object_type: ObjectType,
        object: &Item,
        attributes: Vec<Attribute>,
        now: i64,
    ) -> Result<String, KeyError> {
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
        let mut plaintext = Vec::with_capacity(ttlv::encoded_len(object));
        ttlv::encode(object, &mut plaintext);
        let plaintext = SecretBytes::new(plaintext);
        let mut record = stored.to_record(now);
        self.bind_record(&mut record, 1, plaintext).await?;
        self.store.create(&record).await?;
        Ok(())
    }

    /// The object's metadata, if the caller's group may see it: the
    /// [`Visible`] proof that [`KeyService::open`], [`KeyService::update`] and
    /// [`KeyService::destroy`] require.
    pub async fn load(&self, caller: &Caller, uid: &str, now: i64) -> Result<Visible, KeyError> {
        self.load_in(caller.group(), uid, now).await
    }

    /// The group check itself: the only place a [`Visible`] is made. The
    /// record's seal is opened here, so a record changed outside keyward is
    /// refused before anything of it is used.
    async fn load_in(&self, group: &str, uid: &str, now: i64) -> Result<Visible, KeyError> {
        let record = self.store.get(uid).await?.ok_or(KeyError::NotFound)?;
        if record.group != group {
            return Err(KeyError::NotFound);
        }
        let opened = self.open_record(&record).await?;
        let mut object = StoredObject::from_record(record)?;
        object.refresh_state(now);
        self.remember_x_name(&object);
        Ok(Visible {
            object,
            material: opened.material,
        })
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

    /// The managed object, key material and all, of an object the caller may
    /// see (its seal was opened by the load).
    pub async fn open(&self, object: &Visible) -> Result<ManagedObject, KeyError> {
        if !object.has_material() || object.material.expose().is_empty() {
            return Err(KeyError::WrongState(object.state));
        }
        decode_material(&object.uid, &object.material)
    }

    /// Gives an object to another group (an administrator's `keys move`): its
    /// material is re-sealed under the new group's binding and stored with
    /// compare-and-swap. Returns the group it was in.
    pub async fn move_to_group(&self, uid: &str, group: &str, now: i64) -> Result<String, KeyError> {
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let record = self.store.get(uid).await?.ok_or(KeyError::NotFound)?;
            let opened = self.open_record(&record).await?;
            let mut object = StoredObject::from_record(record)?;
            if object.group == group {
                return Err(KeyError::Invalid(format!("the key is already in group {group}")));
            }
            let expected = object.record_version;
            let from = std::mem::replace(&mut object.group, group.to_owned());
            object.set_single(names::LAST_CHANGE_DATE, Value::DateTime(now));
            match self.store_change(&object, opened.material, expected, now).await {
                Ok(()) => return Ok(from),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(KeyError::Contended)
    }

    /// Binds `object` as it will be stored at `expected + 1` and stores it with
    /// compare-and-swap. `material` is what its seal held; an object whose
    /// state no longer holds material is sealed with nothing.
    async fn store_change(
        &self,
        object: &StoredObject,
        material: SecretBytes,
        expected: u64,
        now: i64,
    ) -> Result<(), KeyError> {
        let mut record = object.to_record(now);
        check_attribute_bounds(object, &record)?;
        let material = match lifecycle::material_available(object.state) {
            true => material,
            false => SecretBytes::new(Vec::new()),
        };
        let version = expected
            .checked_add(1)
            .ok_or_else(|| KeyError::corrupt(&object.uid, Corruption::BindingBroken))?;
        self.bind_record(&mut record, version, material).await?;
        self.store.update(&record, expected).await?;
        Ok(())
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
        let Visible {
            mut object,
            mut material,
        } = target;
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            if attempt > 0 {
                let fresh = self.load_in(&object.group, &object.uid, now).await?;
                object = fresh.object;
                material = fresh.material;
            }
            let expected = object.record_version;
            let before = object.state;
            let result = change(&mut object)?;
            object.set_single(names::LAST_CHANGE_DATE, Value::DateTime(now));
            // The material stays with this attempt: a lost race reloads it.
            let sealing = SecretBytes::from_slice(material.expose());
            match self.store_change(&object, sealing, expected, now).await {
                Ok(()) => {
                    self.state_changed(Some(before), Some(object.state));
                    return Ok(result);
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(KeyError::Contended)
    }

    /// Destroys the material of an object the caller may see; its metadata
    /// stays, in state Destroyed (or Destroyed Compromised), with a Destroy Date.
    pub async fn destroy(&self, target: Visible, now: i64) -> Result<(), KeyError> {
        self.update(target, now, |object| {
            // The new state holds no material: the change seals nothing.
            let next = lifecycle::destroy(object.state).map_err(transition_error)?;
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
        // A remote store's index is a local copy: it may count and page, but
        // every uid it names is read through and checked before it is answered.
        let remote = !self.store.capabilities().local;
        if exact {
            let total = match count_all {
                true => Some(usize::try_from(self.store.count(&query).await?).unwrap_or(usize::MAX)),
                false => None,
            };
            query.offset = offset;
            query.limit = Some(max);
            let mut found = if max == 0 {
                Vec::new()
            } else {
                self.store.find(&query).await?
            };
            if remote {
                let mut checked = Vec::with_capacity(found.len());
                for uid in found {
                    if self.still_matches(group, &uid, filter, now).await? {
                        checked.push(uid);
                    }
                }
                found = checked;
            }
            return Ok((found, total));
        }
        // The walk filters each candidate as the store (or this node's index)
        // holds it, without the HSM; over a remote store only the ones it
        // answers with are read through, seal opened, and checked again. A
        // filter that matches few of many objects costs store reads, not HSM
        // calls.
        let mut found = Vec::new();
        let mut matched = 0usize;
        query.limit = Some(LOCATE_PAGE);
        loop {
            if !count_all && found.len() >= max {
                return Ok((found, None));
            }
            let page = self.store.find(&query).await?;
            // Candidates are read a chunk at a time in one store step each;
            // the walk stops as soon as `max` are found.
            'chunks: for chunk in page.chunks(LOCATE_READ_CHUNK) {
                let records = self.store.get_indexed_many(chunk).await?;
                for (uid, record) in chunk.iter().zip(records) {
                    if !count_all && found.len() >= max {
                        break 'chunks;
                    }
                    let Some(record) = record else {
                        continue;
                    };
                    if record.group != group {
                        continue;
                    }
                    let Ok(mut object) = StoredObject::from_record(record) else {
                        continue;
                    };
                    object.refresh_state(now);
                    if !matches_filter(&object, filter) {
                        continue;
                    }
                    // Over the embedded store the record just read is the truth:
                    // a Get of what Locate answers checks its binding anyway, and
                    // a Locate over a large group costs no HSM call. Over a remote
                    // store the copy may be stale: read it through first.
                    if matched >= offset
                        && found.len() < max
                        && (!remote || self.still_matches(group, uid, filter, now).await?)
                    {
                        found.push(object.uid);
                    }
                    matched += 1;
                }
            }
            if !count_all && found.len() >= max {
                return Ok((found, None));
            }
            if page.len() < LOCATE_PAGE {
                break;
            }
            query.offset = query.offset.saturating_add(LOCATE_PAGE);
        }
        Ok((found, count_all.then_some(matched)))
    }

    /// Loads `uid` for `group` (read through, seal opened) and checks `filter`
    /// on it: what Locate answers with. Gone meanwhile, or changed outside
    /// keyward (refused, and audited, when a client asks for it by id): not
    /// answered.
    async fn still_matches(
        &self,
        group: &str,
        uid: &str,
        filter: &[Attribute],
        now: i64,
    ) -> Result<bool, KeyError> {
        match self.load_in(group, uid, now).await {
            Ok(visible) => Ok(matches_filter(&visible.object, filter)),
            Err(KeyError::NotFound | KeyError::Corrupt { .. }) => Ok(false),
            Err(e) => Err(e),
        }
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

/// A lost compare-and-swap: the change is tried again on a fresh load.
fn is_conflict(e: &KeyError) -> bool {
    matches!(e, KeyError::Store(s) if s.is_conflict())
}

/// The managed object an opened seal holds. The plaintext is decoded once and
/// the tree's material moves into the object (no further copy).
fn decode_material(uid: &str, material: &SecretBytes) -> Result<ManagedObject, KeyError> {
    let tree = ttlv::decode(material.expose())
        .map_err(|e| KeyError::corrupt(uid, Corruption::MaterialUndecodable(e)))?;
    ManagedObject::from_tree(tree).map_err(|e| KeyError::corrupt(uid, Corruption::MaterialInvalid(e)))
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
/// A fresh unique identifier for a managed object (a random UUID).
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

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
