//! `keyward backup`: a consistent copy of the store, taken while the server
//! runs, read through the `Store` trait (so it works on any backend) into one
//! SQLite file. It holds sealed keys and metadata only: without the HSM's root
//! keys nobody can open a key from it. Its manifest (how many records, a
//! digest of them all) is MACed under the HSM's newest root key, so that
//! `keyward restore` refuses a backup with records removed, added or put back
//! at older versions.

use std::path::PathBuf;

use super::direct::{Direct, runtime};
use super::{CliError, CliResult, RunCommand};
use crate::hsm::CrkVersion;
use crate::keys::backup_mac;
use crate::store::OpenMode;
use crate::store::backup::{self, Summary};

#[derive(Debug, clap::Args)]
pub struct BackupCommand {
    /// The configuration file naming the store and the HSM (whose newest root
    /// key MACs the backup's manifest).
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
    /// The backup file to write (0600); refused if it exists.
    #[arg(long)]
    out: PathBuf,
}

impl RunCommand for BackupCommand {
    fn run(self) -> CliResult {
        let direct = Direct::open(&self.config)?;
        let store = crate::store::open(&direct.config.store, OpenMode::ReadOnly)
            .map_err(|e| CliError::from(e).context("backup"))?;
        let rt = runtime()?;
        let crk = rt
            .block_on(direct.hsm.crk_versions())?
            .into_iter()
            .max()
            .ok_or_else(|| {
                CliError::new("backup: the HSM holds no root key to MAC the backup's manifest under")
            })?;
        let (pending, mac) = rt
            .block_on(async {
                let pending = backup::write_file(store.as_ref(), &self.out).await?;
                let mac = backup_mac::mac_manifest(&direct.hsm, crk, pending.manifest())
                    .await
                    .map_err(|e| CliError::from(e).context("MACing the backup's manifest"))?;
                Ok::<_, CliError>((pending, mac))
            })
            .map_err(|e| e.context("backup"))?;
        let summary = pending
            .finish(crk.0, mac)
            .map_err(|e| CliError::from(e).context("backup"))?;
        println!("wrote {}: {}", self.out.display(), describe(&summary));
        println!(
            "manifest: {} records, MACed under {}",
            summary.records,
            crk.label()
        );
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
