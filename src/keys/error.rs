//! What the key service can refuse, in terms the ops layer maps to KMIP reasons.

use std::fmt;

use crate::hsm::HsmError;
use crate::kmip::State;
use crate::store::StoreError;

#[derive(Debug)]
pub enum KeyError {
    /// No such object — or one the caller's group may not see (never a hint that
    /// it exists).
    NotFound,
    /// The object is not in a state the operation applies to.
    WrongState(State),
    /// Refused by policy (destroying an Active key, changing a server-managed
    /// attribute).
    NotPermitted(String),
    /// A request value the service cannot accept.
    Invalid(String),
    /// A valid request this server does not implement.
    Unsupported(String),
    /// Concurrent writers kept winning the compare-and-swap; the client may retry.
    Contended,
    Hsm(HsmError),
    Store(StoreError),
    /// A stored record that does not decode or whose seal does not open: the store
    /// was changed behind our back (or is being attacked).
    Corrupt(String),
}

impl KeyError {
    /// Whether a retry later may succeed (the HSM or store blipped).
    pub fn is_transient(&self) -> bool {
        match self {
            KeyError::Hsm(e) => e.is_transient(),
            KeyError::Store(e) => e.is_transient(),
            KeyError::Contended => true,
            _ => false,
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotFound => f.write_str("object not found"),
            KeyError::WrongState(s) => {
                write!(f, "object is in state {}", s.name().unwrap_or("unknown"))
            }
            KeyError::NotPermitted(why) => write!(f, "not permitted: {why}"),
            KeyError::Invalid(why) => write!(f, "invalid request: {why}"),
            KeyError::Unsupported(what) => write!(f, "not supported: {what}"),
            KeyError::Contended => f.write_str("object changed concurrently; retry"),
            KeyError::Hsm(e) => write!(f, "HSM: {e}"),
            KeyError::Store(e) => write!(f, "store: {e}"),
            KeyError::Corrupt(why) => write!(f, "stored object is corrupt: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

impl From<HsmError> for KeyError {
    fn from(e: HsmError) -> Self {
        KeyError::Hsm(e)
    }
}

impl From<StoreError> for KeyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => KeyError::NotFound,
            other => KeyError::Store(other),
        }
    }
}
