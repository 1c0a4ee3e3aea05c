//! `keyward restore`: put a backup back into a fresh store, after checking
//! that it is whole and unchanged (its manifest: MAC through the HSM, record
//! count and digest) and that the HSM holds every root key its key material
//! is sealed under, and prove it by opening a sample of keys through the key
//! service.
//!
//! The backup file is opened read-only and only if its schema is exactly
//! keyward's (a store's and the manifest table); its records are read through
//! the `Store` trait (only the record columns this build knows) and imported
//! into the configured store in one step, through an export that fails at its
//! end unless they are the records checked: nothing of the file's schema — a
//! trigger, a view, an extra table — reaches the store, and a file changed
//! after the check imports nothing.

use std::path::PathBuf;

use super::direct::{AdminLock, Direct, runtime};
use super::{CliError, CliResult, RunCommand};
use crate::hsm::CrkVersion;
use crate::keys::backup_mac::{self, ManifestMacError};
use crate::store::OpenMode;
use crate::store::backup::{self, BackupFile};

/// Records with material opened to verify a restore, unless `--verify-all`.
const DEFAULT_SAMPLE: u64 = 64;

#[derive(Debug, clap::Args)]
pub struct RestoreCommand {
    /// The configuration file naming the HSM and the store to restore into.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
    /// The backup file (from `keyward backup`).
    #[arg(long)]
    from: PathBuf,
    /// Replace a store that already holds records.
    #[arg(long)]
    force: bool,
    /// Open every restored key, not a sample.
    #[arg(long)]
    verify_all: bool,
}

impl RunCommand for RestoreCommand {
    fn run(self) -> CliResult {
        // Every check before anything is written: a refused restore changes nothing.
        let rt = runtime()?;
        let source = backup::open_file(&self.from).map_err(|e| CliError::from(e).context("restore"))?;
        self.check_manifest_present(&source)?;
        let (summary, found) = rt
            .block_on(backup::summarize_with_digest(&source.records))
            .map_err(|e| CliError::from(e).context("restore"))?;
        let direct = Direct::open(&self.config)?;
        let _lock = AdminLock::acquire(&direct.config, "restore")?;
        let location = direct.config.store.location();
        let versions = rt.block_on(direct.hsm.crk_versions())?;
        let missing: Vec<String> = summary
            .crks_with_material()
            .filter(|(v, _)| !versions.contains(&CrkVersion(*v)))
            .map(|(v, n)| format!("{} ({n} records)", CrkVersion(v).label()))
            .collect();
        if !missing.is_empty() {
            return Err(CliError::new(format!(
                "refusing: the backup holds keys sealed under root keys the HSM does not hold: {}",
                missing.join(", ")
            )));
        }
        if let Some(manifest) = &source.manifest {
            // The MAC first (is the manifest the HSM's?), then the records against it.
            let crk = CrkVersion(manifest.crk_version);
            let verified = match versions.contains(&crk) {
                true => rt.block_on(backup_mac::verify_manifest(&direct.hsm, manifest)),
                false => Err(ManifestMacError::RootKeyMissing(crk)),
            };
            verified.map_err(|e| CliError::new(format!("refusing {}: {e}", self.from.display())))?;
            manifest
                .check_records(&found)
                .map_err(|e| CliError::new(format!("refusing {}: {e}", self.from.display())))?;
            println!(
                "manifest verified: {} records, written {} by keyward {}, MACed under {}",
                manifest.body.records,
                super::clients::format_time(manifest.body.created_at),
                manifest.body.keyward_version,
                crk.label()
            );
        }
        let existing = direct.existing_store(OpenMode::Existing)?;
        if let Some(store) = &existing {
            let n: u64 = rt.block_on(store.count_by_crk())?.values().sum();
            if n > 0 && !self.force {
                return Err(CliError::new(format!(
                    "refusing: the store at {location} holds {n} records; restore into a fresh store or add --force"
                )));
            }
        }
        let store = match existing {
            Some(store) => store,
            None => crate::store::open(&direct.config.store, OpenMode::CreateIfAbsent)?,
        };
        // Every record the store held is replaced, in one step (all or nothing).
        rt.block_on(async {
            let records = backup::export_file(&source, found).await?;
            store.import(records, true).await
        })
        .map_err(|e| CliError::from(e).context("restore"))?;
        println!(
            "restored {} into {location}: {}",
            self.from.display(),
            super::backup::describe(&summary)
        );

        let newest = versions.iter().copied().max().unwrap_or(CrkVersion(1));
        let keys = direct.key_service(store, newest);
        let with_material: u64 = summary.crks_with_material().map(|(_, n)| n).sum();
        let every = if self.verify_all {
            1
        } else {
            with_material.div_ceil(DEFAULT_SAMPLE).max(1)
        };
        let (checked, failed) = rt.block_on(async {
            let (mut seen, mut checked, mut failed) = (0u64, 0u64, Vec::new());
            let mut after: Option<String> = None;
            loop {
                let page = keys.store().list_page(after.as_deref(), 256).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.uid.clone());
                for record in page.into_iter().filter(|r| !r.sealed.is_empty()) {
                    seen += 1;
                    if (seen - 1) % every != 0 {
                        continue;
                    }
                    let uid = record.uid.clone();
                    checked += 1;
                    if let Err(e) = keys.check_opens(record).await {
                        failed.push(format!("{uid}: {e}"));
                    }
                }
            }
            Ok::<_, CliError>((checked, failed))
        })?;
        if !failed.is_empty() {
            for f in failed.iter().take(10) {
                eprintln!("keyward: does not open: {f}");
            }
            return Err(CliError::new(format!(
                "restored, but {} of {checked} keys checked do not open with this HSM",
                failed.len()
            )));
        }
        println!("verified: {checked} of {with_material} keys opened under the HSM's root keys");
        Ok(())
    }
}

impl RestoreCommand {
    /// A backup without a manifest is refused, with no switch to take it
    /// anyway: a manifest stripped from a file would look the same.
    fn check_manifest_present(&self, source: &BackupFile) -> CliResult {
        if source.manifest.is_some() {
            return Ok(());
        }
        Err(CliError::new(format!(
            "refusing {}: it has no manifest, so nothing shows that it is whole and unchanged \
             (a backup written before backups carried a manifest: take a new backup with this \
             version from the live store)",
            self.from.display()
        )))
    }
}
