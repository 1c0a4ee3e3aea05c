//! `keyward serve`: run the KMIP service until SIGTERM or SIGINT; SIGHUP
//! reloads client trust without dropping connections.

use std::path::PathBuf;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::{CliError, CliResult, RunCommand};
use crate::config::Config;
use crate::net::server::Server;

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
    let _ = stop_tx.send(true);
    serving
        .await
        .map_err(|e| CliError::new(format!("server task failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
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
