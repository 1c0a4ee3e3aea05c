//! What the key service can refuse, in terms the ops layer maps to KMIP reasons.
//!
//! Where a failure has a typed source (a lifecycle rule, a TTLV decode error,
//! the HSM, the store, a failed task) the variant carries it; plain text is left
//! only for policy refusals and request values, whose wording is the message.

use std::fmt;

use crate::hsm::HsmError;
use crate::kmip::State;
use crate::kmip::error::MessageError;
use crate::store::StoreError;
use crate::ttlv::DecodeError;

#[derive(Debug)]
pub enum KeyError {
    /// No such object — or one the caller's group may not see (never a hint that
    /// it exists).
    NotFound,
    /// The object has no such attribute instance.
    AttributeNotFound,
    /// The object is not in a state the operation applies to.
    WrongState(State),
    /// The lifecycle forbids the operation in this state (destroying an Active
    /// key).
    NotAllowedInState(State),
    /// Refused by policy (changing a date that already took effect).
    NotPermitted(String),
    /// A request value the service cannot accept.
    Invalid(String),
    /// The object would carry more attributes than [`crate::limits`] allows.
    TooManyAttributes {
        max_count: usize,
        max_bytes: usize,
    },
    /// The caller's group already holds [`crate::limits::MAX_OBJECTS_PER_GROUP`]
    /// objects (or the quota the service was given).
    GroupFull {
        max: usize,
    },
    /// A valid request this server does not implement.
    Unsupported(String),
    /// Concurrent writers kept winning the compare-and-swap; the client may retry.
    Contended,
    Hsm(HsmError),
    Store(StoreError),
    /// A stored record that does not decode or whose seal does not open: the store
    /// was changed behind our back (or is being attacked).
    Corrupt {
        uid: String,
        problem: Corruption,
    },
    /// A background task (a re-seal) panicked or was cancelled.
    Task(tokio::task::JoinError),
}

/// What is wrong with a stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The attribute list is not TTLV.
    AttributesUndecodable(DecodeError),
    /// An attribute in the list is malformed.
    AttributeInvalid(MessageError),
    /// The record's seal does not open under its binding: a field, the seal
    /// or the record version was changed outside keyward.
    BindingBroken,
    /// The opened material is not TTLV.
    MaterialUndecodable(DecodeError),
    /// The opened material is not a managed object.
    MaterialInvalid(MessageError),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::AttributesUndecodable(e) => write!(f, "attributes do not decode: {e}"),
            Corruption::AttributeInvalid(e) => write!(f, "an attribute is malformed: {e}"),
            Corruption::BindingBroken => f.write_str(
                "the record was changed outside keyward: its seal does not open under its HSM binding",
            ),
            Corruption::MaterialUndecodable(e) => write!(f, "sealed material does not decode: {e}"),
            Corruption::MaterialInvalid(e) => write!(f, "sealed material is not a managed object: {e}"),
        }
    }
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

    /// Whether the failure is the server's own (HSM, store, corrupt data, a
    /// task): its text is for operators, never for a client.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            KeyError::Hsm(_) | KeyError::Store(_) | KeyError::Corrupt { .. } | KeyError::Task(_)
        )
    }

    pub(crate) fn corrupt(uid: &str, problem: Corruption) -> KeyError {
        KeyError::Corrupt {
            uid: uid.to_owned(),
            problem,
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotFound => f.write_str("object not found"),
            KeyError::AttributeNotFound => f.write_str("no such attribute instance"),
            KeyError::WrongState(s) => {
                write!(f, "object is in state {}", s.name().unwrap_or("unknown"))
            }
            KeyError::NotAllowedInState(s) => {
                write!(
                    f,
                    "not permitted: not allowed in state {}",
                    s.name().unwrap_or("unknown")
                )
            }
            KeyError::NotPermitted(why) => write!(f, "not permitted: {why}"),
            KeyError::Invalid(why) => write!(f, "invalid request: {why}"),
            KeyError::TooManyAttributes { max_count, max_bytes } => write!(
                f,
                "invalid request: an object may carry at most {max_count} attributes in {max_bytes} bytes"
            ),
            KeyError::Unsupported(what) => write!(f, "not supported: {what}"),
            KeyError::Contended => f.write_str("object changed concurrently; retry"),
            KeyError::GroupFull { max } => {
                write!(f, "refused: the group already holds the maximum of {max} objects")
            }
            KeyError::Hsm(e) => write!(f, "HSM: {e}"),
            KeyError::Store(e) => write!(f, "store: {e}"),
            KeyError::Corrupt { uid, problem } => write!(f, "stored object {uid} is corrupt: {problem}"),
            KeyError::Task(why) => write!(f, "background task failed: {why}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Hsm(e) => Some(e),
            KeyError::Store(e) => Some(e),
            KeyError::Task(e) => Some(e),
            _ => None,
        }
    }
}

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
