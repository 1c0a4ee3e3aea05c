//! The one error type every store backend returns.
//!
//! The variants are what a caller decides on, for the embedded SQLite store and
//! for remote engines alike (a cloud key manager answering 409, 404, 503 with
//! Retry-After, 401/403, 413, or not at all). Messages carry backend
//! diagnostics (SQLite error text, HTTP status) but never record contents: a
//! sealed blob or attribute bytes must not reach a log line. The diagnostics
//! are for operators: the KMIP layer never sends them to a client.

use std::fmt;
use std::time::Duration;

/// Which precondition of a write lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Create-if-absent: a record with this uid exists with different content.
    Exists,
    /// Compare-and-swap: the stored record version is not the expected one.
    Version,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A write's precondition lost (another writer got there first). Not
    /// transient: retrying the same write fails the same way; reload first.
    Conflict(Conflict),
    /// No record with this uid.
    NotFound,
    /// The backend could not be reached or is busy; retrying later may succeed,
    /// not before `retry_after` when the backend said so.
    Unavailable {
        retry_after: Option<Duration>,
        detail: String,
    },
    /// The backend refused our credentials or permissions (HTTP 401/403, a
    /// file the service may not write).
    Auth(String),
    /// The record or request exceeds what the backend accepts.
    TooLarge(String),
    /// No answer within the deadline. The call may or may not have taken
    /// effect: a create is not blindly repeated (a retry with the same id and
    /// bytes is idempotent, see the store contract).
    Timeout(String),
    /// Stored data is malformed or fails an integrity check.
    Corrupt(String),
    /// The store holds an older version of a record than this node has
    /// already seen: an earlier copy was written back (a rollback). The text
    /// names the uid and both versions.
    RolledBack(String),
    /// Anything else (misconfiguration, invalid input, internal failure).
    Other(String),
}

impl StoreError {
    /// The backend is unavailable, with no retry hint.
    pub fn unavailable(detail: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            retry_after: None,
            detail: detail.into(),
        }
    }

    /// True when the same call may succeed if retried later.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Timeout(_))
    }

    /// True when a write lost to another writer (create-if-absent or
    /// compare-and-swap).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict(_))
    }

    /// How long the backend asked us to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StoreError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict(Conflict::Exists) => f.write_str("a different record with this uid exists"),
            StoreError::Conflict(Conflict::Version) => f.write_str("record version conflict"),
            StoreError::NotFound => f.write_str("record not found"),
            StoreError::Unavailable {
                retry_after: Some(after),
                detail,
            } => write!(
                f,
                "store unavailable (retry after {} s): {detail}",
                after.as_secs()
            ),
            StoreError::Unavailable {
                retry_after: None,
                detail,
            } => write!(f, "store unavailable: {detail}"),
            StoreError::Auth(why) => write!(f, "store refused our credentials: {why}"),
            StoreError::TooLarge(why) => write!(f, "too large for the store: {why}"),
            StoreError::Timeout(why) => write!(f, "store did not answer in time: {why}"),
            StoreError::Corrupt(why) => write!(f, "store data corrupt: {why}"),
            StoreError::RolledBack(why) => write!(f, "record rolled back in the store: {why}"),
            StoreError::Other(why) => write!(f, "store error: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_and_conflict_classes() {
        assert!(StoreError::unavailable("busy").is_transient());
        assert!(StoreError::Timeout("5 s".into()).is_transient());
        assert!(!StoreError::Conflict(Conflict::Version).is_transient());
        assert!(StoreError::Conflict(Conflict::Exists).is_conflict());
        assert!(!StoreError::Auth("401".into()).is_transient());
        let later = StoreError::Unavailable {
            retry_after: Some(Duration::from_secs(3)),
            detail: "503".into(),
        };
        assert_eq!(later.retry_after(), Some(Duration::from_secs(3)));
        assert!(later.to_string().contains("retry after 3 s"));
    }
}
