//! `keyward store migrate --to OTHER.toml`: copies every record of this
//! configuration's store into the store the other configuration names, exactly
//! (versions and times included, so every record's HSM binding still holds),
//! while the server keeps serving from the source.
//!
//! Resumable and convergent: a record the destination already holds at the
//! same version is skipped, an older one there is replaced, a newer one there
//! (something already serves from the destination) is left alone and
//! reported. Run it until it copies nothing, stop the servers, run it once
//! more, and start them on the new configuration. The same command with the
//! two configurations swapped migrates back.

use std::path::PathBuf;

use crate::audit::AuditEvent;
use crate::cli::direct::runtime;
use crate::cli::{CliError, CliResult};
use crate::config::Config;
use crate::store::{Export, OpenMode, Record, Store};

/// Records read from the source per step.
const PAGE: usize = 256;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The configuration whose store is copied (the source).
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
    /// The configuration naming the destination store (only its [store] and
    /// [cluster] sections are used).
    #[arg(long, value_name = "CONFIG")]
    to: PathBuf,
}

#[derive(Debug, Default)]
struct Tally {
    copied: u64,
    replaced: u64,
    unchanged: u64,
    newer_there: Vec<String>,
}

pub(super) fn run(args: &MigrateArgs) -> CliResult {
    let from_config = Config::load(&args.config)?;
    let to_config = Config::load(&args.to)?;
    if from_config.store == to_config.store {
        return Err(CliError::new("--to names the same store as --config"));
    }
    let from = crate::store::open(&from_config.store, OpenMode::ReadOnly)?;
    let to = crate::store::open(&to_config.store, OpenMode::CreateIfAbsent)?;
    let rt = runtime()?;
    let tally = rt.block_on(async {
        let total = super::count_uids(from.as_ref()).await?;
        let mut progress = super::Progress::new("migrating", total);
        let mut tally = Tally::default();
        let mut after: Option<String> = None;
        loop {
            let page = from.list_page(after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.uid.clone());
            let count = page.len();
            copy_page(to.as_ref(), page, &mut tally).await?;
            for _ in 0..count {
                progress.step();
            }
        }
        progress.finish();
        Ok::<_, CliError>(tally)
    })?;
    let summary = format!(
        "{} copied, {} replaced (older there), {} already there, {} newer there (left alone)",
        tally.copied,
        tally.replaced,
        tally.unchanged,
        tally.newer_there.len()
    );
    crate::audit::AuditSink::record(
        crate::audit::AuditSettings::new(from_config.audit.path.clone()),
        AuditEvent::admin("StoreMigrate").message(&format!(
            "{} -> {}: {summary}",
            from_config.store.location(),
            to_config.store.location()
        )),
    )
    .map_err(|e| CliError::from(e).context("records copied but the audit event was not written"))?;
    println!(
        "{} -> {}: {summary}",
        from_config.store.location(),
        to_config.store.location()
    );
    for uid in tally.newer_there.iter().take(20) {
        eprintln!("keyward: {uid} is newer in the destination: something already serves from it");
    }
    if tally.copied + tally.replaced > 0 {
        println!(
            "run it again until nothing is copied; then switch the servers to {}",
            args.to.display()
        );
    }
    Ok(())
}

/// Writes the records of one source page the destination lacks or holds
/// older, exactly as they are, in one import.
async fn copy_page(to: &dyn Store, page: Vec<Record>, tally: &mut Tally) -> Result<(), CliError> {
    let mut writes = Vec::with_capacity(page.len());
    for record in page {
        match to.get(&record.uid).await? {
            None => {
                tally.copied += 1;
                writes.push(record);
            }
            Some(there) if there.version == record.version && there.same_content(&record) => {
                tally.unchanged += 1;
            }
            Some(there) if there.version <= record.version => {
                // Older (or the same version with other content: a copy that
                // was interrupted and changed since): replaced exactly.
                to.delete(&record.uid, Some(there.version)).await?;
                tally.replaced += 1;
                writes.push(record);
            }
            Some(_) => tally.newer_there.push(record.uid),
        }
    }
    if !writes.is_empty() {
        let count = writes.len();
        to.import(Export::from_records(writes, count), false).await?;
    }
    Ok(())
}
