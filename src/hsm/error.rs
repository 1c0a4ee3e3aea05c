//! What can go wrong when talking to the HSM, in terms the key service can act on.

use std::fmt;

use cryptoki::error::{Error as CkError, RvError};

/// An HSM failure. Carries no key material, PIN or blob bytes: only names of
/// PKCS#11 return codes and fixed text, so it is safe to log and to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HsmError {
    /// The HSM (library, slot, token or session) cannot be reached right now.
    /// Transient: retry later; the pool reconnects by itself.
    Unavailable(String),
    /// A call did not finish within the configured time. Transient.
    Timeout,
    /// A sealed blob failed to open: malformed, tampered, bound to other
    /// authenticated data, or sealed under another key. Never retry.
    BadBlob,
    /// The requested CRK version does not exist in the token.
    NotFound,
    /// The CRK version (or token) already exists.
    AlreadyExists,
    /// The token refused the PIN (incorrect, locked, expired) or login failed.
    /// Not retried automatically, so that a wrong PIN cannot lock the token.
    Login(String),
    /// A caller asked for something out of bounds (length limits and the like).
    InvalidRequest(&'static str),
    /// Anything else, named by its PKCS#11 return code or a fixed description.
    Other(String),
}

impl HsmError {
    /// Transient failures that a caller may retry later (and report as
    /// "HSM unavailable" rather than as a permanent error).
    pub fn is_transient(&self) -> bool {
        matches!(self, HsmError::Unavailable(_) | HsmError::Timeout)
    }
}

impl fmt::Display for HsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HsmError::Unavailable(why) => write!(f, "HSM unavailable: {why}"),
            HsmError::Timeout => f.write_str("HSM call timed out"),
            HsmError::BadBlob => f.write_str("sealed blob cannot be opened"),
            HsmError::NotFound => f.write_str("root key (CRK) version not found in the HSM"),
            HsmError::AlreadyExists => f.write_str("already exists in the HSM"),
            HsmError::Login(why) => write!(f, "HSM login failed: {why}"),
            HsmError::InvalidRequest(why) => write!(f, "invalid HSM request: {why}"),
            HsmError::Other(why) => write!(f, "HSM error: {why}"),
        }
    }
}

impl std::error::Error for HsmError {}

/// How the session pool should react to a PKCS#11 error before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// The session is dead: drop it and retry on a fresh one.
    NewSession,
    /// The application is no longer logged in: log in again and retry.
    Relogin,
    /// A cached object handle went stale: forget cached handles and retry.
    RefindObjects,
    /// Slot, token or library went away: drop every session, find the token
    /// again, and retry once.
    Reconnect,
    /// Nothing to recover; report the error.
    None,
}

/// The return value inside a cryptoki error, if it came from the module.
pub(crate) fn rv_of(err: &CkError) -> Option<RvError> {
    match err {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

pub(crate) fn recovery_for(err: &CkError) -> Recovery {
    match rv_of(err) {
        Some(RvError::SessionHandleInvalid | RvError::SessionClosed) => Recovery::NewSession,
        Some(RvError::UserNotLoggedIn) => Recovery::Relogin,
        Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid) => Recovery::RefindObjects,
        Some(
            RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SlotIdInvalid
            | RvError::CryptokiNotInitialized,
        ) => Recovery::Reconnect,
        _ => Recovery::None,
    }
}

/// Name of the PKCS#11 return code (e.g. `CKR_PIN_INCORRECT`), or a short
/// description for errors raised by the cryptoki wrapper itself.
pub(crate) fn ck_name(err: &CkError) -> String {
    match err {
        CkError::Pkcs11(rv, func) => format!("{func:?}: {}", ckr_name(*rv)),
        CkError::LibraryLoading(_) => "PKCS#11 module cannot be loaded".to_string(),
        CkError::NullFunctionPointer | CkError::MissingSymbol(_) => {
            "PKCS#11 module lacks a required function".to_string()
        }
        CkError::NotSupported => "not supported by the cryptoki wrapper".to_string(),
        CkError::PinNotSet => "PIN not set".to_string(),
        _ => "malformed value from the PKCS#11 module".to_string(),
    }
}

/// `RvError`'s Debug name is the CamelCase of the CKR constant; spell it the
/// way HSM manuals and logs do.
fn ckr_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Map an error that survived recovery to the caller-facing kind.
pub(crate) fn to_hsm_error(err: &CkError) -> HsmError {
    match rv_of(err) {
        Some(
            RvError::PinIncorrect
            | RvError::PinLocked
            | RvError::PinExpired
            | RvError::PinInvalid
            | RvError::PinLenRange,
        ) => HsmError::Login(ck_name(err)),
        Some(_) if recovery_for(err) != Recovery::None => HsmError::Unavailable(ck_name(err)),
        Some(RvError::SessionCount | RvError::FunctionCanceled) => HsmError::Unavailable(ck_name(err)),
        _ => match err {
            CkError::LibraryLoading(_) => HsmError::Unavailable(ck_name(err)),
            _ => HsmError::Other(ck_name(err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn names_follow_pkcs11_spelling() {
        let e = CkError::Pkcs11(RvError::PinIncorrect, Function::Login);
        assert_eq!(
            to_hsm_error(&e),
            HsmError::Login("Login: CKR_PIN_INCORRECT".into())
        );
        let e = CkError::Pkcs11(RvError::DeviceRemoved, Function::Encrypt);
        assert!(to_hsm_error(&e).is_transient());
        assert_eq!(recovery_for(&e), Recovery::Reconnect);
    }
}
