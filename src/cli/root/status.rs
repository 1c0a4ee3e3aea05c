//! `keyward root status`: the root keys in the HSM and how many records each
//! one seals; whether a rotation is unfinished and what can be retired.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::cli::direct::{Direct, runtime};
use crate::cli::{CliError, CliResult};
use crate::hsm::CrkVersion;
use crate::store::{OpenMode, backup};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The configuration file naming the HSM and the store.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
}

pub(super) fn run(args: &StatusArgs) -> CliResult {
    let direct = Direct::open(&args.config)?;
    let rt = runtime()?;
    // Through the `Store` trait, from one consistent export: any backend.
    let summary = match direct.existing_store(OpenMode::ReadOnly)? {
        Some(store) => rt.block_on(backup::summarize(store.as_ref()))?,
        None => backup::Summary::default(),
    };
    let versions = rt.block_on(direct.hsm.crk_versions())?;
    let newest = versions.iter().copied().max();
    let all: BTreeSet<u32> = versions
        .iter()
        .map(|v| v.0)
        .chain(summary.by_crk.keys().copied())
        .collect();
    println!(
        "{:<16} {:<8} {:>10} {:>18}",
        "root key", "in HSM", "records", "with key material"
    );
    for v in &all {
        let crk = CrkVersion(*v);
        let count = summary.by_crk.get(v).copied().unwrap_or_default();
        let in_hsm = versions.contains(&crk);
        let note = if Some(crk) == newest {
            "  newest: new keys are sealed under it"
        } else if !in_hsm && count.with_material > 0 {
            "  UNREADABLE: the HSM does not hold this root key"
        } else {
            ""
        };
        println!(
            "{:<16} {:<8} {:>10} {:>18}{note}",
            crk.label(),
            if in_hsm { "yes" } else { "no" },
            count.records,
            count.with_material
        );
    }
    let Some(newest) = newest else {
        return Err(CliError::new("the HSM holds no root key; run `keyward hsm init`"));
    };
    let pending: u64 = summary
        .by_crk
        .iter()
        .filter(|&(&v, _)| v != newest.0)
        .map(|(_, c)| c.records)
        .sum();
    if pending > 0 {
        println!(
            "rotation: unfinished — {pending} records are under older root keys; run `keyward root rotate` to finish it"
        );
    } else {
        let retirable: Vec<String> = versions
            .iter()
            .filter(|v| **v < newest)
            .map(|v| v.0.to_string())
            .collect();
        if retirable.is_empty() {
            println!("rotation: none pending; every record is under {}", newest.label());
        } else {
            println!(
                "rotation: complete; no record needs root key(s) {} (`keyward root retire N` destroys one)",
                retirable.join(", ")
            );
        }
    }
    Ok(())
}
