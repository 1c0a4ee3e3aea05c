//! What administrators do to keys (`keyward keys …`): find them across every
//! group, look at one, move it to another group, revoke or destroy it.
//!
//! Unlike the KMIP path these are not restricted to a caller's group. Looking
//! (list, show) needs only the store, so the command-line tool does it without
//! the HSM, next to a running server; what it shows is the record as stored,
//! unverified. Changing (revoke, destroy, move) re-binds the record under the
//! HSM, so those are [`KeyService`] methods. The server reads the store on
//! every request, so it sees each change at once.

use std::sync::Arc;

use super::object::{StoredObject, names};
use super::{KeyError, KeyService, MAX_UPDATE_ATTEMPTS, lifecycle, transition_error};
use crate::kmip::attribute::RevocationReason;
use crate::kmip::{State, tags};
use crate::store::{IndexEntry, Query, Store, StoreError};
use crate::ttlv::Value;

/// Keys read and printed at a time by `keyward keys list`.
pub const LIST_PAGE: usize = 1000;

/// Which keys `keyward keys list` shows; every given criterion must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryFilter {
    /// The state now (dates that have passed count, as for a client).
    pub state: Option<State>,
    /// The access group the key belongs to.
    pub group: Option<String>,
    /// The trust entry name of the client that created or registered it.
    pub created_by: Option<String>,
    /// A KMIP Name of the key.
    pub name: Option<String>,
    /// vCenter's tags: `x-Name`, `x-Identifier`, `x-Component` (exact values).
    pub x_name: Option<String>,
    pub x_identifier: Option<String>,
    pub x_component: Option<String>,
    /// Created at or after (unix seconds).
    pub created_after: Option<i64>,
    /// Created at or before (unix seconds).
    pub created_before: Option<i64>,
}

impl InventoryFilter {
    /// The store query: everything but the state goes to the index, so a large
    /// store is not scanned for the common questions ("the key of VM x").
    fn query(&self) -> Query {
        let mut index = Vec::new();
        let mut add = |name: &str, value: &Option<String>| {
            if let Some(v) = value {
                index.push(IndexEntry::new(name, v.clone()));
            }
        };
        add(names::CREATED_BY, &self.created_by);
        add(names::NAME, &self.name);
        add("x-Name", &self.x_name);
        add("x-Identifier", &self.x_identifier);
        add("x-Component", &self.x_component);
        Query {
            group: self.group.clone(),
            index,
            created_after: self.created_after,
            created_before: self.created_before,
            ..Query::default()
        }
    }
}

/// The administrators' view of the key store.
#[derive(Clone)]
pub struct KeyAdmin {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for KeyAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyAdmin")
    }
}

impl KeyService {
    /// The administrators' view of this service's store.
    pub fn admin(&self) -> KeyAdmin {
        KeyAdmin::new(Arc::clone(&self.store))
    }
}

impl KeyAdmin {
    pub fn new(store: Arc<dyn Store>) -> KeyAdmin {
        KeyAdmin { store }
    }

    /// Every key matching `filter`, any group, in creation order.
    pub async fn list(&self, filter: &InventoryFilter, now: i64) -> Result<Vec<StoredObject>, KeyError> {
        let mut out = Vec::new();
        self.list_pages(filter, now, LIST_PAGE, |page| {
            out.extend(page);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// [`KeyAdmin::list`] a page of at most `page_size` keys at a time, each
    /// given to `each` as soon as it is read: the first lines of a million-key
    /// inventory are out at once, and memory holds one page. Pages follow
    /// creation time (keyset paging on it, so no page costs more than the
    /// ones before it); keys created meanwhile may or may not appear.
    pub async fn list_pages(
        &self,
        filter: &InventoryFilter,
        now: i64,
        page_size: usize,
        mut each: impl FnMut(Vec<StoredObject>) -> Result<(), KeyError>,
    ) -> Result<(), KeyError> {
        let page_size = page_size.max(1);
        // Keys at the last creation second already given: a second can hold
        // many keys, and the next page starts at that second again.
        let mut at: Option<i64> = None;
        let mut given_at: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            let mut query = filter.query();
            if let Some(t) = at {
                query.created_after = Some(query.created_after.map_or(t, |a| a.max(t)));
            }
            let limit = page_size + given_at.len();
            query.limit = Some(limit);
            let uids = self.store.find(&query).await?;
            let fetched = uids.len();
            let fresh: Vec<String> = uids.into_iter().filter(|u| !given_at.contains(u)).collect();
            if fresh.is_empty() {
                return Ok(());
            }
            let mut page = Vec::with_capacity(fresh.len());
            for uid in fresh {
                let object = match self.load(&uid, now).await {
                    Ok(o) => o,
                    // Gone between find and get: not part of the answer.
                    Err(KeyError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                if at != Some(object.created_at) {
                    at = Some(object.created_at);
                    given_at.clear();
                }
                given_at.insert(uid);
                if filter.state.is_none_or(|s| s == object.state) {
                    page.push(object);
                }
            }
            if !page.is_empty() {
                each(page)?;
            }
            if fetched < limit {
                return Ok(());
            }
        }
    }

    /// One key's metadata, whatever its group; destroyed keys keep theirs.
    pub async fn load(&self, uid: &str, now: i64) -> Result<StoredObject, KeyError> {
        let record = self.store.get(uid).await?.ok_or(KeyError::NotFound)?;
        let mut object = StoredObject::from_record(record)?;
        object.refresh_state(now);
        Ok(object)
    }
}

/// Changes an administrator makes. They re-bind the record under the HSM
/// (every change does), so they are the key service's: the command-line tool
/// opens the HSM for them, as it does for `keys move`.
impl KeyService {
    /// Compare-and-swap change of one key, any group; sets Last Change Date.
    async fn admin_update<R>(
        &self,
        uid: &str,
        now: i64,
        mut change: impl FnMut(&mut StoredObject) -> Result<R, KeyError>,
    ) -> Result<R, KeyError> {
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let record = self.store.get(uid).await?.ok_or(KeyError::NotFound)?;
            let opened = self.open_record(&record).await?;
            let mut object = StoredObject::from_record(record)?;
            object.refresh_state(now);
            let expected = object.record_version;
            let before = object.state;
            let result = change(&mut object)?;
            object.set_single(names::LAST_CHANGE_DATE, Value::DateTime(now));
            match self.store_change(&object, opened.material, expected, now).await {
                Ok(()) => {
                    self.state_changed(Some(before), Some(object.state));
                    return Ok(result);
                }
                Err(KeyError::Store(StoreError::Conflict(crate::store::Conflict::Version))) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(KeyError::Contended)
    }

    /// Revokes a key as KMIP Revoke does: a compromise reason makes it
    /// Compromised (with Compromise dates), any other deactivates it. Returns
    /// the new state.
    pub async fn admin_revoke(
        &self,
        uid: &str,
        reason: &RevocationReason,
        now: i64,
    ) -> Result<State, KeyError> {
        self.admin_update(uid, now, |object| {
            let next = lifecycle::revoke(object.state, reason.code).map_err(transition_error)?;
            if next == State::COMPROMISED {
                if object.date(names::COMPROMISE_DATE).is_none() {
                    object.set_single(names::COMPROMISE_DATE, Value::DateTime(now));
                }
                if object.date(names::COMPROMISE_OCCURRENCE_DATE).is_none() {
                    object.set_single(names::COMPROMISE_OCCURRENCE_DATE, Value::DateTime(now));
                }
            } else if object.date(names::DEACTIVATION_DATE).is_none_or(|d| d > now) {
                object.set_single(names::DEACTIVATION_DATE, Value::DateTime(now));
            }
            object.set_state(next);
            let value = reason.to_value(tags::ATTRIBUTE_VALUE);
            object.set_single(names::REVOCATION_REASON, value.value);
            Ok(next)
        })
        .await
    }

    /// Destroys a key's material as KMIP Destroy does (refused while Active);
    /// its metadata stays. Returns the new state.
    pub async fn admin_destroy(&self, uid: &str, now: i64) -> Result<State, KeyError> {
        self.admin_update(uid, now, |object| {
            let next = lifecycle::destroy(object.state).map_err(transition_error)?;
            object.set_state(next);
            object.set_single(names::DESTROY_DATE, Value::DateTime(now));
            Ok(next)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::RevocationReasonCode;
    use crate::kmip::attribute::Attribute;
    use crate::store::MemoryStore;

    async fn put(store: &MemoryStore, uid: &str, group: &str, created: i64, tags: &[(&str, &str)]) {
        let mut object = StoredObject {
            uid: uid.into(),
            object_type: crate::kmip::ObjectType::SYMMETRIC_KEY,
            state: State::PRE_ACTIVE,
            group: group.into(),
            attributes: Vec::new(),
            created_at: created,
            record_version: 0,
            crk_version: 1,
            sealed: vec![1, 2, 3],
        };
        object.set_state(State::ACTIVE);
        for (name, value) in tags {
            object
                .attributes
                .push(Attribute::new(*name, Value::TextString((*value).into())));
        }
        store.create(&object.to_record(created)).await.unwrap();
    }

    #[tokio::test]
    async fn filters_move_revoke_destroy() {
        let store = Arc::new(MemoryStore::new());
        put(
            &store,
            "a",
            "g1",
            100,
            &[("x-Name", "web-01"), (names::CREATED_BY, "vc1")],
        )
        .await;
        put(
            &store,
            "b",
            "g2",
            200,
            &[("x-Name", "db-01"), (names::CREATED_BY, "vc2")],
        )
        .await;
        let admin = KeyAdmin::new(store);
        let uids = |v: Vec<StoredObject>| v.into_iter().map(|o| o.uid).collect::<Vec<_>>();
        let all = InventoryFilter::default();
        assert_eq!(uids(admin.list(&all, 300).await.unwrap()), ["a", "b"]);
        let admin_ref = &admin;
        let by = |f: InventoryFilter| async move { uids(admin_ref.list(&f, 300).await.unwrap()) };
        assert_eq!(
            by(InventoryFilter {
                x_name: Some("db-01".into()),
                ..Default::default()
            })
            .await,
            ["b"]
        );
        assert_eq!(
            by(InventoryFilter {
                created_by: Some("vc1".into()),
                ..Default::default()
            })
            .await,
            ["a"]
        );
        assert_eq!(
            by(InventoryFilter {
                created_after: Some(150),
                ..Default::default()
            })
            .await,
            ["b"]
        );
        assert!(matches!(admin.load("zz", 1).await, Err(KeyError::NotFound)));
    }

    #[tokio::test]
    async fn pages_give_every_key_once_in_creation_order_across_shared_seconds() {
        let store = Arc::new(MemoryStore::new());
        // 25 keys over three seconds: pages of 4 must cross each second's run.
        for n in 0..25 {
            put(&store, &format!("k{n:02}"), "g1", 100 + n / 10, &[]).await;
        }
        let admin = KeyAdmin::new(store);
        let mut pages = Vec::new();
        admin
            .list_pages(&InventoryFilter::default(), 300, 4, |page| {
                pages.push(page.into_iter().map(|o| o.uid).collect::<Vec<_>>());
                Ok(())
            })
            .await
            .unwrap();
        assert!(pages.iter().all(|p| p.len() <= 4), "{pages:?}");
        let all: Vec<String> = pages.concat();
        let want: Vec<String> = (0..25).map(|n| format!("k{n:02}")).collect();
        assert_eq!(all, want);
        let listed: Vec<String> = admin
            .list(
                &InventoryFilter {
                    created_after: Some(101),
                    ..Default::default()
                },
                300,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.uid)
            .collect();
        assert_eq!(listed, want[10..]);
    }

    #[tokio::test]
    async fn revoke_and_destroy_rebind_the_record() {
        let (keys, store, uid) = super::super::testing::service_with_key().await;
        let active = keys.admin_update(&uid, 150, |o| {
            o.set_state(State::ACTIVE);
            Ok(())
        });
        active.await.unwrap();
        assert!(matches!(
            keys.admin_destroy(&uid, 300).await,
            Err(KeyError::NotAllowedInState(State::ACTIVE))
        ));
        let reason = RevocationReason {
            code: RevocationReasonCode::KEY_COMPROMISE,
            message: None,
        };
        assert_eq!(
            keys.admin_revoke(&uid, &reason, 300).await.unwrap(),
            State::COMPROMISED
        );
        assert_eq!(
            keys.admin_destroy(&uid, 301).await.unwrap(),
            State::DESTROYED_COMPROMISED
        );
        let admin = KeyAdmin::new(store.clone());
        let a = admin.load(&uid, 302).await.unwrap();
        assert!(!a.has_material());
        assert_eq!(a.group, "g1");
        // Still bound: the key service opens it (and finds no material).
        let record = store.get(&uid).await.unwrap().unwrap();
        let check = keys.check_record(record).await.unwrap();
        assert!(check.bound && !check.has_material);
        // Changed in the store, it is refused.
        let mut record = store.get(&uid).await.unwrap().unwrap();
        record.state = State::ACTIVE.0;
        store.update(&record, record.version).await.unwrap();
        assert!(matches!(
            keys.admin_revoke(&uid, &reason, 400).await,
            Err(KeyError::Corrupt { .. })
        ));
    }
}
