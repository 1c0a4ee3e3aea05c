//! `keyward root retire N`: destroy CRK N in the HSM — crypto-shredding
//! whatever is still sealed under it — only when no record needs it.

use std::path::PathBuf;

use crate::cli::direct::{AdminLock, Direct, runtime};
use crate::cli::{CliError, CliResult};
use crate::hsm::CrkVersion;

#[derive(Debug, clap::Args)]
pub struct RetireArgs {
    /// The root key version to destroy (N of `keyward-crk-N`).
    version: u32,
    /// The configuration file naming the HSM and the store.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
}

pub(super) fn run(args: &RetireArgs) -> CliResult {
    let direct = Direct::open(&args.config)?;
    // Not while a rotation runs: it may be re-sealing away from this very key.
    let _lock = AdminLock::acquire(&direct.config, "retire a root key")?;
    let store = direct.store()?;
    let crk = CrkVersion(args.version);
    runtime()?.block_on(async {
        let versions = direct.hsm.crk_versions().await?;
        if !versions.contains(&crk) {
            return Err(CliError::new(format!(
                "refusing: the HSM holds no root key {}",
                crk.label()
            )));
        }
        if versions.iter().max() == Some(&crk) {
            return Err(CliError::new(format!(
                "refusing: {} is the newest root key and new keys are sealed under it; \
                 run `keyward root rotate` first",
                crk.label()
            )));
        }
        let counts = store.count_by_crk().await?;
        let still = counts.get(&crk.0).copied().unwrap_or(0);
        if still > 0 {
            return Err(CliError::new(format!(
                "refusing: {still} records are still sealed under {}; run `keyward root rotate` to finish the rotation first",
                crk.label()
            )));
        }
        direct
            .hsm
            .destroy_crk(crk)
            .await
            .map_err(|e| CliError::from(e).context(format!("destroying {}", crk.label())))?;
        let total: u64 = counts.values().sum();
        println!(
            "destroyed root key {} in the HSM; the store's {total} records are sealed under newer root keys",
            crk.label()
        );
        Ok(())
    })
}
