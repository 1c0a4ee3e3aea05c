//! The one error type every store backend returns.
//!
//! Messages carry backend diagnostics (SQLite error text, HTTP status) but never
//! record contents: a sealed blob or attribute bytes must not reach a log line.

use std::fmt;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend could not be reached or is busy; retrying later may succeed.
    Unavailable(String),
    /// A record with this uid exists with different content (create-if-absent).
    AlreadyExists,
    /// Compare-and-swap lost: the stored record version is not the expected one.
    VersionConflict,
    /// No record with this uid.
    NotFound,
    /// Stored data is malformed or fails an integrity check.
    Corrupt(String),
    /// Anything else (misconfiguration, invalid input, internal failure).
    Other(String),
}

impl StoreError {
    /// True when the same call may succeed if retried later.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// True when a compare-and-swap lost to another writer.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::VersionConflict)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "store unavailable: {why}"),
            StoreError::AlreadyExists => f.write_str("a different record with this uid exists"),
            StoreError::VersionConflict => f.write_str("record version conflict"),
            StoreError::NotFound => f.write_str("record not found"),
            StoreError::Corrupt(why) => write!(f, "store data corrupt: {why}"),
            StoreError::Other(why) => write!(f, "store error: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}
