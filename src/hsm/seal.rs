//! The sealed-blob format: what a KEK looks like at rest.
//!
//! The first byte names the sealing profile, so that records sealed under
//! any profile stay readable whatever the token now seals with. The token's
//! mechanisms choose the profile for new seals ([`SealingProfile::choose`]):
//! AES-256-GCM (format 0x01, below) where the token has it, else
//! AES-256-CBC + HMAC-SHA-256 (format 0x02, see `cbc_hmac`).
//!
//! ```text
//! offset  size  field
//! 0       1     format = 0x01 (AES-256-GCM under a CRK, 96-bit IV, 128-bit tag)
//! 1       4     CRK version, big-endian
//! 5       12    IV (from the HSM's RNG)
//! 17      n+16  ciphertext || GCM tag
//! ```
//!
//! The GCM additional authenticated data is `header (bytes 0..5) || caller AAD`,
//! so the format byte and the CRK version are bound to the tag as well as the
//! identity the key service puts in the caller AAD (unique id, object type,
//! CRK version and group — DESIGN §1; see `keys::seal_aad`).
//!
//! # Why AES-GCM via `C_Encrypt` and not AES key wrap with padding (KWP)
//!
//! Measured with `cargo bench --bench seal` (criterion, SoftHSM 2.6.1 with its
//! file object store, 2 shared cores, 32-byte KEK, 64-byte AAD), median ops/s
//! of all threads together:
//!
//! | construction                                                          | 1 thread | 2 threads |
//! |-----------------------------------------------------------------------|---------:|----------:|
//! | GCM seal: `C_GenerateRandom` (IV) + `C_Encrypt`                       |    40k   |    37k    |
//! | GCM unseal: `C_Decrypt`                                               |    57k   |    79k    |
//! | KWP seal: `C_CreateObject` + `C_WrapKey` + `C_DestroyObject`          |    15k   |    12k    |
//! | KWP unseal: `C_UnwrapKey` + `C_GetAttributeValue` + `C_DestroyObject` |    13k   |    21k    |
//!
//! (GCM seal gained nothing from a second thread in this run; the IV draw from
//! SoftHSM's RNG is the likely serialisation point, and the cores are shared.)
//! GCM is 3–4× faster on both paths (unseal is the hot one: every KMIP Get),
//! takes the identity as AAD natively, and needs no temporary key object inside the token. KWP
//! (RFC 5649) has no AAD: binding the identity would need a second primitive
//! (a MAC over blob and identity with another HSM key, or deriving a per-record
//! wrapping key), i.e. more HSM calls and more code to get wrong. KWP also makes
//! the KEK a temporary extractable, non-sensitive object in the token during
//! each call. SoftHSM refuses `C_WrapKey` with GCM, so GCM is used through
//! `C_Encrypt`/`C_Decrypt` on the 32 raw bytes.
//!
//! # IV uniqueness
//!
//! Each seal draws a fresh 12-byte IV from the HSM's RNG (NIST SP 800-38D
//! §8.2.2, random construction). Random 96-bit IVs stay within the 2^-32
//! collision bound for up to 2^32 seals per CRK; a key server holds a few
//! million KEKs at most and rotation re-seals under a new CRK, so the bound is
//! far away. The process also refuses an IV equal to the previous one it drew
//! (a stuck RNG), see `Pkcs11Hsm::fresh_iv`.

use super::{CrkVersion, HsmError};

/// Format byte of AES-256-GCM blobs.
pub const FORMAT_AES256_GCM: u8 = 0x01;
/// Format byte of AES-256-CBC + HMAC-SHA-256 blobs (`cbc_hmac`).
pub const FORMAT_AES256_CBC_HMAC_SHA256: u8 = 0x02;

/// How new seals are made; chosen from the token's mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealingProfile {
    /// AES-256-GCM through `C_Encrypt`, the IV the token reports kept.
    AesGcm,
    /// AES-256-CBC-PAD then HMAC-SHA-256, two keys per root key version.
    AesCbcHmacSha256,
}

impl SealingProfile {
    /// Every mechanism either profile uses: what is asked of a token.
    pub const CANDIDATE_MECHANISMS: [cryptoki::mechanism::MechanismType; 5] = [
        cryptoki::mechanism::MechanismType::AES_KEY_GEN,
        cryptoki::mechanism::MechanismType::AES_GCM,
        cryptoki::mechanism::MechanismType::AES_CBC_PAD,
        cryptoki::mechanism::MechanismType::GENERIC_SECRET_KEY_GEN,
        cryptoki::mechanism::MechanismType::SHA256_HMAC,
    ];

    /// The profile a token offering `mechanisms` seals with: GCM where it can,
    /// else CBC + HMAC; `None` when it can do neither.
    pub fn choose(mechanisms: &[cryptoki::mechanism::MechanismType]) -> Option<SealingProfile> {
        use cryptoki::mechanism::MechanismType as M;
        let has = |all: &[M]| all.iter().all(|m| mechanisms.contains(m));
        if has(&[M::AES_KEY_GEN, M::AES_GCM]) {
            Some(SealingProfile::AesGcm)
        } else if has(&[
            M::AES_KEY_GEN,
            M::AES_CBC_PAD,
            M::GENERIC_SECRET_KEY_GEN,
            M::SHA256_HMAC,
        ]) {
            Some(SealingProfile::AesCbcHmacSha256)
        } else {
            None
        }
    }

    /// The profile a blob was sealed with, by its format byte.
    pub fn of_blob(blob: &[u8]) -> Option<SealingProfile> {
        match blob.first() {
            Some(&FORMAT_AES256_GCM) => Some(SealingProfile::AesGcm),
            Some(&FORMAT_AES256_CBC_HMAC_SHA256) => Some(SealingProfile::AesCbcHmacSha256),
            _ => None,
        }
    }

    /// The mechanisms the profile needs, by their PKCS#11 names.
    pub fn mechanisms(self) -> &'static [&'static str] {
        match self {
            SealingProfile::AesGcm => &["CKM_AES_KEY_GEN", "CKM_AES_GCM"],
            SealingProfile::AesCbcHmacSha256 => &[
                "CKM_AES_KEY_GEN",
                "CKM_AES_CBC_PAD",
                "CKM_GENERIC_SECRET_KEY_GEN",
                "CKM_SHA256_HMAC",
            ],
        }
    }

    /// Bytes of a blob sealed from `plaintext_len` bytes.
    pub fn sealed_len(self, plaintext_len: usize) -> usize {
        match self {
            SealingProfile::AesGcm => plaintext_len + OVERHEAD,
            SealingProfile::AesCbcHmacSha256 => super::cbc_hmac::sealed_len(plaintext_len),
        }
    }
}

impl std::fmt::Display for SealingProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SealingProfile::AesGcm => "AES-256-GCM",
            SealingProfile::AesCbcHmacSha256 => "AES-256-CBC + HMAC-SHA-256",
        })
    }
}
/// Bytes of the header authenticated as AAD: format + CRK version.
pub const HEADER_LEN: usize = 1 + 4;
/// GCM IV length.
pub const IV_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a blob adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + IV_LEN + TAG_LEN;

/// Largest plaintext sealed (64 KiB).
///
/// Stops: a caller (ultimately a KMIP Register of an opaque object) making the
/// HSM encrypt megabytes under the CRK per request. KEKs are 32 bytes; 64 KiB
/// leaves room for other secret objects.
pub const MAX_PLAINTEXT: usize = 64 * 1024;

/// Largest caller AAD accepted (4 KiB).
///
/// Stops: unbounded AAD copies per call; an identity (UUID, type, version) is
/// well under 100 bytes.
pub const MAX_AAD: usize = 4 * 1024;

/// The CRK version a blob says it was sealed under, without opening it.
/// Used by root rotation to find records still under an old CRK.
pub fn blob_crk_version(blob: &[u8]) -> Option<CrkVersion> {
    match blob.first() {
        Some(&FORMAT_AES256_CBC_HMAC_SHA256) => super::cbc_hmac::parse(blob).ok().map(|p| p.crk),
        _ => parse(blob).ok().map(|p| p.crk),
    }
}

/// A blob split into its parts (nothing authenticated yet).
pub(crate) struct ParsedBlob<'a> {
    pub crk: CrkVersion,
    pub header: &'a [u8],
    pub iv: [u8; IV_LEN],
    pub ciphertext_and_tag: &'a [u8],
}

pub(crate) fn parse(blob: &[u8]) -> Result<ParsedBlob<'_>, HsmError> {
    if blob.len() < OVERHEAD || blob.len() > MAX_PLAINTEXT + OVERHEAD {
        return Err(HsmError::BadBlob);
    }
    let (header, rest) = blob.split_at(HEADER_LEN);
    let (iv, ciphertext_and_tag) = rest.split_at(IV_LEN);
    if header[0] != FORMAT_AES256_GCM {
        return Err(HsmError::BadBlob);
    }
    let version = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| HsmError::BadBlob)?;
    Ok(ParsedBlob {
        crk: CrkVersion(version),
        header,
        iv,
        ciphertext_and_tag,
    })
}

pub(crate) fn header(crk: CrkVersion) -> [u8; HEADER_LEN] {
    let v = crk.0.to_be_bytes();
    [FORMAT_AES256_GCM, v[0], v[1], v[2], v[3]]
}

/// GCM AAD: header || caller AAD.
pub(crate) fn full_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(header.len() + aad.len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad);
    full
}

pub(crate) fn assemble(crk: CrkVersion, iv: &[u8; IV_LEN], ciphertext_and_tag: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(HEADER_LEN + IV_LEN + ciphertext_and_tag.len());
    blob.extend_from_slice(&header(crk));
    blob.extend_from_slice(iv);
    blob.extend_from_slice(ciphertext_and_tag);
    blob
}

pub(crate) fn check_sizes(aad: &[u8], plaintext_len: usize) -> Result<(), HsmError> {
    if plaintext_len > MAX_PLAINTEXT {
        return Err(HsmError::InvalidRequest("plaintext too long to seal"));
    }
    if aad.len() > MAX_AAD {
        return Err(HsmError::InvalidRequest("authenticated data too long"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let iv = [7u8; IV_LEN];
        let blob = assemble(CrkVersion(0x0102_0304), &iv, &[9u8; 48]);
        assert_eq!(&blob[..5], &[1, 1, 2, 3, 4]);
        assert_eq!(blob.len(), 48 + HEADER_LEN + IV_LEN);
        let p = parse(&blob).unwrap();
        assert_eq!(p.crk, CrkVersion(0x0102_0304));
        assert_eq!(p.iv, iv);
        assert_eq!(p.header, &blob[..5]);
        assert_eq!(p.ciphertext_and_tag, &[9u8; 48]);
        assert_eq!(blob_crk_version(&blob), Some(CrkVersion(0x0102_0304)));
    }

    #[test]
    fn short_or_unknown_blobs_are_bad() {
        assert_eq!(parse(&[1u8; OVERHEAD - 1]).err(), Some(HsmError::BadBlob));
        let mut blob = assemble(CrkVersion(1), &[0; IV_LEN], &[0; TAG_LEN]);
        assert!(parse(&blob).is_ok());
        blob[0] = 3;
        assert_eq!(parse(&blob).err(), Some(HsmError::BadBlob));
        assert_eq!(blob_crk_version(&blob), None);
        assert_eq!(
            parse(&vec![1u8; MAX_PLAINTEXT + OVERHEAD + 1]).err(),
            Some(HsmError::BadBlob)
        );
    }
}
