//! Reading the HSM user PIN from a systemd credential or a PIN file.
//!
//! The PIN is never a config value, never a command-line argument, and never appears in
//! an error: errors name only the file and the I/O reason.

use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{ConfigError, HsmConfig};
use crate::secret::SecretString;

/// Longest PIN file accepted; PKCS#11 PINs are short.
const MAX_PIN_FILE_BYTES: u64 = 256;

impl HsmConfig {
    /// Where the PIN will be read from: the systemd credential if it exists
    /// (`$CREDENTIALS_DIRECTORY/<pin_credential>`), else `pin_file`.
    pub fn pin_path(&self, credentials_dir: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = credentials_dir {
            let candidate = dir.join(&self.pin_credential);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        self.pin_file.clone().ok_or_else(|| {
            ConfigError::invalid(
                "hsm.pin_file",
                format!(
                    "not set and no systemd credential {:?} found",
                    self.pin_credential
                ),
            )
        })
    }

    /// Reads the PIN, looking for the systemd credential in `$CREDENTIALS_DIRECTORY`.
    pub fn read_pin(&self) -> Result<SecretString, ConfigError> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        self.read_pin_from(dir.as_deref())
    }

    /// Reads the PIN with an explicit credentials folder (tests, non-systemd launchers).
    pub fn read_pin_from(&self, credentials_dir: Option<&Path>) -> Result<SecretString, ConfigError> {
        let path = self.pin_path(credentials_dir)?;
        let file = std::fs::File::open(&path).map_err(|e| ConfigError::read(&path, &e))?;
        // Checked on the file opened, not on the path: what is read is what
        // was checked, whatever a symlink or a rename does meanwhile.
        refuse_world_readable(&path, &file)?;
        // Room for the whole bound up front: a growing buffer would leave
        // unwiped copies of the PIN behind in freed memory.
        let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_PIN_FILE_BYTES as usize + 1));
        file.take(MAX_PIN_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ConfigError::read(&path, &e))?;
        if bytes.len() as u64 > MAX_PIN_FILE_BYTES {
            return Err(pin_file_error(
                &path,
                "larger than 256 bytes; it should hold only the PIN",
            ));
        }
        // An editor's final newline is not part of the PIN.
        let mut end = bytes.len();
        while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        let text =
            std::str::from_utf8(&bytes[..end]).map_err(|_| pin_file_error(&path, "is not UTF-8 text"))?;
        if text.is_empty() {
            return Err(pin_file_error(&path, "is empty"));
        }
        Ok(SecretString::new(text.to_string()))
    }
}

fn pin_file_error(path: &Path, reason: &str) -> ConfigError {
    ConfigError::Read {
        path: path.to_path_buf(),
        reason: format!("PIN file {reason}"),
    }
}

/// A PIN readable by every local user is not a secret; refuse rather than use
/// it. Also refuses what is not a regular file (a FIFO, a device).
fn refuse_world_readable(path: &Path, file: &std::fs::File) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = file.metadata().map_err(|e| ConfigError::read(path, &e))?;
    if !meta.is_file() {
        return Err(pin_file_error(path, "is not a regular file"));
    }
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(pin_file_error(path, "is world-readable; chmod o-r it"));
    }
    Ok(())
}
