//! Writing PEM files: private keys owner-only (0600), certificates world-readable.
//!
//! Both are written to a temporary file in the same folder and renamed into place, so
//! a reader never sees half a file and an old key is replaced atomically.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::PkiError;
use crate::secret::SecretString;

/// Writes a private key PEM with mode 0600.
pub fn write_private_pem(path: &Path, pem: &SecretString) -> Result<(), PkiError> {
    write_atomically(path, pem.expose().as_bytes(), 0o600)
}

/// Writes a certificate (or other public) PEM with mode 0644.
pub fn write_public_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_atomically(path, pem.as_bytes(), 0o644)
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let io_err = |p: &Path, e: std::io::Error| PkiError::Io {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io_err(path, std::io::Error::other("not a file path")))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    // A stale temp file from a crash may carry other permissions; start afresh.
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&temp, e)),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(|e| io_err(&temp, e))?;
    file.write_all(bytes).map_err(|e| io_err(&temp, e))?;
    file.sync_all().map_err(|e| io_err(&temp, e))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| io_err(path, e))
}
