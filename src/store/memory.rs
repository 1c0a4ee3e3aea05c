//! In-memory backend, for unit tests of upper layers. Not durable; it still
//! passes the conformance suite so that tests against it mean something.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{Capabilities, Export, Query, Record, Store, StoreError, StoreFuture};

/// A store that keeps records in a map guarded by a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<String, Record>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, BTreeMap<String, Record>>, StoreError> {
        // A poisoned lock means a panic mid-mutation; refuse rather than serve
        // a possibly half-updated map.
        self.records
            .lock()
            .map_err(|_| StoreError::Other("memory store lock poisoned".into()))
    }

    fn create_now(&self, record: &Record) -> Result<(), StoreError> {
        let mut records = self.lock()?;
        if let Some(existing) = records.get(&record.uid) {
            return if existing.same_content(record) {
                Ok(())
            } else {
                Err(StoreError::Conflict(crate::store::Conflict::Exists))
            };
        }
        let mut stored = record.clone();
        stored.version = 1;
        stored.normalize_index();
        records.insert(stored.uid.clone(), stored);
        Ok(())
    }

    fn update_now(&self, record: &Record, expected_version: u64) -> Result<u64, StoreError> {
        let mut records = self.lock()?;
        let existing = records.get_mut(&record.uid).ok_or(StoreError::NotFound)?;
        if existing.version != expected_version {
            return Err(StoreError::Conflict(crate::store::Conflict::Version));
        }
        let new_version = expected_version
            .checked_add(1)
            .ok_or_else(|| StoreError::Other("record version overflow".into()))?;
        let mut stored = record.clone();
        stored.version = new_version;
        stored.created_at = existing.created_at;
        stored.normalize_index();
        *existing = stored;
        Ok(new_version)
    }

    fn delete_now(&self, uid: &str, expected_version: Option<u64>) -> Result<bool, StoreError> {
        let mut records = self.lock()?;
        match records.get(uid) {
            None => Ok(false),
            Some(existing) if expected_version.is_some_and(|v| v != existing.version) => {
                Err(StoreError::Conflict(crate::store::Conflict::Version))
            }
            Some(_) => Ok(records.remove(uid).is_some()),
        }
    }

    fn find_now(&self, query: &Query) -> Result<Vec<String>, StoreError> {
        Ok(query.select(self.lock()?.values()))
    }

    fn count_by_crk_now(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        Ok(super::query::count_by_crk(self.lock()?.values()))
    }

    fn list_page_now(&self, after_uid: Option<&str>, limit: usize) -> Result<Vec<Record>, StoreError> {
        use std::ops::Bound;
        let records = self.lock()?;
        let lower = match after_uid {
            Some(uid) => Bound::Excluded(uid),
            None => Bound::Unbounded,
        };
        Ok(records
            .range::<str, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }
}

impl Store for MemoryStore {
    fn create<'a>(&'a self, record: &'a Record) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.create_now(record) })
    }

    fn get<'a>(&'a self, uid: &'a str) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move { Ok(self.lock()?.get(uid).cloned()) })
    }

    fn update<'a>(&'a self, record: &'a Record, expected_version: u64) -> StoreFuture<'a, u64> {
        Box::pin(async move { self.update_now(record, expected_version) })
    }

    fn delete<'a>(&'a self, uid: &'a str, expected_version: Option<u64>) -> StoreFuture<'a, bool> {
        Box::pin(async move { self.delete_now(uid, expected_version) })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compare_and_swap: true,
            server_side_query: true,
            mutable_records: true,
            max_record_bytes: None,
            atomic_import: true,
            local: true,
        }
    }

    fn find<'a>(&'a self, query: &'a Query) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move { self.find_now(query) })
    }

    fn count_by_crk(&self) -> StoreFuture<'_, BTreeMap<u32, u64>> {
        Box::pin(async move { self.count_by_crk_now() })
    }

    fn list_page<'a>(&'a self, after_uid: Option<&'a str>, limit: usize) -> StoreFuture<'a, Vec<Record>> {
        Box::pin(async move { self.list_page_now(after_uid, limit) })
    }

    fn health(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.lock().map(|_| ()) })
    }

    fn export(&self, page_size: usize) -> StoreFuture<'_, Export> {
        Box::pin(async move {
            let records: Vec<Record> = self.lock()?.values().cloned().collect();
            Ok(Export::from_records(records, page_size))
        })
    }

    fn import(&self, mut records: Export, replace: bool) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            // Gathered first, applied under one lock: all or nothing.
            let mut incoming = BTreeMap::new();
            while let Some(page) = records.next_page().await? {
                for mut record in page {
                    if record.version == 0 {
                        return Err(StoreError::Corrupt("imported record has version 0".into()));
                    }
                    record.normalize_index();
                    if incoming.insert(record.uid.clone(), record).is_some() {
                        return Err(StoreError::Conflict(crate::store::Conflict::Exists));
                    }
                }
            }
            let mut stored = self.lock()?;
            if replace {
                stored.clear();
            } else if incoming.keys().any(|uid| stored.contains_key(uid)) {
                return Err(StoreError::Conflict(crate::store::Conflict::Exists));
            }
            let count = incoming.len() as u64;
            stored.append(&mut incoming);
            Ok(count)
        })
    }
}
