//! `keyward store status`: the store's kind, location and capabilities, whether
//! it answers (and how fast), how many records it holds, and how this node's
//! index of it compares.

use std::path::PathBuf;
use std::time::Instant;

use crate::cli::direct::runtime;
use crate::cli::{CliError, CliResult};
use crate::config::Config;
use crate::store::{OpenMode, SqliteOptions, SqliteStore};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The configuration file naming the store.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
}

pub(super) fn run(args: &StatusArgs) -> CliResult {
    let config = Config::load(&args.config)?;
    let store = crate::store::open(&config.store, OpenMode::ReadOnly)?;
    let caps = store.capabilities();
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "store:        {} at {}",
        config.store.kind(),
        config.store.location()
    );
    println!(
        "capabilities: compare-and-swap {}, server-side query {}, records changed in place {}, \
         atomic import {}, largest record {}",
        yes(caps.compare_and_swap),
        yes(caps.server_side_query),
        yes(caps.mutable_records),
        yes(caps.atomic_import),
        caps.max_record_bytes
            .map_or("no limit".to_owned(), |n| format!("{n} bytes")),
    );
    let rt = runtime()?;
    let started = Instant::now();
    let health = rt.block_on(store.health());
    match &health {
        Ok(()) => println!(
            "reachable:    yes (answered in {} ms)",
            started.elapsed().as_millis()
        ),
        Err(e) => println!("reachable:    NO: {e}"),
    }
    let records = match health {
        Ok(()) => Some(rt.block_on(super::count_uids(store.as_ref()))?),
        Err(_) => None,
    };
    if let Some(n) = records {
        println!("records:      {n}");
    }
    let Some(cluster) = &config.cluster else {
        return health.map_err(|e| CliError::new(format!("the store does not answer: {e}")));
    };
    if !cluster.path.exists() {
        println!(
            "index:        {} (not built yet: the server builds it, or `keyward store reindex`)",
            cluster.path.display()
        );
    } else {
        let index = SqliteStore::open_read_only(&cluster.path, SqliteOptions::default())?;
        let indexed = rt.block_on(super::count_uids(&index))?;
        let behind = records.map_or(String::new(), |n| match n.abs_diff(indexed) {
            0 => ", in step with the store".to_owned(),
            d => format!(", {d} apart from the store (the next sync closes the gap)"),
        });
        println!(
            "index:        {}: {indexed} records{behind}",
            cluster.path.display()
        );
    }
    println!(
        "cluster:      sync every {} s; reads from sealed copies for up to {} s when the store is out of reach",
        cluster.sync_interval.as_secs(),
        cluster.read_grace.as_secs()
    );
    health.map_err(|e| CliError::new(format!("the store does not answer: {e}")))
}
