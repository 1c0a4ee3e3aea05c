use std::fmt;
use std::path::PathBuf;

/// Why a certificate could not be made, read or written. Messages never hold key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiError {
    /// Key or certificate generation failed (bad name, crypto backend error).
    Generate(String),
    /// Input that should be a certificate, key or CSR was not one.
    Parse(String),
    /// A file could not be written or read.
    Io { path: PathBuf, reason: String },
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiError::Generate(reason) => write!(f, "certificate generation failed: {reason}"),
            PkiError::Parse(reason) => write!(f, "cannot parse: {reason}"),
            PkiError::Io { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for PkiError {}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        // rcgen's errors describe names, algorithms and encodings, never key bytes.
        PkiError::Generate(e.to_string())
    }
}
