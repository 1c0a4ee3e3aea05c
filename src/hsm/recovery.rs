//! The recovery master in the token, and root keys derived from it.
//!
//! The master is an AES-256 key imported once (from the custodians' shares,
//! see [`super::custodian`]) as a token object that is sensitive, never
//! extractable and usable only to derive. While it is in the token, a new
//! root key version is not generated but derived inside the token with
//! `CKM_AES_CBC_ENCRYPT_DATA` (AES-256-CBC of a fixed, per-version block pair
//! under the master, zero IV): the same master gives the same root keys in any
//! token, and the derived key has the attributes of a generated one (sensitive,
//! never extractable, encrypt/decrypt only).
//!
//! What this trades: a root key retired from the token can be derived again by
//! whoever holds the threshold of shares, so retiring it no longer shreds the
//! backups sealed under it for them (README, "Root-key recovery").

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::ekdf::AesCbcDeriveParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::CrkVersion;
use crate::secret::SecretBytes;

/// Label and id of the master object.
const MASTER_LABEL: &str = "keyward-recovery-master";
const MASTER_ID: &[u8] = b"keyward-recovery";

/// The master's handle, if the token holds one.
pub(super) fn find_master(session: &Session) -> Result<Option<ObjectHandle>, CkError> {
    let found = session.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(MASTER_LABEL.as_bytes().to_vec()),
        Attribute::Id(MASTER_ID.to_vec()),
    ])?;
    Ok(found.first().copied())
}

/// Imports `master` as a token object that can only derive.
pub(super) fn import_master(session: &Session, master: &SecretBytes) -> Result<ObjectHandle, CkError> {
    session.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(master.expose().to_vec()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(true),
        Attribute::Label(MASTER_LABEL.as_bytes().to_vec()),
        Attribute::Id(MASTER_ID.to_vec()),
    ])
}

/// The two blocks encrypted under the master to make root key `crk`.
fn derivation_data(crk: CrkVersion) -> [u8; 32] {
    let mut data = [0u8; 32];
    let tag = b"keyward root key version";
    data[..tag.len()].copy_from_slice(tag);
    data[28..].copy_from_slice(&crk.0.to_be_bytes());
    data
}

/// Derives root key `crk` from the master, with the given CRK template.
pub(super) fn derive_crk(
    session: &Session,
    master: ObjectHandle,
    crk: CrkVersion,
    template: &[Attribute],
) -> Result<ObjectHandle, CkError> {
    let data = derivation_data(crk);
    let params = AesCbcDeriveParams::new([0u8; 16], &data);
    // CKA_MODIFIABLE = false goes last: SoftHSM applies a derivation's
    // template in order and refuses every attribute after it (read-only).
    let (modifiable, mut template): (Vec<Attribute>, Vec<Attribute>) = template
        .iter()
        .cloned()
        .partition(|a| matches!(a, Attribute::Modifiable(_)));
    template.extend(modifiable);
    session.derive_key(&Mechanism::AesCbcEncryptData(params), master, &template)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_derives_from_its_own_data() {
        assert_ne!(derivation_data(CrkVersion(1)), derivation_data(CrkVersion(2)));
        assert_eq!(&derivation_data(CrkVersion(0x0102_0304))[28..], &[1, 2, 3, 4]);
    }
}
