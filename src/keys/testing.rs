//! A key service over an HSM stand-in and a memory store, for unit tests.

use std::sync::Arc;

use super::KeyService;
use crate::hsm::{AsyncHsm, CrkVersion, Hsm, HsmError, HsmStatus};
use crate::kmip::ObjectType;
use crate::secret::SecretBytes;
use crate::store::{MemoryStore, Store};

/// Seals as `aad || plaintext` and opens only under the same AAD: enough to
/// see which binding a blob carries.
#[derive(Default)]
pub(super) struct PrefixHsm {
    /// Unseal calls so far (tests bound the HSM work of a request).
    pub(super) unseals: std::sync::atomic::AtomicUsize,
}

impl Hsm for PrefixHsm {
    fn seal(&self, _: CrkVersion, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        Ok([aad, plaintext].concat())
    }
    fn unseal(&self, _: CrkVersion, aad: &[u8], blob: &[u8]) -> Result<SecretBytes, HsmError> {
        self.unseals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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

pub(super) async fn service_with_key() -> (KeyService, Arc<MemoryStore>, String) {
    let store = Arc::new(MemoryStore::new());
    let hsm = AsyncHsm::new(Arc::new(PrefixHsm::default()), std::time::Duration::from_secs(5));
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

/// A key service over `store` and a counting [`PrefixHsm`].
pub(super) fn service_over(store: Arc<dyn Store>) -> (KeyService, Arc<PrefixHsm>) {
    let hsm = Arc::new(PrefixHsm::default());
    let keys = KeyService::new(
        AsyncHsm::new(
            Arc::clone(&hsm) as Arc<dyn Hsm>,
            std::time::Duration::from_secs(5),
        ),
        store,
        CrkVersion(1),
    );
    (keys, hsm)
}

/// A new AES key in `group` with these attributes; its uid.
pub(super) async fn create_key(
    keys: &KeyService,
    group: &str,
    attributes: Vec<crate::kmip::attribute::Attribute>,
) -> String {
    let material = crate::kmip::object::KeyBlock::raw(
        crate::kmip::CryptographicAlgorithm::AES,
        SecretBytes::new(vec![9; 32]),
    );
    let object = crate::kmip::object::ManagedObject::SymmetricKey { key_block: material }.into_item();
    keys.create(group, ObjectType::SYMMETRIC_KEY, &object, attributes, 100)
        .await
        .unwrap()
}
