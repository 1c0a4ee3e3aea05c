//! The one place that chooses a store backend: [`open`] turns a [`StoreConfig`]
//! into a running `Arc<dyn Store>`. Adding a backend is a variant here, its arm
//! in [`open`] and in the few describing methods, and its section in `config`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{OpenBaoConfig, OpenBaoStore, SqliteOptions, SqliteStore, Store, StoreError};
use super::{SecretsManagerConfig, SecretsManagerStore};

/// Which backend holds the records, and where (the parsed `[store]` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded default: one SQLite file (`kind = "sqlite"`).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// OpenBao or HashiCorp Vault KV version 2 (`kind = "openbao"`).
    OpenBao(OpenBaoConfig),
    /// AWS Secrets Manager (`kind = "secretsmanager"`).
    SecretsManager(SecretsManagerConfig),
}

impl StoreConfig {
    /// The `kind` the configuration names.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreConfig::Sqlite { .. } => "sqlite",
            StoreConfig::OpenBao(_) => "openbao",
            StoreConfig::SecretsManager(_) => "secretsmanager",
        }
    }

    /// Where the records live, for messages: a path, a URL.
    pub fn location(&self) -> String {
        match self {
            StoreConfig::Sqlite { path } => path.display().to_string(),
            StoreConfig::OpenBao(bao) => bao.location(),
            StoreConfig::SecretsManager(aws) => aws.location(),
        }
    }

    /// A file on this machine that stands for the store (administration commands
    /// put their lock beside it); `None` for a remote store.
    pub fn local_file(&self) -> Option<&Path> {
        match self {
            StoreConfig::Sqlite { path } => Some(path),
            StoreConfig::OpenBao(_) => None,
            StoreConfig::SecretsManager(_) => None,
        }
    }
}

/// Whether [`open`] may create a store that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The server: create an absent store and bring its schema up to date.
    CreateIfAbsent,
    /// Administration commands: a wrong path must not look like an empty store.
    Existing,
    /// An existing store, for reading only: nothing is written to it, not even
    /// a schema migration (backup, `root status`, `check-config`).
    ReadOnly,
}

/// Why [`open`] failed.
#[derive(Debug)]
pub enum OpenError {
    /// [`OpenMode::Existing`] and nothing is there yet.
    Absent { location: String },
    /// The backend refused or failed.
    Backend { location: String, source: StoreError },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Absent { location } => write!(
                f,
                "no key store at {location} (check [store] path; the server creates it when it first starts)"
            ),
            OpenError::Backend { location, source } => write!(f, "{location}: {source}"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Absent { .. } => None,
            OpenError::Backend { source, .. } => Some(source),
        }
    }
}

/// Opens the store `config` names. Blocks briefly (files, a first connection):
/// async callers run it on the blocking pool.
pub fn open(config: &StoreConfig, mode: OpenMode) -> Result<Arc<dyn Store>, OpenError> {
    let backend = |source| OpenError::Backend {
        location: config.location(),
        source,
    };
    match config {
        StoreConfig::Sqlite { path } => {
            if mode != OpenMode::CreateIfAbsent && !sqlite_exists(path) {
                return Err(OpenError::Absent {
                    location: config.location(),
                });
            }
            let store = if mode == OpenMode::ReadOnly {
                SqliteStore::open_read_only(path, SqliteOptions::default())
            } else {
                SqliteStore::open(path, SqliteOptions::default())
            };
            Ok(Arc::new(store.map_err(backend)?))
        }
        // A remote store cannot tell "absent" from "empty" without a call
        // (and `open` makes none): `Existing` opens it like the server does.
        StoreConfig::OpenBao(bao) => {
            let store = if mode == OpenMode::ReadOnly {
                OpenBaoStore::open_read_only(bao)
            } else {
                OpenBaoStore::open(bao)
            };
            Ok(Arc::new(store.map_err(backend)?))
        }
        StoreConfig::SecretsManager(aws) => {
            let store = if mode == OpenMode::ReadOnly {
                SecretsManagerStore::open_read_only(aws)
            } else {
                SecretsManagerStore::open(aws)
            };
            Ok(Arc::new(store.map_err(backend)?))
        }
    }
}

/// A non-empty file: SQLite makes an empty one into a fresh database, and an
/// empty file is what a crashed first start can leave.
fn sqlite_exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn existing_mode_refuses_an_absent_store_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let config = StoreConfig::Sqlite { path: path.clone() };
        let err = open(&config, OpenMode::Existing).err().unwrap();
        assert!(matches!(err, OpenError::Absent { .. }), "{err}");
        assert!(!path.exists());
        let store = open(&config, OpenMode::CreateIfAbsent).unwrap();
        store.health().await.unwrap();
        drop(store);
        open(&config, OpenMode::Existing).unwrap();
        let read_only = open(&config, OpenMode::ReadOnly).unwrap();
        let err = read_only
            .create(&crate::store::conformance::sample_record("a", 1))
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        read_only.health().await.unwrap();
    }
}
