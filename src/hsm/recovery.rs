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

/// Label of the master object; its id is [`MASTER_ID_PREFIX`] and the set id
/// of its shares, so that a token tells which shares it was made from.
const MASTER_LABEL: &str = "keyward-recovery-master";
const MASTER_ID_PREFIX: &[u8] = b"keyward-recovery-";

/// The master's handle, if the token holds one.
pub(super) fn find_master(session: &Session) -> Result<Option<ObjectHandle>, CkError> {
    let found = session.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(MASTER_LABEL.as_bytes().to_vec()),
    ])?;
    Ok(found.first().copied())
}

/// The set id of the master's shares, read from its `CKA_ID`.
pub(super) fn master_set_id(session: &Session, master: ObjectHandle) -> Result<Option<[u8; 8]>, CkError> {
    let attributes = session.get_attributes(master, &[cryptoki::object::AttributeType::Id])?;
    Ok(attributes.into_iter().find_map(|a| match a {
        Attribute::Id(id) => id.strip_prefix(MASTER_ID_PREFIX).and_then(|s| s.try_into().ok()),
        _ => None,
    }))
}

/// Imports `master` (whose shares are of set `set_id`) as a token object that
/// can only derive. The copy of the value handed to the module is wiped.
pub(super) fn import_master(
    session: &Session,
    master: &SecretBytes,
    set_id: [u8; 8],
) -> Result<ObjectHandle, CkError> {
    let mut id = MASTER_ID_PREFIX.to_vec();
    id.extend_from_slice(&set_id);
    let mut template = vec![
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
        Attribute::Id(id),
    ];
    let created = session.create_object(&template);
    for attribute in &mut template {
        if let Attribute::Value(value) = attribute {
            zeroize::Zeroize::zeroize(value);
        }
    }
    created
}

/// The two blocks encrypted under the master to make root key `crk`: each
/// names the version and its own position, so that every block of every
/// version is a different input (CBC from a zero IV makes the first output
/// block a plain encryption of the first input block: were it the same for
/// all versions, all root keys would share their first half).
fn derivation_data(crk: CrkVersion) -> [u8; 32] {
    let mut data = [0u8; 32];
    for (block, chunk) in data.chunks_exact_mut(16).enumerate() {
        chunk[..8].copy_from_slice(b"keyward\0");
        chunk[8..12].copy_from_slice(&crk.0.to_be_bytes());
        chunk[12..].copy_from_slice(&(block as u32).to_be_bytes());
    }
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
    fn every_block_of_every_version_is_its_own_input() {
        let mut blocks = Vec::new();
        for v in [1, 2, 3, 0x0102_0304] {
            let data = derivation_data(CrkVersion(v));
            assert_eq!(&data[8..12], &u32::to_be_bytes(v));
            assert_eq!(&data[24..28], &u32::to_be_bytes(v));
            blocks.push(data[..16].to_vec());
            blocks.push(data[16..].to_vec());
        }
        let mut unique = blocks.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), blocks.len());
    }
}
