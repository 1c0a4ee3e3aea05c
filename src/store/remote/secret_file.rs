//! Secrets a remote store needs (an API key, a token) come from files only:
//! refused when world-readable (checked on the opened file), read without
//! reallocation into a zeroizing string, never echoed in an error.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

/// Longest secret file read (an API key or token is well under 1 KiB).
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// The trimmed content of the secret file `path` (the `[store]` key `key`
/// names it in errors).
pub(in crate::store) fn read_secret(path: &Path, key: &str) -> Result<Zeroizing<String>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("store.{key} {shown}: {e}"))?;
    // Checked on the opened file, not by path: what is read is what was checked.
    let meta = file.metadata().map_err(|e| format!("store.{key} {shown}: {e}"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(format!("store.{key} {shown} is world-readable; chmod o-r it"));
        }
    }
    // Sized up front so that reading never reallocates (a reallocation would
    // leave an unwiped copy of the secret behind).
    let capacity = meta.len().min(MAX_SECRET_FILE_BYTES) as usize + 1;
    let mut text = Zeroizing::new(String::with_capacity(capacity));
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("store.{key} {shown}: {e}"))?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "store.{key} {shown}: larger than {MAX_SECRET_FILE_BYTES} bytes"
        ));
    }
    let trimmed = Zeroizing::new(text.trim().to_owned());
    if trimmed.is_empty() {
        return Err(format!("store.{key} {shown} is empty"));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_readable_empty_and_missing_files_are_refused_without_content() {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apikey");
        assert!(
            read_secret(&path, "api_key_file")
                .unwrap_err()
                .contains("api_key_file")
        );
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        file.write_all(b"  very-secret-key\n").unwrap();
        assert_eq!(&*read_secret(&path, "api_key_file").unwrap(), "very-secret-key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let why = read_secret(&path, "api_key_file").unwrap_err();
        assert!(
            why.contains("world-readable") && !why.contains("very-secret"),
            "{why}"
        );
        std::fs::write(&path, " \n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_secret(&path, "api_key_file").unwrap_err().contains("empty"));
    }
}
