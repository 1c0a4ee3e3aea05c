//! How to reach the HSM: module, token, PIN, pool size, time limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::SecretString;

use super::HsmError;

/// Sessions opened by default: one per core of the appliance class of machine
/// plus slack for a call that is waiting on the token.
pub const DEFAULT_SESSION_POOL_SIZE: usize = 4;

/// Default limit on one HSM call (also on waiting for a free session).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest PIN file read. PKCS#11 tokens accept at most a few hundred bytes.
const MAX_PIN_FILE_BYTES: u64 = 4096;

/// Where the CRK lives and how to log in.
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// Path of the PKCS#11 module (`libsofthsm2.so`, a vendor library, ...).
    pub module: PathBuf,
    /// Which token holds the CRKs: its label, or an RFC 7512 URI's fields.
    pub token: super::TokenSelector,
    /// User PIN. Comes from a file or a systemd credential, never argv/config.
    pub pin: SecretString,
    /// Most PKCS#11 sessions kept open (and so most concurrent HSM calls).
    pub session_pool_size: usize,
    /// Limit on one call, including the wait for a free session.
    pub call_timeout: Duration,
    /// Before a root key is reported missing, let the module read the token
    /// afresh (`C_Finalize` + `C_Initialize`, at most every 10 s). For the
    /// long-running server only: a module's picture of a token shared with
    /// other processes can go stale (SoftHSM's does), while a short-lived
    /// command starts with a fresh one, and SoftHSM tears its crypto back end
    /// down twice at the exit of a process that finalized it.
    pub restart_on_missing_root_key: bool,
}

impl HsmConfig {
    /// A configuration selecting the token by label, with default pool size
    /// and timeout. (Slot ids of some modules, SoftHSM among them, change
    /// between processes: pin one only through [`HsmConfig::token`].)
    pub fn new(module: impl Into<PathBuf>, token_label: impl Into<String>, pin: SecretString) -> Self {
        HsmConfig {
            module: module.into(),
            token: super::TokenSelector::by_label(token_label),
            pin,
            session_pool_size: DEFAULT_SESSION_POOL_SIZE,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            restart_on_missing_root_key: false,
        }
    }
}

/// Read a PIN from a file (or a systemd credential file), dropping one
/// trailing newline. Errors never contain the file's content.
pub fn read_pin_file(path: &Path) -> Result<SecretString, HsmError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| HsmError::Other(format!("cannot open PIN file {}: {}", path.display(), e.kind())))?;
    // Sized for the limit up front: a reallocation would leave an unwiped copy.
    let mut buf = Vec::with_capacity(MAX_PIN_FILE_BYTES as usize + 1);
    let read = file.take(MAX_PIN_FILE_BYTES + 1).read_to_end(&mut buf);
    // Wrap at once so the bytes are wiped on every path out of here.
    let raw = crate::secret::SecretBytes::new(buf);
    read.map_err(|e| HsmError::Other(format!("cannot read PIN file {}: {}", path.display(), e.kind())))?;
    if raw.len() as u64 > MAX_PIN_FILE_BYTES {
        return Err(HsmError::InvalidRequest("PIN file too large"));
    }
    let mut bytes = raw.expose();
    if let Some(stripped) = bytes.strip_suffix(b"\n") {
        bytes = stripped;
    }
    if let Some(stripped) = bytes.strip_suffix(b"\r") {
        bytes = stripped;
    }
    if bytes.is_empty() {
        return Err(HsmError::InvalidRequest("PIN file is empty"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| HsmError::InvalidRequest("PIN file is not UTF-8"))?;
    Ok(SecretString::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_file_drops_one_newline_and_refuses_empty_or_huge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.pin");
        std::fs::write(&path, "s3cret-pin\n").unwrap();
        assert_eq!(read_pin_file(&path).unwrap().expose(), "s3cret-pin");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(read_pin_file(&path), Err(HsmError::InvalidRequest(_))));
        std::fs::write(&path, vec![b'x'; 5000]).unwrap();
        assert!(matches!(read_pin_file(&path), Err(HsmError::InvalidRequest(_))));
        let missing = read_pin_file(&dir.path().join("nope")).unwrap_err();
        assert!(!missing.to_string().contains("s3cret"));
    }
}
