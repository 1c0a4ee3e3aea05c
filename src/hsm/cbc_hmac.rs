//! The sealing profile for tokens without AES-GCM: AES-256-CBC with PKCS#7
//! padding, then HMAC-SHA-256 over everything (encrypt-then-MAC), each under
//! its own key of the root key version.
//!
//! ```text
//! offset  size  field
//! 0       1     format = 0x02
//! 1       4     CRK version, big-endian
//! 5       16    IV (from the HSM's RNG)
//! 21      c     ciphertext (c a multiple of 16, at least 16)
//! 21+c    32    HMAC-SHA-256 tag
//! ```
//!
//! The tag covers `header || IV || len(AAD) as u32 BE || AAD || ciphertext`:
//! the length makes the split between AAD and ciphertext unambiguous, so the
//! identity is bound exactly as GCM binds it. Opening checks the tag in the
//! token (`C_Verify`) before anything is decrypted, so a forged blob never
//! reaches the padding check (no padding oracle).
//!
//! Who needs it: openCryptoki's soft token up to 3.x on Debian 12 offers
//! AES-ECB/CBC/CBC-PAD and HMAC but no AES-GCM and no AES key wrap; older
//! HSM firmware is similar. Two keys, because one key must not serve both as a
//! cipher key and as a MAC key: version `n` is the AES key `keyward-crk-<n>`
//! (encrypt/decrypt only) and the generic secret `keyward-crk-mac-<n>`
//! (sign/verify only), both sensitive and never extractable, made together.

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::seal::{FORMAT_AES256_CBC_HMAC_SHA256, HEADER_LEN, MAX_PLAINTEXT};
use super::{CrkVersion, HsmError};

/// CBC IV length.
pub(super) const IV_LEN: usize = 16;
/// AES block length.
const BLOCK: usize = 16;
/// HMAC-SHA-256 tag length.
pub(super) const MAC_LEN: usize = 32;
/// Label prefix of the MAC keys: version `n` is `keyward-crk-mac-<n>`.
const MAC_LABEL_PREFIX: &str = "keyward-crk-mac-";

/// Bytes of a sealed blob of `plaintext_len` bytes (padding always adds 1 to 16).
pub(super) const fn sealed_len(plaintext_len: usize) -> usize {
    HEADER_LEN + IV_LEN + (plaintext_len / BLOCK + 1) * BLOCK + MAC_LEN
}

/// The MAC key's label for a version.
pub(super) fn mac_label(crk: CrkVersion) -> String {
    format!("{MAC_LABEL_PREFIX}{}", crk.0)
}

/// A blob of this format split into its parts (nothing verified yet).
pub(super) struct Parsed<'a> {
    pub crk: CrkVersion,
    /// Everything the tag covers before the AAD: header and IV.
    pub header_and_iv: &'a [u8],
    pub iv: [u8; IV_LEN],
    pub ciphertext: &'a [u8],
    pub tag: &'a [u8],
}

pub(super) fn parse(blob: &[u8]) -> Result<Parsed<'_>, HsmError> {
    let min = sealed_len(0);
    let max = sealed_len(MAX_PLAINTEXT);
    if blob.len() < min || blob.len() > max || blob[0] != FORMAT_AES256_CBC_HMAC_SHA256 {
        return Err(HsmError::BadBlob);
    }
    let (header_and_iv, rest) = blob.split_at(HEADER_LEN + IV_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - MAC_LEN);
    if ciphertext.len() % BLOCK != 0 {
        return Err(HsmError::BadBlob);
    }
    let version = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
    let iv: [u8; IV_LEN] = header_and_iv[HEADER_LEN..]
        .try_into()
        .map_err(|_| HsmError::BadBlob)?;
    Ok(Parsed {
        crk: CrkVersion(version),
        header_and_iv,
        iv,
        ciphertext,
        tag,
    })
}

/// What the tag covers.
pub(super) fn mac_input(header_and_iv: &[u8], aad: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(header_and_iv.len() + 4 + aad.len() + ciphertext.len());
    input.extend_from_slice(header_and_iv);
    // AAD is at most seal::MAX_AAD (4 KiB): it fits.
    input.extend_from_slice(&(aad.len() as u32).to_be_bytes());
    input.extend_from_slice(aad);
    input.extend_from_slice(ciphertext);
    input
}

/// Seals `plaintext` with the version's two keys; `iv` is fresh from the RNG.
pub(super) fn seal(
    session: &Session,
    keys: (ObjectHandle, ObjectHandle),
    crk: CrkVersion,
    iv: [u8; IV_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CkError> {
    let (cipher_key, mac_key) = keys;
    let ciphertext = session.encrypt(&Mechanism::AesCbcPad(iv), cipher_key, plaintext)?;
    let mut blob = Vec::with_capacity(sealed_len(plaintext.len()));
    let v = crk.0.to_be_bytes();
    blob.extend_from_slice(&[FORMAT_AES256_CBC_HMAC_SHA256, v[0], v[1], v[2], v[3]]);
    blob.extend_from_slice(&iv);
    let tag = session.sign(
        &Mechanism::Sha256Hmac,
        mac_key,
        &mac_input(&blob, aad, &ciphertext),
    )?;
    blob.extend_from_slice(&ciphertext);
    blob.extend_from_slice(&tag);
    Ok(blob)
}

/// The version's MAC keys in the token (one, normally).
pub(super) fn find_mac_key(session: &Session, crk: CrkVersion) -> Result<Vec<ObjectHandle>, CkError> {
    session.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Label(mac_label(crk).into_bytes()),
        Attribute::Id(crk.object_id().to_vec()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_layout() {
        assert_eq!(sealed_len(0), 5 + 16 + 16 + 32);
        assert_eq!(sealed_len(32), 5 + 16 + 48 + 32);
        assert_eq!(sealed_len(31), 5 + 16 + 32 + 32);
        let mut blob = vec![FORMAT_AES256_CBC_HMAC_SHA256, 0, 0, 0, 9];
        blob.extend_from_slice(&[7; IV_LEN]);
        blob.extend_from_slice(&[1; 48]);
        blob.extend_from_slice(&[2; MAC_LEN]);
        let p = parse(&blob).unwrap();
        assert_eq!(p.crk, CrkVersion(9));
        assert_eq!(p.iv, [7; IV_LEN]);
        assert_eq!(p.ciphertext, &[1; 48]);
        assert_eq!(p.tag, &[2; MAC_LEN]);
        assert_eq!(p.header_and_iv.len(), HEADER_LEN + IV_LEN);
        // Not a whole number of blocks, too short, or another format: bad.
        let mut ragged = blob.clone();
        ragged.insert(30, 0);
        assert_eq!(parse(&ragged).err(), Some(HsmError::BadBlob));
        assert_eq!(parse(&blob[..sealed_len(0) - 1]).err(), Some(HsmError::BadBlob));
        blob[0] = 0x01;
        assert_eq!(parse(&blob).err(), Some(HsmError::BadBlob));
    }

    /// On SoftHSM, which has both profiles' mechanisms: a version made for
    /// CBC + HMAC seals that way, its blobs open whatever profile the token
    /// seals with later, and any change to a blob, its AAD or its version is
    /// refused before decryption.
    #[test]
    fn blobs_of_both_formats_open_on_one_token() {
        use crate::hsm::seal::{FORMAT_AES256_GCM, SealingProfile};
        use crate::hsm::{Hsm, Pkcs11Hsm};
        const KEK: [u8; 32] = [0x24; 32];
        crate::hsm::softhsm::run_isolated(|token| {
            let mut hsm = Pkcs11Hsm::connect(&token.config()).unwrap();
            assert_eq!(hsm.sealing_profile(), SealingProfile::AesGcm);
            hsm.force_profile(SealingProfile::AesCbcHmacSha256);
            hsm.create_crk(CrkVersion(1)).unwrap();
            let aad = b"uid=1|type=SymmetricKey|crk=1";
            let cbc = hsm.seal(CrkVersion(1), aad, &KEK).unwrap();
            assert_eq!(cbc[0], FORMAT_AES256_CBC_HMAC_SHA256);
            assert_eq!(cbc.len(), sealed_len(KEK.len()));
            assert_ne!(
                hsm.seal(CrkVersion(1), aad, &KEK).unwrap(),
                cbc,
                "fresh IV each seal"
            );
            for i in [0, 1, 4, 5, 20, 21, cbc.len() - 33, cbc.len() - 1] {
                let mut bad = cbc.clone();
                bad[i] ^= 0x01;
                assert_eq!(
                    hsm.unseal(CrkVersion(1), aad, &bad).err(),
                    Some(HsmError::BadBlob),
                    "flip at {i}"
                );
            }
            assert_eq!(
                hsm.unseal(CrkVersion(1), b"uid=2", &cbc).err(),
                Some(HsmError::BadBlob)
            );
            assert_eq!(
                hsm.unseal(CrkVersion(2), aad, &cbc).err(),
                Some(HsmError::BadBlob)
            );
            assert_eq!(
                hsm.unseal(CrkVersion(1), aad, &cbc[..cbc.len() - 1]).err(),
                Some(HsmError::BadBlob)
            );
            // The token goes back to GCM: both formats open.
            hsm.force_profile(SealingProfile::AesGcm);
            let gcm = hsm.seal(CrkVersion(1), aad, &KEK).unwrap();
            assert_eq!(gcm[0], FORMAT_AES256_GCM);
            assert_eq!(hsm.unseal(CrkVersion(1), aad, &cbc).unwrap().expose(), &KEK);
            assert_eq!(hsm.unseal(CrkVersion(1), aad, &gcm).unwrap().expose(), &KEK);
            assert_eq!(crate::hsm::seal::blob_crk_version(&cbc), Some(CrkVersion(1)));
            // Retiring the version removes its MAC key with it.
            hsm.destroy_crk(CrkVersion(1)).unwrap();
            let lease = hsm.pool_for_tests().checkout().unwrap();
            assert!(
                find_mac_key(lease.session().unwrap(), CrkVersion(1))
                    .unwrap()
                    .is_empty()
            );
        })
        .unwrap();
    }

    #[test]
    fn the_aad_length_separates_aad_from_ciphertext() {
        let head = [2u8; HEADER_LEN + IV_LEN];
        assert_ne!(mac_input(&head, b"ab", b"c"), mac_input(&head, b"a", b"bc"));
    }
}
