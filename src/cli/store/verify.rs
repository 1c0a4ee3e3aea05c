//! `keyward store verify`: reads every record and opens its seal under the
//! HSM: readable, bound (not changed outside keyward), key material that
//! decodes. Changes nothing. Exits non-zero when any record fails.

use std::path::PathBuf;

use crate::cli::direct::{Direct, runtime};
use crate::cli::{CliError, CliResult};
use crate::store::OpenMode;

/// Failures printed one by one; the rest are counted.
const SHOWN_FAILURES: usize = 20;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The configuration file naming the HSM and the store.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
}

#[derive(Debug, Default)]
struct Tally {
    bound: u64,
    earlier_seal: u64,
    without_material: u64,
    failed: Vec<String>,
}

pub(super) fn run(args: &VerifyArgs) -> CliResult {
    let direct = Direct::open(&args.config)?;
    let store = crate::store::open(&direct.config.store, OpenMode::ReadOnly)?;
    let rt = runtime()?;
    let tally = rt.block_on(async {
        let crk = direct
            .hsm
            .crk_versions()
            .await?
            .into_iter()
            .max()
            .ok_or_else(|| CliError::new("the HSM holds no root key; run `keyward hsm init`"))?;
        let total = super::count_uids(store.as_ref()).await?;
        let keys = direct.key_service(store, crk);
        let mut progress = super::Progress::new("verifying", total);
        let mut tally = Tally::default();
        let mut after: Option<String> = None;
        loop {
            let page = keys.store().list_page(after.as_deref(), 256).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.uid.clone());
            for record in page {
                let uid = record.uid.clone();
                match keys.check_record(record).await {
                    Ok(check) => {
                        tally.bound += u64::from(check.bound);
                        tally.earlier_seal += u64::from(!check.bound);
                        tally.without_material += u64::from(!check.has_material);
                    }
                    Err(e) => tally.failed.push(format!("{uid}: {e}")),
                }
                progress.step();
            }
        }
        progress.finish();
        Ok::<_, CliError>(tally)
    })?;
    let checked = tally.bound + tally.earlier_seal + tally.failed.len() as u64;
    println!(
        "{checked} records checked: {} bound under the HSM, {} sealed by an earlier keyward (bound on their next change or `keyward root rotate`), {} without key material (destroyed), {} FAILED",
        tally.bound,
        tally.earlier_seal,
        tally.without_material,
        tally.failed.len()
    );
    for failure in tally.failed.iter().take(SHOWN_FAILURES) {
        eprintln!("keyward: {failure}");
    }
    if tally.failed.len() > SHOWN_FAILURES {
        eprintln!("keyward: ... and {} more", tally.failed.len() - SHOWN_FAILURES);
    }
    match tally.failed.is_empty() {
        true => Ok(()),
        false => Err(CliError::new(format!(
            "{} of {checked} records fail verification: changed outside keyward, or sealed under a root key this HSM lacks",
            tally.failed.len()
        ))),
    }
}
