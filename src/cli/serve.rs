//! `keyward serve`: run the KMIP service until SIGTERM or SIGINT.
//!
//! A thin command: load the configuration, harden the process, start the
//! runtime, and hand over to [`crate::service`], which builds and supervises
//! the service.

use std::path::PathBuf;

use super::{CliError, CliResult, RunCommand};
use crate::config::Config;
use crate::service::Service;
use crate::system::harden;

#[derive(Debug, clap::Args)]
pub struct ServeCommand {
    /// The configuration file.
    #[arg(long, short)]
    config: PathBuf,
}

impl RunCommand for ServeCommand {
    fn run(self) -> CliResult {
        let config = Config::load(&self.config)?;
        crate::system::logging::init();
        harden_process(&config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("keyward")
            .build()
            .map_err(|e| CliError::new(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(async {
            let service = Service::build(config).await?;
            let metrics = service.start_metrics().await?;
            // Tests and scripts read these lines to learn the ports (listen on :0);
            // "listening on" comes last: when it is out, everything is.
            if let Some(metrics) = &metrics {
                println!("keyward: metrics on http://{}/metrics", metrics.local_addr());
            }
            for addr in service.local_addrs() {
                println!("keyward: listening on {addr}");
            }
            service.run_until_signal().await?;
            Ok(())
        })
    }
}

/// Makes the process unable to dump core and locks its memory (DESIGN §5) before any
/// key exists and before threads start; refuses root unless the config allows it.
fn harden_process(config: &Config) -> CliResult {
    let options = harden::HardeningOptions {
        allow_root: config.process.allow_root,
        lock_memory: config.process.lock_memory,
        ..harden::HardeningOptions::default()
    };
    let report = harden::apply(&options).map_err(|e| CliError::new(e.to_string()))?;
    if !report.core_dumps_prevented() {
        return Err(CliError::new(format!(
            "cannot prevent core dumps, refusing to hold keys: {report}"
        )));
    }
    if report.memory_locked.is_applied() {
        tracing::info!(hardening = %report, "process hardened");
    } else {
        tracing::warn!(hardening = %report, "process hardened, but key pages may be swapped");
    }
    Ok(())
}
