//! The HSM: the only code that speaks PKCS#11 (layer 1).
//!
//! The customer root key (CRK) is an AES-256 key inside a PKCS#11 token that
//! never leaves it. The key service above sees only the narrow [`Hsm`] trait:
//! seal/unseal KEKs under a CRK version, draw random bytes from the HSM, manage
//! CRK versions, and report health. [`Pkcs11Hsm`] implements it over a session
//! pool that logs in once, re-logs in, reopens sessions and finds the token
//! again after it went away; [`AsyncHsm`] runs every call on tokio's blocking
//! pool with a timeout so that no PKCS#11 call runs on an async worker.
//!
//! The blob format and the choice of AES-GCM are documented in [`seal`].

mod async_hsm;
mod cbc_hmac;
mod config;
pub mod custodian;
mod description;
mod error;
mod open;
mod pkcs11;
mod pool;
pub mod provision;
mod recovery;
pub mod seal;
pub mod softhsm;
pub mod test_module;
pub mod uri;

use std::fmt;

use crate::secret::SecretBytes;

pub use async_hsm::AsyncHsm;
pub use config::{DEFAULT_CALL_TIMEOUT, DEFAULT_SESSION_POOL_SIZE, HsmConfig, read_pin_file};
pub use error::HsmError;
pub use open::{open, open_async};
pub use pkcs11::Pkcs11Hsm;
pub use uri::{TokenFacts, TokenSelector, UriError};

/// Label prefix of CRK objects: version `n` is labelled `keyward-crk-<n>`.
pub const CRK_LABEL_PREFIX: &str = "keyward-crk-";

/// Most random bytes one [`Hsm::random`] call returns.
///
/// Stops: a caller asking the token for megabytes of RNG output per request.
/// KEKs are 32 bytes.
pub const MAX_RANDOM_LEN: usize = 1024;

/// Version of a customer root key. Stored with every sealed record so that a
/// root rotation knows which records still need re-sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrkVersion(pub u32);

impl CrkVersion {
    /// The object label in the token: `keyward-crk-<n>`.
    pub fn label(self) -> String {
        format!("{CRK_LABEL_PREFIX}{}", self.0)
    }

    /// The object's `CKA_ID`: the version as 4 big-endian bytes.
    pub fn object_id(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for CrkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What `health()` found. Contains no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmStatus {
    /// Module manufacturer and description, e.g. "SoftHSM / Implementation of PKCS11".
    pub library: String,
    /// Module's own version.
    pub library_version: String,
    /// PKCS#11 version the module implements.
    pub cryptoki_version: String,
    pub slot_id: u64,
    pub token_label: String,
    pub token_serial: String,
    pub token_model: String,
    /// Why the token's label, serial and model are empty: its description
    /// did not parse (it is then selected by slot id; see `description`).
    pub token_unreadable: Option<String>,
    /// Whether the pool's sessions are in the logged-in (R/W user) state.
    pub logged_in: bool,
    /// How the token seals new records; `None` when it has the mechanisms of
    /// no profile (then `mechanisms_missing` says what GCM would need).
    pub sealing_profile: Option<seal::SealingProfile>,
    /// Mechanisms keyward needs (names like `CKM_AES_GCM`).
    pub mechanisms_needed: Vec<String>,
    /// Those of `mechanisms_needed` the token does not offer (empty when healthy).
    pub mechanisms_missing: Vec<String>,
    /// CRK versions present in the token, ascending.
    pub crk_versions: Vec<CrkVersion>,
}

/// What the key service needs from the HSM. Blocking; use [`AsyncHsm`] from
/// async code. Implementations must be safe to call from many threads.
pub trait Hsm: Send + Sync {
    /// Seal `plaintext` under CRK `crk`, binding `aad` (which is not stored in
    /// the blob: the caller must present the same bytes to unseal).
    fn seal(&self, crk: CrkVersion, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError>;

    /// Open a blob made by [`Hsm::seal`]. Any mismatch (AAD, tampering, other
    /// CRK version in the blob) is [`HsmError::BadBlob`]; a CRK missing from
    /// the token is [`HsmError::NotFound`].
    fn unseal(&self, crk: CrkVersion, aad: &[u8], blob: &[u8]) -> Result<SecretBytes, HsmError>;

    /// `len` bytes from the HSM's RNG (for new KEK material). `len` ≤ [`MAX_RANDOM_LEN`].
    fn random(&self, len: usize) -> Result<SecretBytes, HsmError>;

    /// CRK versions present in the token, ascending.
    fn crk_versions(&self) -> Result<Vec<CrkVersion>, HsmError>;

    /// Generate CRK `version` inside the token. [`HsmError::AlreadyExists`] if it exists.
    fn create_crk(&self, version: CrkVersion) -> Result<(), HsmError>;

    /// Destroy CRK `version`: every blob sealed under it becomes unreadable
    /// (crypto-shredding). [`HsmError::NotFound`] if absent.
    fn destroy_crk(&self, version: CrkVersion) -> Result<(), HsmError>;

    /// Library, slot, token, login and mechanism report.
    fn health(&self) -> Result<HsmStatus, HsmError>;

    /// Imports the custodians' recovery master (see [`custodian`]): from then
    /// on [`Hsm::create_crk`] derives root keys from it. Refused when the token
    /// already holds a master. Tokens that cannot do it say so.
    fn install_recovery_master(&self, _master: &SecretBytes) -> Result<(), HsmError> {
        Err(HsmError::InvalidRequest(
            "this HSM does not support custodian recovery",
        ))
    }

    /// Whether this token can derive root keys from a recovery master
    /// (`CKM_AES_CBC_ENCRYPT_DATA`).
    fn can_derive_root_keys(&self) -> Result<bool, HsmError> {
        Ok(false)
    }

    /// The set id of the custodian shares of this token's recovery master,
    /// when root keys derive from one.
    fn recovery_master_set(&self) -> Result<Option<[u8; 8]>, HsmError> {
        Ok(None)
    }
}
