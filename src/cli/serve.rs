//! `keyward serve`: run the KMIP service until SIGTERM or SIGINT; SIGHUP
//! reloads client trust without dropping connections.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::{CliError, CliResult, RunCommand};
use crate::config::Config;
use crate::net::server::Server;
use crate::system::{harden, notify};

#[derive(Debug, clap::Args)]
pub struct ServeCommand {
    /// The configuration file.
    #[arg(long, short)]
    config: PathBuf,
}

impl RunCommand for ServeCommand {
    fn run(self) -> CliResult {
        let config = Config::load(&self.config)?;
        init_logging();
        harden_process(&config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("keyward")
            .build()
            .map_err(|e| CliError::new(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(serve(config, self.config))
    }
}

async fn serve(config: Config, config_path: PathBuf) -> CliResult {
    let server = Server::build(config).await?;
    for addr in &server.local_addrs {
        // Tests and scripts read this line to learn the port (listen on :0).
        println!("keyward: listening on {addr}");
    }
    tracing::info!(addrs = ?server.local_addrs, "keyward serving");
    // Listener bound, HSM and store open: tell systemd (no-ops outside it).
    let addrs: Vec<String> = server.local_addrs.iter().map(|a| a.to_string()).collect();
    report_notify("READY", notify::ready());
    report_notify(
        "STATUS",
        notify::status(&format!("serving KMIP on {}", addrs.join(", "))),
    );
    // Pinged from the server's own runtime, so a stalled runtime stops the pings.
    let watchdog = notify::spawn_watchdog(|| true);
    let trust = std::sync::Arc::clone(&server.trust);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let serving = tokio::spawn(server.run(stop_rx));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match Server::reload_trust(&trust, &config_path) {
                Ok(()) => tracing::info!("client trust reloaded"),
                Err(e) => tracing::warn!(error = %e, "trust reload failed; keeping the trust in force"),
            },
        }
    }
    tracing::info!("shutting down: draining connections");
    report_notify("STOPPING", notify::stopping());
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    let _ = stop_tx.send(true);
    serving
        .await
        .map_err(|e| CliError::new(format!("server task failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
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

/// A lost notification is worth a warning, never a failure: systemd acts on its absence.
fn report_notify(what: &str, result: std::io::Result<bool>) {
    if let Err(e) = result {
        tracing::warn!(notification = what, error = %e, "cannot notify systemd");
    }
}

/// Logs go to stderr (the journal under systemd), filtered by `KEYWARD_LOG`
/// (`info` by default).
fn init_logging() {
    let level = std::env::var("KEYWARD_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}
