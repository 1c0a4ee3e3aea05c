//! The one place where internal errors become a KMIP Result Reason.

use std::fmt;

use crate::hsm::HsmError;
use crate::keys::KeyError;
use crate::kmip::ResultReason;
use crate::kmip::error::MessageError;

/// A failed batch item: the reason the client sees and a message that names no
/// secret. (The message is sent to the client and written to the audit trail.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub reason: ResultReason,
    pub message: String,
}

impl OpError {
    pub fn new(reason: ResultReason, message: impl Into<String>) -> Self {
        OpError {
            reason,
            message: message.into(),
        }
    }

    pub fn invalid_field(message: impl Into<String>) -> Self {
        OpError::new(ResultReason::INVALID_FIELD, message)
    }

    pub fn not_supported(message: impl Into<String>) -> Self {
        OpError::new(ResultReason::OPERATION_NOT_SUPPORTED, message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        OpError::new(ResultReason::PERMISSION_DENIED, message)
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.name().unwrap_or("Unknown"), self.message)
    }
}

impl From<MessageError> for OpError {
    fn from(e: MessageError) -> Self {
        OpError::new(e.result_reason(), e.to_string())
    }
}

impl From<KeyError> for OpError {
    fn from(e: KeyError) -> Self {
        let reason = match &e {
            KeyError::NotFound => ResultReason::ITEM_NOT_FOUND,
            KeyError::WrongState(_) => ResultReason::WRONG_KEY_LIFECYCLE_STATE,
            KeyError::NotPermitted(_) => ResultReason::PERMISSION_DENIED,
            KeyError::Invalid(_) => ResultReason::INVALID_FIELD,
            KeyError::Unsupported(_) => ResultReason::FEATURE_NOT_SUPPORTED,
            KeyError::Contended | KeyError::Hsm(_) | KeyError::Store(_) | KeyError::Corrupt(_) => {
                ResultReason::GENERAL_FAILURE
            }
        };
        // Transient back-end trouble is said plainly so that an administrator
        // reading vCenter's error knows to look at the HSM or the store.
        let message = match &e {
            KeyError::Hsm(HsmError::Timeout) => "HSM did not answer in time; retry".to_owned(),
            KeyError::Hsm(h) if h.is_transient() => "HSM unavailable; retry".to_owned(),
            KeyError::Store(s) if s.is_transient() => "key store unavailable; retry".to_owned(),
            _ => e.to_string(),
        };
        OpError::new(reason, message)
    }
}
