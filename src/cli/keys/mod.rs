//! `keyward keys`: the key inventory — list and filter keys (by state, group,
//! creating client, vCenter's `x-` tags, creation time), show one with its
//! history, revoke, destroy, or move it to another group.
//!
//! Every command works on the store the configuration names, next to a running
//! server, without the HSM (no seal is opened: metadata only, never key
//! material). The server reads the store on every request, so a revoke, destroy
//! or move applies to its next request. Each change is an audit event.

mod destroy;
mod list;
mod move_group;
mod render;
mod revoke;
mod show;

use std::path::{Path, PathBuf};

use super::{CliError, CliResult, RunCommand};
use crate::audit::{AuditEvent, AuditSettings, AuditSink};
use crate::config::Config;
use crate::keys::KeyError;
use crate::keys::admin::KeyAdmin;
use crate::store::OpenMode;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List keys (table or --json), filtered by state, group, client, name, x- tags, creation time.
    List(list::ListArgs),
    /// Show one key: every attribute and its history (never the key material).
    Show(show::ShowArgs),
    /// Revoke a key (compromise: Compromised; other reasons: Deactivated).
    Revoke(revoke::RevokeArgs),
    /// Destroy a key's material (asks for confirmation; an Active key must be revoked first).
    Destroy(destroy::DestroyArgs),
    /// Move a key to another group: only that group's clients see it from then on.
    Move(move_group::MoveArgs),
}

impl RunCommand for KeysCommand {
    fn run(self) -> CliResult {
        match self {
            KeysCommand::List(a) => list::run(&a),
            KeysCommand::Show(a) => show::run(&a),
            KeysCommand::Revoke(a) => revoke::run(&a),
            KeysCommand::Destroy(a) => destroy::run(&a),
            KeysCommand::Move(a) => move_group::run(&a),
        }
    }
}

/// The `--config` option every subcommand takes.
#[derive(Debug, clap::Args)]
pub(super) struct ConfigOption {
    /// The configuration file naming the key store.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    pub config: PathBuf,
}

/// The configuration and its store, opened for one command.
pub(crate) struct Inventory {
    pub config: Config,
    pub admin: KeyAdmin,
    runtime: tokio::runtime::Runtime,
}

impl Inventory {
    pub(super) fn open(config_path: &Path) -> CliResult<Inventory> {
        let config = Config::load(config_path)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("cannot start the runtime: {e}")))?;
        // Never created here: a wrong path would otherwise look like an empty inventory.
        let store = crate::store::open(&config.store, OpenMode::Existing)?;
        Ok(Inventory {
            config,
            admin: KeyAdmin::new(store),
            runtime,
        })
    }

    pub(super) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Runs `change` on a key service over the HSM and this store (a change
    /// re-binds the record under the HSM, so it needs the HSM and its PIN).
    pub(super) fn change<T, F, Fut>(&self, config_path: &Path, change: F) -> Result<T, KeyError>
    where
        F: FnOnce(std::sync::Arc<crate::keys::KeyService>) -> Fut,
        Fut: std::future::Future<Output = Result<T, KeyError>>,
    {
        let direct = crate::cli::direct::Direct::open(config_path)
            .map_err(|e| KeyError::Hsm(crate::hsm::HsmError::Unavailable(e.to_string())))?;
        let store = crate::store::open(&self.config.store, OpenMode::Existing)
            .map_err(|e| KeyError::Store(crate::store::StoreError::unavailable(e.to_string())))?;
        self.block_on(async {
            let crk = direct
                .hsm
                .crk_versions()
                .await?
                .into_iter()
                .max()
                .ok_or(KeyError::Hsm(crate::hsm::HsmError::NotFound))?;
            change(direct.key_service(store, crk)).await
        })
    }

    /// Writes an administrative event and waits until it is written.
    pub(super) fn audit(&self, event: AuditEvent) -> CliResult {
        AuditSink::record(AuditSettings::new(self.config.audit.path.clone()), event)
            .map_err(|e| CliError::from(e).context("the change is made but its audit event was not written"))
    }
}

/// The one-line error for a key operation that failed.
pub(crate) fn key_error(uid: &str, e: KeyError) -> CliError {
    match e {
        KeyError::NotFound => CliError::new(format!("no key with id {uid:?} (see `keyward keys list`)")),
        KeyError::NotPermitted(why) => CliError::new(format!("key {uid}: refused: {why}")),
        KeyError::NotAllowedInState(s) => CliError::new(format!(
            "key {uid}: refused: not allowed in state {}",
            s.name().unwrap_or("unknown")
        )),
        KeyError::WrongState(s) => CliError::new(format!(
            "key {uid} is {}; the operation does not apply",
            s.name().unwrap_or("in an unknown state")
        )),
        other => CliError::from(other).context(format!("key {uid}")),
    }
}

pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Records a refused admin action too, so the trail shows attempts, then
/// returns the error.
pub(crate) fn refused(inv: &Inventory, operation: &str, uid: &str, error: CliError) -> CliError {
    let event = AuditEvent::admin(operation)
        .object(Some(uid))
        .failed("Refused", &error.to_string());
    match inv.audit(event) {
        Ok(()) => error,
        Err(e) => error.context(e),
    }
}
