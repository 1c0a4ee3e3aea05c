//! Binding every record to the HSM (DESIGN §5; issue 9 item 4).
//!
//! The store is trusted to keep records, not to keep them intact: a cloud key
//! manager's operator, or the customer, can read, delete and rewrite any record.
//! So everything that decides who gets a key and in which state is bound under
//! the root key: the record's seal is AES-GCM under the CRK (in the HSM) with
//! additional data that covers the uid, object type, CRK version, group, state,
//! record version, creation and change times, and digests of the attributes and
//! the search index ([`record_aad`]). Every read of a record opens its seal, so
//! an edited field, a record moved to another group, a blob swapped from
//! another record or a record whose version number was raised does not open and
//! is refused ([`Corruption::BindingBroken`]). A record without key material (a
//! destroyed one) carries a seal of nothing, which binds it all the same.
//!
//! What the binding cannot tell: an *older* record written back whole (each of
//! its versions was bound when keyward wrote it). The local index of a remote
//! store remembers the highest version each node has seen and refuses older
//! ones (store::indexed); a store rolled back before a node ever saw the newer
//! version is not detected. A backup file is covered as a whole by its
//! manifest (`backup_mac`). Records written by earlier builds (seal v1: uid and
//! type; v2: and group) still open, unbound in their other fields, until their
//! next change or `keyward root rotate` binds them.

use aws_lc_rs::digest::{Context, SHA256, digest};

use super::{Corruption, KeyError, KeyService, lifecycle};
use crate::hsm::{CrkVersion, HsmError};
use crate::kmip::{ObjectType, State};
use crate::secret::SecretBytes;
use crate::store::Record;

/// The additional data of a record's seal (v3): every field of `record` but the
/// seal itself, with `version` as the record version it is stored at.
pub(super) fn record_aad(record: &Record, version: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(160 + record.uid.len() + record.group.len());
    aad.extend_from_slice(b"keyward-record-v3\0");
    put_text(&mut aad, &record.uid);
    aad.extend_from_slice(&record.object_type.to_be_bytes());
    aad.extend_from_slice(&record.crk_version.to_be_bytes());
    put_text(&mut aad, &record.group);
    aad.extend_from_slice(&record.state.to_be_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&record.created_at.to_be_bytes());
    aad.extend_from_slice(&record.updated_at.to_be_bytes());
    aad.extend_from_slice(digest(&SHA256, &record.attributes).as_ref());
    // The index as every backend returns it: sorted, without duplicates.
    let mut index: Vec<_> = record.index.iter().collect();
    index.sort();
    index.dedup();
    let mut entries = Context::new(&SHA256);
    for entry in index {
        entries.update(&(entry.name.len() as u64).to_be_bytes());
        entries.update(entry.name.as_bytes());
        entries.update(&(entry.value.len() as u64).to_be_bytes());
        entries.update(entry.value.as_bytes());
    }
    aad.extend_from_slice(entries.finish().as_ref());
    aad
}

fn put_text(aad: &mut Vec<u8>, text: &str) {
    aad.extend_from_slice(&(text.len() as u32).to_be_bytes());
    aad.extend_from_slice(text.as_bytes());
}

/// The additional data of seals made before the whole record was bound (v2:
/// identity and group). Such a blob still opens until it is bound again.
pub(super) fn group_seal_aad(uid: &str, object_type: ObjectType, crk: u32, group: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40 + uid.len() + group.len());
    aad.extend_from_slice(b"keyward-object-v2\0");
    put_text(&mut aad, uid);
    aad.extend_from_slice(&object_type.0.to_be_bytes());
    aad.extend_from_slice(&crk.to_be_bytes());
    put_text(&mut aad, group);
    aad
}

/// The additional data of the first seals (v1: identity only).
pub(super) fn identity_seal_aad(uid: &str, object_type: ObjectType, crk: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + uid.len());
    aad.extend_from_slice(b"keyward-object-v1\0");
    put_text(&mut aad, uid);
    aad.extend_from_slice(&object_type.0.to_be_bytes());
    aad.extend_from_slice(&crk.to_be_bytes());
    aad
}

/// A record whose seal opened: its key material (empty for a record without
/// any), and whether the seal was an earlier build's, which binds only the
/// identity (and group).
pub(super) struct Opened {
    pub material: SecretBytes,
    pub legacy: bool,
}

impl KeyService {
    /// Opens `record`'s seal under its binding; a record whose fields are not
    /// the ones keyward sealed is [`Corruption::BindingBroken`].
    pub(super) async fn open_record(&self, record: &Record) -> Result<Opened, KeyError> {
        let crk = CrkVersion(record.crk_version);
        let object_type = ObjectType(record.object_type);
        if record.sealed.is_empty() {
            // Only an object destroyed by an earlier build has no seal at all.
            return match lifecycle::material_available(State(record.state)) {
                true => Err(KeyError::corrupt(&record.uid, Corruption::BindingBroken)),
                false => Ok(Opened {
                    material: SecretBytes::new(Vec::new()),
                    legacy: true,
                }),
            };
        }
        // The blob goes to an HSM worker by value: one copy per attempt; the
        // later attempts only for records an earlier build sealed (or tampered).
        let attempts = [
            (record_aad(record, record.version), false),
            (
                group_seal_aad(&record.uid, object_type, crk.0, &record.group),
                true,
            ),
            (identity_seal_aad(&record.uid, object_type, crk.0), true),
        ];
        for (aad, legacy) in attempts {
            match self.hsm.unseal(crk, aad, record.sealed.clone()).await {
                Ok(material) => return Ok(Opened { material, legacy }),
                Err(HsmError::BadBlob) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(KeyError::corrupt(&record.uid, Corruption::BindingBroken))
    }

    /// Seals `material` (empty for an object without material) bound to
    /// `record` as it will be stored at record version `version`, under the
    /// record's CRK, and puts the seal in the record.
    pub(super) async fn bind_record(
        &self,
        record: &mut Record,
        version: u64,
        material: SecretBytes,
    ) -> Result<(), KeyError> {
        let crk = CrkVersion(record.crk_version);
        record.sealed = self.hsm.seal(crk, record_aad(record, version), material).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::service_with_key;
    use super::*;
    use crate::auth::Caller;
    use crate::store::{IndexEntry, MemoryStore, Store};

    fn is_broken(result: Result<super::super::Visible, KeyError>) -> bool {
        matches!(
            result,
            Err(KeyError::Corrupt {
                problem: Corruption::BindingBroken,
                ..
            })
        )
    }

    /// Rewrites the stored record with `edit` applied, as the store's operator could.
    async fn tamper(store: &MemoryStore, uid: &str, edit: impl FnOnce(&mut Record)) {
        let mut record = store.get(uid).await.unwrap().unwrap();
        edit(&mut record);
        store.update(&record, record.version).await.unwrap();
    }

    #[tokio::test]
    async fn every_field_an_operator_can_edit_is_bound() {
        let g1 = Caller::for_tests("a", "g1");
        type Edit = fn(&mut Record);
        let edits: [(&str, Edit); 8] = [
            ("state", |r| r.state = State::ACTIVE.0),
            ("object type", |r| r.object_type = ObjectType::SECRET_DATA.0),
            ("crk version", |r| r.crk_version = 2),
            ("created at", |r| r.created_at += 1),
            ("updated at", |r| r.updated_at += 1),
            ("attributes", |r| r.attributes.push(0)),
            ("index", |r| r.index.push(IndexEntry::new("x-Name", "other-vm"))),
            ("seal", |r| {
                let last = r.sealed.len() - 1;
                r.sealed[last] ^= 1;
            }),
        ];
        for (what, edit) in edits {
            let (keys, store, uid) = service_with_key().await;
            assert!(
                keys.load(&g1, &uid, 200).await.is_ok(),
                "{what}: untouched record"
            );
            tamper(&store, &uid, edit).await;
            assert!(
                is_broken(keys.load(&g1, &uid, 200).await),
                "{what}: edit not refused"
            );
        }
    }

    #[tokio::test]
    async fn a_raised_version_and_a_swapped_seal_are_refused() {
        let g1 = Caller::for_tests("a", "g1");
        let (keys, store, uid) = service_with_key().await;
        // The memory store raises the version on every update: the record is
        // rewritten unchanged, as an operator replaying it would.
        tamper(&store, &uid, |_| {}).await;
        assert!(is_broken(keys.load(&g1, &uid, 200).await), "version raised");

        let (keys, store, a) = service_with_key().await;
        let material = crate::kmip::object::KeyBlock::raw(
            crate::kmip::CryptographicAlgorithm::AES,
            SecretBytes::new(vec![3; 32]),
        );
        let object = crate::kmip::object::ManagedObject::SymmetricKey { key_block: material }.into_item();
        let b = keys
            .create("g1", ObjectType::SYMMETRIC_KEY, &object, Vec::new(), 100)
            .await
            .unwrap();
        let sealed_a = store.get(&a).await.unwrap().unwrap().sealed;
        tamper(&store, &b, |r| r.sealed = sealed_a).await;
        assert!(is_broken(keys.load(&g1, &b, 200).await), "swapped seal");
    }

    #[tokio::test]
    async fn a_record_moved_in_the_store_is_refused_and_keys_move_rebinds() {
        let (keys, store, uid) = service_with_key().await;
        tamper(&store, &uid, |r| r.group = "g2".into()).await;
        let g2 = Caller::for_tests("b", "g2");
        assert!(is_broken(keys.load(&g2, &uid, 200).await));
        // Back in its group (at the raised version) it is still refused: only
        // the key service's own writes bind.
        tamper(&store, &uid, |r| r.group = "g1".into()).await;
        let g1 = Caller::for_tests("a", "g1");
        assert!(is_broken(keys.load(&g1, &uid, 200).await));
    }

    #[tokio::test]
    async fn changes_through_the_service_stay_bound_and_destroyed_objects_too() {
        let (keys, _store, uid) = service_with_key().await;
        let g1 = Caller::for_tests("a", "g1");
        assert_eq!(keys.move_to_group(&uid, "g2", 300).await.unwrap(), "g1");
        let g2 = Caller::for_tests("b", "g2");
        let visible = keys.load(&g2, &uid, 400).await.unwrap();
        assert!(keys.open(&visible).await.is_ok());
        assert!(matches!(keys.load(&g1, &uid, 400).await, Err(KeyError::NotFound)));
        keys.destroy(visible, 500).await.unwrap();
        let destroyed = keys.load(&g2, &uid, 600).await.unwrap();
        assert!(!destroyed.has_material());
        assert!(matches!(
            keys.open(&destroyed).await,
            Err(KeyError::WrongState(_))
        ));
    }

    #[tokio::test]
    async fn seals_made_by_earlier_builds_still_open_and_are_bound_on_the_next_change() {
        let (keys, store, uid) = service_with_key().await;
        let record = store.get(&uid).await.unwrap().unwrap();
        let bound = record_aad(&record, record.version);
        let plaintext = record.sealed.strip_prefix(bound.as_slice()).unwrap().to_vec();
        for legacy in [
            group_seal_aad(&uid, ObjectType::SYMMETRIC_KEY, 1, "g1"),
            identity_seal_aad(&uid, ObjectType::SYMMETRIC_KEY, 1),
        ] {
            let blob = [legacy.as_slice(), &plaintext].concat();
            tamper(&store, &uid, |r| r.sealed = blob).await;
            let g1 = Caller::for_tests("a", "g1");
            let visible = keys.load(&g1, &uid, 200).await.unwrap();
            assert!(keys.open(&visible).await.is_ok());
            keys.update(visible, 300, |_| Ok(())).await.unwrap();
            let rebound = store.get(&uid).await.unwrap().unwrap();
            assert!(
                rebound.sealed.starts_with(&record_aad(&rebound, rebound.version)),
                "the change bound the record"
            );
        }
    }
}
