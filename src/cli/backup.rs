//! `keyward backup`: a consistent copy of the store, taken while the server
//! runs, read through the `Store` trait (so it works on any backend) into one
//! SQLite file. It holds sealed keys and metadata only: without the HSM's root
//! keys nobody can open a key from it.

use std::path::PathBuf;

use super::direct::runtime;
use super::{CliError, CliResult, RunCommand};
use crate::config::Config;
use crate::hsm::CrkVersion;
use crate::store::OpenMode;
use crate::store::backup::{self, Summary};

#[derive(Debug, clap::Args)]
pub struct BackupCommand {
    /// The configuration file naming the store.
    #[arg(long, short)]
    config: PathBuf,
    /// The backup file to write (0600); refused if it exists.
    #[arg(long)]
    out: PathBuf,
}

impl RunCommand for BackupCommand {
    fn run(self) -> CliResult {
        let config = Config::load(&self.config)?;
        let store = crate::store::open(&config.store, OpenMode::ReadOnly)
            .map_err(|e| CliError::from(e).context("backup"))?;
        let summary = runtime()?
            .block_on(backup::write_file(store.as_ref(), &self.out))
            .map_err(|e| CliError::from(e).context("backup"))?;
        println!("wrote {}: {}", self.out.display(), describe(&summary));
        println!(
            "it holds sealed keys and metadata only; restoring it needs the HSM token with those root keys"
        );
        Ok(())
    }
}

/// "N records; sealed under keyward-crk-2 (N)" for a summary line.
pub(super) fn describe(summary: &Summary) -> String {
    let sealed: Vec<String> = summary
        .crks_with_material()
        .map(|(v, n)| format!("{} ({n})", CrkVersion(v).label()))
        .collect();
    format!(
        "{} records; key material sealed under {}",
        summary.records,
        if sealed.is_empty() {
            "no root key (no key material)".to_owned()
        } else {
            sealed.join(", ")
        }
    )
}
