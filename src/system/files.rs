//! Reading small files an administrator hands over (PEM, trust lists, config) with a
//! size bound checked before the whole file is read.

use std::io::{self, Read};
use std::path::Path;

/// Reads a small UTF-8 text file, refusing one larger than `limit` bytes without
/// reading past the bound. The error names no path: callers add it.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(limit.saturating_add(1)).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_and_refuses_beyond() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abcd").unwrap();
        assert_eq!(read_bounded(&path, 4).unwrap(), "abcd");
        let err = read_bounded(&path, 3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than 3 bytes"));
        assert_eq!(
            read_bounded(&dir.path().join("missing"), 4).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
