//! `keyward root rotate`: create CRK n+1 (or resume the rotation to it) and
//! re-seal every record under it, with a progress display and a final report.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cli::direct::{AdminLock, Direct, runtime};
use crate::cli::{CliError, CliResult};
use crate::hsm::{CrkVersion, HsmError};
use crate::keys::rotate::{Progress, RotationOptions, RotationStart, missing_crks, plan_rotation};

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The configuration file naming the HSM and the store.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
    /// Re-seals in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Most keys re-sealed per second, to spare a busy HSM (default: no limit).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_rate: Option<u32>,
}

pub(super) fn run(args: &RotateArgs) -> CliResult {
    let direct = Direct::open(&args.config)?;
    let _lock = AdminLock::acquire(&direct.config, "rotate")?;
    let store = direct.store()?;
    runtime()?.block_on(async {
        let started = Instant::now();
        let versions = direct.hsm.crk_versions().await?;
        let counts = crate::store::Store::count_by_crk(store.as_ref()).await?;
        for (version, n) in missing_crks(&versions, &counts) {
            eprintln!(
                "keyward: warning: {n} records are under root key {}, which the HSM does not hold; \
                 those with key material cannot be re-sealed",
                CrkVersion(version).label()
            );
        }
        let plan = plan_rotation(&versions, &counts)?;
        let target = plan.target();
        match plan {
            RotationStart::Create(v) => match create_crk_retrying(&direct, v).await {
                Ok(()) => println!("created root key {} in the HSM", v.label()),
                // Another process made it between our look and now: use it.
                Err(HsmError::AlreadyExists) => println!("root key {} exists; rotating to it", v.label()),
                Err(e) => return Err(CliError::from(e).context(format!("creating root key {}", v.label()))),
            },
            RotationStart::Resume(v) => {
                let pending: u64 = counts.iter().filter(|&(&c, _)| c != v.0).map(|(_, &n)| n).sum();
                println!(
                    "resuming the unfinished rotation to root key {} ({pending} records under older root keys)",
                    v.label()
                );
            }
        }
        // From here on the target exists in the HSM: servers switch to it within seconds.
        let target_since = Instant::now();
        let keys = direct.key_service(store, target);
        let options = RotationOptions {
            concurrency: usize::from(args.concurrency),
            max_rate: args.max_rate,
            ..RotationOptions::default()
        };
        let mut display = ProgressDisplay::new();
        let result = keys
            .rotate_to(target, target_since, &options, &mut |p| display.update(p))
            .await;
        display.finish();
        let report = result.map_err(|e| {
            CliError::from(e).context("rotation stopped (run `keyward root rotate` again to resume)")
        })?;
        println!("root rotation to {}:", target.label());
        println!("  keys re-sealed:       {}", report.resealed);
        println!(
            "  skipped:              {} (already under {}: {}; without key material, relabelled: {}; deleted meanwhile: {})",
            report.already_current + report.relabelled + report.gone,
            target.label(),
            report.already_current,
            report.relabelled,
            report.gone
        );
        println!("  passes:               {}", report.passes);
        println!(
            "  time taken:           {:.1} s ({:.1} s re-sealing)",
            started.elapsed().as_secs_f64(),
            report.resealing.as_secs_f64()
        );
        println!("  rate:                 {:.0} keys/s", report.rate());
        if !report.failed.is_empty() {
            for (uid, why) in report.failed.iter().take(10) {
                eprintln!("keyward: could not re-seal {uid}: {why}");
            }
            return Err(CliError::new(format!(
                "{} records could not be re-sealed and stay under their old root key, which therefore cannot be retired",
                report.failed.len()
            )));
        }
        let older: Vec<String> = versions
            .iter()
            .filter(|v| **v < target)
            .map(|v| v.0.to_string())
            .collect();
        if older.is_empty() {
            println!("every key is sealed under {}", target.label());
        } else {
            println!(
                "every key is sealed under {}; retire the old root key with `keyward root retire {}`",
                target.label(),
                older.join("` and `keyward root retire ")
            );
        }
        Ok(())
    })
}

/// A `\r`-updated bar when stderr is a terminal; otherwise a line every few
/// seconds (logs, CI).
struct ProgressDisplay {
    terminal: bool,
    started: Instant,
    last: Option<Instant>,
    /// When the last record was dealt with (the rate ignores idle waits).
    updated: Instant,
    drawn: bool,
    current: Progress,
}

impl ProgressDisplay {
    fn new() -> Self {
        ProgressDisplay {
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            updated: Instant::now(),
            drawn: false,
            current: Progress::default(),
        }
    }

    fn update(&mut self, p: Progress) {
        self.current = p;
        self.updated = Instant::now();
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(2)
        };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        self.draw();
    }

    fn draw(&mut self) {
        let p = self.current;
        let busy = self.updated.duration_since(self.started).as_secs_f64();
        let rate = p.resealed as f64 / busy.max(1e-3);
        let percent = (p.done * 100).checked_div(p.total).unwrap_or(100);
        let mut err = std::io::stderr().lock();
        if self.terminal {
            const WIDTH: u64 = 30;
            let filled = usize::try_from(percent.min(100) * WIDTH / 100).unwrap_or(0);
            let bar = format!("{}{}", "#".repeat(filled), ".".repeat(30 - filled.min(30)));
            let _ = write!(
                err,
                "\rpass {} [{bar}] {}/{} {percent:>3}%  {rate:.0} keys/s ",
                p.pass, p.done, p.total
            );
        } else {
            let _ = writeln!(
                err,
                "keyward: root rotate: pass {}: {}/{} records ({percent}%), {} re-sealed, {rate:.0} keys/s",
                p.pass, p.done, p.total, p.resealed
            );
        }
        let _ = err.flush();
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn || self.current.done > 0 {
            self.draw();
            if self.terminal {
                eprintln!();
            }
        }
    }
}

/// Creates the new root key, trying again when the HSM blips (SoftHSM shared with a
/// running server can fail a key generation while the other process rewrites the
/// token's files). A retry after a create that did succeed finds it: AlreadyExists.
async fn create_crk_retrying(direct: &Direct, v: CrkVersion) -> Result<(), HsmError> {
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match direct.hsm.create_crk(v).await {
            Err(HsmError::Other(_) | HsmError::Unavailable(_) | HsmError::Timeout)
                if attempt < super::super::hsm::HSM_ATTEMPTS =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            other => return other,
        }
    }
}
