//! The one place where internal errors become a KMIP Result Reason.
//!
//! What the client reads (the Result Message) is either about its request or
//! a stable sentence: the text of SQLite, PKCS#11 and store diagnostics never
//! reaches it. Such a failure gets a correlation reference; the client's
//! message names it ("internal error; reference 7f3a…") and [`Internal`] keeps
//! the detail, with the same reference, for the audit trail and the log.

use std::fmt;

use crate::hsm::HsmError;
use crate::keys::KeyError;
use crate::kmip::ResultReason;
use crate::kmip::error::MessageError;
use crate::store::StoreError;

/// A failed batch item: the reason and message the client sees, and for
/// server-side failures the detail only operators see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub reason: ResultReason,
    /// Sent to the client: names no secret and no internal diagnostic.
    pub message: String,
    /// Server-side detail, for the audit trail and the log only.
    pub internal: Option<Internal>,
}

/// The operator's side of a server-side failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Internal {
    /// The correlation reference the client's message names (16 hex digits).
    pub reference: String,
    /// What went wrong (HSM, store or decoding diagnostics; never key material).
    pub detail: String,
}

impl Internal {
    fn new(detail: String) -> Internal {
        let id = uuid::Uuid::new_v4();
        let hex = id.simple().to_string();
        Internal {
            reference: hex[..16].to_owned(),
            detail,
        }
    }
}

impl OpError {
    pub fn new(reason: ResultReason, message: impl Into<String>) -> Self {
        OpError {
            reason,
            message: message.into(),
            internal: None,
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

    /// A server-side failure: General Failure, a generic message naming a new
    /// correlation reference, and `detail` kept for operators.
    pub fn internal(detail: impl Into<String>) -> Self {
        let internal = Internal::new(detail.into());
        OpError {
            reason: ResultReason::GENERAL_FAILURE,
            message: format!("internal error; reference {}", internal.reference),
            internal: Some(internal),
        }
    }

    /// The message with the operator's detail, for the audit trail and the log.
    pub fn audit_message(&self) -> String {
        match &self.internal {
            Some(i) => format!("{} [reference {}: {}]", self.message, i.reference, i.detail),
            None => self.message.clone(),
        }
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
        // Transient back-end trouble is said plainly so that an administrator
        // reading vCenter's error knows to look at the HSM or the store; the
        // detail goes to the audit trail.
        let transient = match &e {
            KeyError::Hsm(HsmError::Timeout) => Some("HSM did not answer in time; retry"),
            KeyError::Hsm(h) if h.is_transient() => Some("HSM unavailable; retry"),
            KeyError::Store(s) if s.is_transient() => Some("key store unavailable; retry"),
            _ => None,
        };
        if let Some(message) = transient {
            let mut error = OpError::internal(e.to_string());
            error.message = message.to_owned();
            return error;
        }
        // Said to the client plainly (it names nothing secret): the
        // administrator must learn that the store was tampered with, not hunt
        // for a reference. The audit event carries the same text.
        if let KeyError::Corrupt {
            uid,
            problem: crate::keys::Corruption::BindingBroken,
        } = &e
        {
            return OpError::new(
                ResultReason::GENERAL_FAILURE,
                format!(
                    "object {uid} was changed outside keyward (its HSM binding does not verify); refused"
                ),
            );
        }
        // A record the store answers with but that is not what keyward
        // wrote — older than seen, or not even the record asked for (swapped
        // in, unreadable) — is refused the same plain way.
        match &e {
            KeyError::Store(StoreError::RolledBack(why)) | KeyError::Store(StoreError::Corrupt(why)) => {
                return OpError::new(
                    ResultReason::GENERAL_FAILURE,
                    format!(
                        "an object was changed outside keyward or is damaged in the store: {}; refused",
                        store_text(why)
                    ),
                );
            }
            _ => {}
        }
        if e.is_internal() {
            return OpError::internal(e.to_string());
        }
        let reason = match &e {
            KeyError::NotFound | KeyError::AttributeNotFound => ResultReason::ITEM_NOT_FOUND,
            KeyError::WrongState(_) => ResultReason::WRONG_KEY_LIFECYCLE_STATE,
            // KMIP 1.4 has no quota reason; the client may not make more objects.
            KeyError::NotPermitted(_) | KeyError::NotAllowedInState(_) | KeyError::GroupFull { .. } => {
                ResultReason::PERMISSION_DENIED
            }
            KeyError::Invalid(_) | KeyError::TooManyAttributes { .. } => ResultReason::INVALID_FIELD,
            KeyError::Unsupported(_) => ResultReason::FEATURE_NOT_SUPPORTED,
            KeyError::Contended
            | KeyError::Hsm(_)
            | KeyError::Store(_)
            | KeyError::Corrupt { .. }
            | KeyError::Task(_) => ResultReason::GENERAL_FAILURE,
        };
        OpError::new(reason, e.to_string())
    }
}

/// A store's diagnostic as a client may read it: whoever can write the store
/// can shape parts of it (an error body, a field), so it is cut short and
/// stripped of control characters.
fn store_text(why: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut text: String = why
        .chars()
        .take(MAX_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if why.chars().count() > MAX_CHARS {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_store_diagnostic_reaches_the_client_short_and_without_controls() {
        let why = format!("record x holds another uid\r\nInjected: yes{}", "a".repeat(500));
        let e = OpError::from(KeyError::Store(StoreError::Corrupt(why)));
        assert!(e.message.contains("changed outside keyward"), "{}", e.message);
        assert!(!e.message.contains('\n') && !e.message.contains('\r'));
        assert!(e.message.chars().count() < 320, "{}", e.message.len());
    }

    #[test]
    fn internal_text_stays_out_of_the_client_message() {
        let e = OpError::from(KeyError::Store(StoreError::Other(
            "no such table: objects_v9".into(),
        )));
        assert_eq!(e.reason, ResultReason::GENERAL_FAILURE);
        let internal = e.internal.as_ref().unwrap();
        assert_eq!(
            e.message,
            format!("internal error; reference {}", internal.reference)
        );
        assert!(!e.message.contains("objects_v9"));
        assert!(internal.detail.contains("objects_v9"));
        assert!(e.audit_message().contains(&internal.reference));
        assert!(e.audit_message().contains("objects_v9"));

        let hsm = OpError::from(KeyError::Hsm(HsmError::Other("CKR_DEVICE_ERROR".into())));
        assert!(!hsm.message.contains("CKR_"), "{}", hsm.message);
    }

    #[test]
    fn transient_messages_stay_and_keep_their_detail() {
        let e = OpError::from(KeyError::Store(StoreError::unavailable("database is locked")));
        assert_eq!(e.message, "key store unavailable; retry");
        assert!(e.internal.unwrap().detail.contains("database is locked"));
        let e = OpError::from(KeyError::Hsm(HsmError::Timeout));
        assert_eq!(e.message, "HSM did not answer in time; retry");
    }

    #[test]
    fn client_errors_keep_their_text() {
        let e = OpError::from(KeyError::NotFound);
        assert_eq!(e.reason, ResultReason::ITEM_NOT_FOUND);
        assert_eq!(e.message, "object not found");
        assert!(e.internal.is_none());
    }
}
