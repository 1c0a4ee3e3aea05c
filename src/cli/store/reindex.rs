//! `keyward store reindex`: rebuilds this node's index of a remote store from
//! the store itself. The index is never the source of truth; rebuilding it is
//! always safe, also while the server runs. It is how a node accepts records
//! rolled back on purpose (a restore): until then it refuses versions older
//! than it has seen.

use std::path::PathBuf;

use crate::audit::AuditEvent;
use crate::cli::direct::runtime;
use crate::cli::{CliError, CliResult};
use crate::config::Config;
use crate::store::{IndexedStore, OpenMode};

#[derive(Debug, clap::Args)]
pub struct ReindexArgs {
    /// The configuration file naming the store and `[cluster] index`.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
}

pub(super) fn run(args: &ReindexArgs) -> CliResult {
    let config = Config::load(&args.config)?;
    let Some(cluster) = &config.cluster else {
        return Err(CliError::new(format!(
            "the {} store is its own index; reindex is for a remote store ([cluster] index)",
            config.store.kind()
        )));
    };
    let remote = crate::store::open(&config.store, OpenMode::ReadOnly)?;
    let index = IndexedStore::open(remote, cluster)?;
    let indexed = runtime()?.block_on(index.rebuild())?;
    crate::audit::AuditSink::record(
        crate::audit::AuditSettings::new(config.audit.path.clone()),
        AuditEvent::admin("StoreReindex").message(&format!("{indexed} records indexed")),
    )
    .map_err(|e| CliError::from(e).context("the index is rebuilt but its audit event was not written"))?;
    println!(
        "indexed {indexed} records from {} into {}",
        config.store.location(),
        cluster.path.display()
    );
    Ok(())
}
