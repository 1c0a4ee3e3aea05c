//! What the administration commands that work on the HSM and the store
//! directly (root rotation, backup, restore) share: opening them from the
//! configuration in this process — beside a running server, with its own HSM
//! session and store connection — and a lock that keeps two such commands
//! from running on one store at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::hsm::connect;
use super::{CliError, CliResult};
use crate::config::Config;
use crate::hsm::{AsyncHsm, CrkVersion};
use crate::keys::KeyService;
use crate::store::{OpenError, OpenMode, Store};

/// The configuration with the HSM opened and logged in.
pub(super) struct Direct {
    pub config: Config,
    pub hsm: AsyncHsm,
}

impl Direct {
    /// Loads `config_path` and opens its HSM (blocking; call before the runtime).
    pub(super) fn open(config_path: &Path) -> CliResult<Direct> {
        let config = Config::load(config_path)?;
        // These commands unseal keys (rotation, restore checks, store verify):
        // the same no-core-dump rule as the server, though an administrator may
        // run them as root, and the configuration's memory locking (where
        // RLIMIT_MEMLOCK allows, as for the server), so plaintext keys are not
        // swapped out.
        let options = crate::system::harden::HardeningOptions {
            allow_root: true,
            lock_memory: config.process.lock_memory,
            ..Default::default()
        };
        let report = crate::system::harden::apply(&options).map_err(|e| CliError::new(e.to_string()))?;
        if !report.core_dumps_prevented() {
            return Err(CliError::new(format!(
                "cannot prevent core dumps, refusing to open keys: {report}"
            )));
        }
        let hsm = connect(config_path)?;
        let hsm = AsyncHsm::new(hsm, config.hsm.call_timeout);
        Ok(Direct { config, hsm })
    }

    /// The store the configuration names; refuses one that does not exist yet
    /// (a wrong path must not look like an empty store).
    pub(super) fn store(&self) -> CliResult<Arc<dyn Store>> {
        Ok(crate::store::open(&self.config.store, OpenMode::Existing)?)
    }

    /// The store the configuration names, or `None` when there is none yet;
    /// `mode` is [`OpenMode::Existing`] or [`OpenMode::ReadOnly`].
    pub(super) fn existing_store(&self, mode: OpenMode) -> CliResult<Option<Arc<dyn Store>>> {
        match crate::store::open(&self.config.store, mode) {
            Ok(store) => Ok(Some(store)),
            Err(OpenError::Absent { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A key service over the HSM and `store`, sealing new material under `crk`.
    pub(super) fn key_service(&self, store: Arc<dyn Store>, crk: CrkVersion) -> Arc<KeyService> {
        Arc::new(KeyService::new(self.hsm.clone(), store, crk))
    }
}

/// A small runtime for one command.
pub(super) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the runtime: {e}")))
}

/// An exclusive lock on `<store>.admin-lock`, held until dropped. The kernel
/// releases it when the process dies (even by `kill -9`), so a crashed
/// rotation never leaves a stale lock behind.
pub(super) struct AdminLock {
    _file: File,
}

impl AdminLock {
    pub(super) fn acquire(config: &Config, what: &str) -> CliResult<AdminLock> {
        let path = lock_path(config)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| CliError::from(e).context(path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(AdminLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(CliError::new(format!(
                "another `keyward root rotate`, `root retire` or `restore` is running on this store; \
                 refusing to {what} at the same time"
            ))),
            Err(TryLockError::Error(e)) => Err(CliError::from(e).context(path.display())),
        }
    }
}

/// `<store file>.admin-lock` beside a local store; beside this node's index
/// for a remote one. The lock keeps two commands on one node apart; across
/// nodes, run them on one node at a time (a rotation resumes where another
/// stopped, see `keys::rotate`).
fn lock_path(config: &Config) -> CliResult<PathBuf> {
    let store = config
        .store
        .local_file()
        .or_else(|| config.cluster.as_ref().map(|c| c.path.as_path()))
        .ok_or_else(|| {
            CliError::new(format!(
                "the {} store has no local file to lock and no [cluster] index beside which to lock",
                config.store.kind()
            ))
        })?;
    let mut name = store.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".admin-lock");
    Ok(store.with_file_name(name))
}
