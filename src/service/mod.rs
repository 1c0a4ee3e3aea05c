//! The running service (layer 7): the one place that builds keyward from a
//! [`Config`] — HSM (`hsm::open`), store (`store::open`), key service, KMIP
//! operations, TLS, listener and audit trail — and keeps it running: the
//! root-key follower, the HSM and store probes, the trust and certificate
//! watcher, the last-seen map and SIGHUP reloads (see [`supervise`]). The
//! [`Health`] it shares is what the probes learn; the [`KmipHandler`] reports
//! every item outcome in one place.
//!
//! `net` below it is listener and TLS only; `cli` above it loads the
//! configuration, hardens the process, starts a runtime and calls
//! [`Service::build`] and [`Service::run_until_signal`].

mod cluster;
mod error;
mod handler;
mod health;
pub mod supervise;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::audit::{AuditSettings, AuditSink};
use crate::auth::{TrustSnapshot, TrustStore};
use crate::config::Config;
use crate::hsm::{AsyncHsm, CrkVersion};
use crate::keys::KeyService;
use crate::net::tls::{ServerConfigSource, TlsSettings};
use crate::net::{Listener, ListenerSettings, ListenerStats};
use crate::ops::{Operations, ServerInfo};
use crate::store::{IndexedStore, OpenMode, Store};
use crate::ttlv::DecodeLimits;

pub use crate::auth::DEFAULT_GROUP;
pub use error::ServeError;
pub use handler::KmipHandler;
pub use health::{Health, HealthSnapshot};

/// A built service, bound to its addresses and ready to run.
pub struct Service {
    listener: Arc<Listener<KmipHandler>>,
    sockets: Vec<TcpListener>,
    local_addrs: Vec<SocketAddr>,
    trust: Arc<TrustStore>,
    keys: Arc<KeyService>,
    /// With a remote store: this node's index of it (kept in step by a task).
    index: Option<Arc<IndexedStore>>,
    health: Arc<Health>,
    metrics: crate::metrics::Metrics,
    watched: supervise::Watched,
    config: Config,
}

impl Service {
    /// Opens the HSM and the store, loads trust, opens the audit trail and binds
    /// the listen addresses.
    pub async fn build(config: Config) -> Result<Service, ServeError> {
        // Stamped before trust is loaded: a change in between is then seen by the first poll.
        let watched = supervise::Watched::new(&config);
        let metrics = crate::metrics::Metrics::new();
        let (hsm, crk) = open_hsm(&config).await?;
        let hsm = hsm.with_instruments(metrics.hsm_instruments());
        let (store, index) = open_store(&config).await?;
        store.set_instruments(metrics.store_instruments());
        metrics.set_crk_version(crk.0);
        let keys = KeyService::new(hsm, store, crk)
            .with_metrics(metrics.clone())
            .with_object_quota(config.server.max_objects_per_group);
        // The gauge is for operators; a store that cannot count yet must not
        // keep keys from being served.
        if let Err(e) = keys.count_keys_by_state().await {
            tracing::warn!(error = %e, "cannot count keys by state; the keys gauge starts at zero");
        }
        let keys = Arc::new(keys);
        let health = Arc::new(Health::with_metrics(metrics.clone()));
        health.set_hsm_usable(true);
        health.set_store_usable(true);
        if let Some(index) = &index {
            health.set_store_reach(index.reach());
        }
        let trust = Arc::new(TrustStore::from_config(&config.tls)?);
        let tls = ServerConfigSource::new(&TlsSettings::from_config(&config.tls), Arc::clone(&trust))?;
        let limits = DecodeLimits {
            max_message_bytes: config.server.max_message_bytes,
            ..DecodeLimits::default()
        };
        let settings = ListenerSettings {
            max_connections: config.server.max_connections,
            max_handshakes: config.server.max_handshakes,
            max_handshakes_per_source: config.server.max_handshakes_per_source,
            first_byte_timeout: config.server.first_byte_timeout,
            handshake_timeout: config.server.handshake_timeout,
            read_timeout: config.server.read_timeout,
            // A response is as small as the request that asked for it; give its
            // delivery the same time a request gets to arrive.
            write_timeout: config.server.read_timeout,
            idle_timeout: config.server.idle_timeout,
            max_message_bytes: config.server.max_message_bytes,
            max_request_bytes_in_flight: config.server.max_request_bytes_in_flight,
            ..ListenerSettings::default()
        };
        let mut sockets = Vec::new();
        let mut local_addrs = Vec::new();
        for addr in &config.server.listen {
            let socket = TcpListener::bind(addr)
                .await
                .map_err(|e| ServeError::Bind(*addr, e))?;
            local_addrs.push(socket.local_addr().map_err(|e| ServeError::Bind(*addr, e))?);
            sockets.push(socket);
        }
        // Bound sockets queue connections the listener serves once running:
        // ready from a client's point of view from here on (and before the
        // `listening on` line that tells scripts and tests so).
        health.set_listener_up(true);
        let audit = AuditSink::start(AuditSettings::new(config.audit.path.clone()))?;
        audit.report_to(&metrics);
        if let Some(index) = &index {
            cluster::report_events(index, audit.clone(), metrics.clone());
        }
        let handler = KmipHandler {
            ops: Operations::new(Arc::clone(&keys), ServerInfo::default(), limits),
            audit,
            metrics: metrics.clone(),
            refusals: Default::default(),
        };
        let listener = Arc::new(Listener {
            settings,
            tls: Arc::new(tls),
            handler: Arc::new(handler),
            stats: Arc::new(ListenerStats::default()),
            metrics: metrics.clone(),
        });
        Ok(Service {
            listener,
            sockets,
            local_addrs,
            trust,
            keys,
            index,
            health,
            metrics,
            watched,
            config,
        })
    }

    /// The bound addresses (the real ports when the config says `:0`).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The shared health state the probes keep up to date.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The service's metrics (what the metrics listener exposes).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Starts the metrics and health listener on `[metrics] listen`, if set:
    /// `/metrics`, `/health/live`, `/health/ready` (ready = listening, HSM and
    /// store usable). The listener stops when the returned handle is dropped.
    pub async fn start_metrics(&self) -> Result<Option<crate::metrics::MetricsServer>, ServeError> {
        let Some(addr) = self.config.metrics.listen else {
            return Ok(None);
        };
        let health = Arc::clone(&self.health);
        let server = crate::metrics::serve(addr, self.metrics.clone(), move || health.readiness())
            .await
            .map_err(|e| ServeError::Bind(addr, e))?;
        Ok(Some(server))
    }

    /// The listener's connection counters.
    pub fn listener_stats(&self) -> &Arc<ListenerStats> {
        &self.listener.stats
    }

    /// The configuration the service was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves until `shutdown` turns true; then drains and returns. No
    /// supervision: [`Service::run_until_signal`] is the daemon.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let Service {
            listener,
            sockets,
            health,
            ..
        } = self;
        serve(listener, sockets, &health, shutdown).await;
    }
}

/// Serves on `sockets` until `shutdown`; then every answered request's audit
/// event reaches the trail before this returns.
async fn serve(
    listener: Arc<Listener<KmipHandler>>,
    sockets: Vec<TcpListener>,
    health: &Health,
    shutdown: watch::Receiver<bool>,
) {
    let audit = listener.handler.audit.clone();
    listener.serve(sockets, shutdown).await;
    health.set_listener_up(false);
    let _ = tokio::task::spawn_blocking(move || audit.flush(std::time::Duration::from_secs(5))).await;
}

/// The HSM the configuration names, and its newest root key.
async fn open_hsm(config: &Config) -> Result<(AsyncHsm, CrkVersion), ServeError> {
    let mut settings = config.hsm.settings()?;
    // A server lives long beside other processes using the token (root rotate).
    settings.restart_on_missing_root_key = true;
    let hsm = tokio::task::spawn_blocking(move || crate::hsm::open_async(&settings))
        .await
        .map_err(|source| ServeError::Task {
            what: "opening the HSM",
            source,
        })??;
    let crk = hsm
        .crk_versions()
        .await?
        .into_iter()
        .max()
        .ok_or(ServeError::NoRootKey)?;
    Ok((hsm, crk))
}

/// The store the configuration names, created if absent; a remote store comes
/// behind this node's index of it (`[cluster]`), which is also returned.
async fn open_store(config: &Config) -> Result<(Arc<dyn Store>, Option<Arc<IndexedStore>>), ServeError> {
    let store_config = config.store.clone();
    let cluster = config.cluster.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let store = crate::store::open(&store_config, OpenMode::CreateIfAbsent)?;
        let Some(settings) = cluster else {
            return Ok((store, None));
        };
        let index =
            IndexedStore::open(store, &settings).map_err(|source| crate::store::OpenError::Backend {
                location: settings.path.display().to_string(),
                source,
            })?;
        let index = Arc::new(index);
        Ok::<_, crate::store::OpenError>((Arc::clone(&index) as Arc<dyn Store>, Some(index)))
    })
    .await
    .map_err(|source| ServeError::Task {
        what: "opening the store",
        source,
    })??;
    Ok(opened)
}

/// Checks that the server certificate and key load as the service would load
/// them (the key parses and belongs to the certificate), for `check-config`.
pub fn check_server_key(config: &Config) -> Result<(), ServeError> {
    let trust = Arc::new(TrustStore::new(TrustSnapshot::empty()));
    ServerConfigSource::new(&TlsSettings::from_config(&config.tls), trust)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_pin_file_is_a_typed_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"
[tls]
cert = "server.pem"
key = "server.key"

[hsm]
module = "/nonexistent/libpkcs11.so"
token_label = "keyward"
pin_file = "missing.pin"

[store]
kind = "sqlite"
path = "keyward.db"
"#;
        let config = Config::from_toml(text, dir.path()).unwrap();
        let err = Service::build(config).await.err().unwrap();
        assert!(matches!(err, ServeError::Config(_)), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().starts_with("configuration: "), "{err}");
        assert!(
            !dir.path().join("keyward.db").exists(),
            "nothing opened before the HSM"
        );
    }
}
