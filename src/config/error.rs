//! Configuration errors: one line each, naming the file or the key at fault.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration (or a client trust file, or the HSM PIN) could not be used.
///
/// Every message is one line and names the offending key (`server.max_connections`) or
/// file, so an operator can fix it without reading code. No message ever holds a secret:
/// PIN contents are never read into an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read at all.
    Read { path: PathBuf, reason: String },
    /// The TOML did not parse, or named an unknown key, or had a value of the wrong type.
    Syntax {
        path: PathBuf,
        line: usize,
        section: Option<String>,
        message: String,
    },
    /// A value parsed but is not acceptable.
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn read(path: impl Into<PathBuf>, err: &std::io::Error) -> Self {
        ConfigError::Read {
            path: path.into(),
            reason: err.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, reason } => {
                write!(f, "{}: {}", path.display(), one_line(reason))
            }
            ConfigError::Syntax {
                path,
                line,
                section,
                message,
            } => {
                write!(f, "{}:{}: ", path.display(), line)?;
                if let Some(section) = section {
                    write!(f, "in [{section}]: ")?;
                }
                f.write_str(&one_line(message))
            }
            ConfigError::Invalid { key, reason } => write!(f, "{key}: {}", one_line(reason)),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parser messages may span lines; an operator's log line must not.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
