//! Assembling the service from its configuration: HSM, store, key service,
//! KMIP operations, TLS and the listener — and running it until told to stop.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::listener::{ConnectionInfo, Listener, ListenerSettings, ListenerStats, RequestHandler};
use super::tls::{ServerConfigSource, TlsSettings};
use crate::audit::{AuditEvent, AuditSettings, AuditSink, EventKind};
use crate::auth::Caller;
use crate::auth::TrustStore;
use crate::config::{Config, StoreKind};
use crate::hsm::{AsyncHsm, CrkVersion, Pkcs11Hsm};
use crate::keys::KeyService;
use crate::ops::{ItemOutcome, Operations, ServerInfo};
use crate::store::{SqliteOptions, SqliteStore, Store};
use crate::ttlv::DecodeLimits;

#[derive(Debug)]
pub enum ServeError {
    Config(String),
    Hsm(String),
    Store(String),
    Tls(String),
    Bind(SocketAddr, std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "configuration: {e}"),
            ServeError::Hsm(e) => write!(f, "HSM: {e}"),
            ServeError::Store(e) => write!(f, "store: {e}"),
            ServeError::Tls(e) => write!(f, "TLS: {e}"),
            ServeError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Answers KMIP messages through [`Operations`] and reports each item to the
/// service log (the audit trail builds on these events).
pub struct KmipHandler {
    pub ops: Operations,
    pub audit: AuditSink,
}

impl RequestHandler for KmipHandler {
    async fn handle(&self, conn: &ConnectionInfo, request: Vec<u8>) -> Option<Vec<u8>> {
        let caller = &conn.caller;
        // A Register request carries key material: wipe it once handled.
        let request = zeroize::Zeroizing::new(request);
        let handled = self.ops.handle(caller, &request).await;
        for outcome in &handled.outcomes {
            let x_name = outcome
                .unique_identifier
                .as_deref()
                .and_then(|uid| self.ops.keys.known_x_name(uid));
            self.audit
                .emit(audit_event(conn, caller, outcome).x_name(x_name.as_deref()));
        }
        handled.response
    }

    fn refused(&self, peer: SocketAddr, reason: &str) {
        self.audit.emit(
            AuditEvent::new(EventKind::Connection, "Connect")
                .source(peer)
                .refused(reason),
        );
    }
}

fn audit_event(conn: &ConnectionInfo, caller: &Caller, outcome: &ItemOutcome) -> AuditEvent {
    let fingerprint = hex::encode(conn.identity.fingerprint);
    let event = AuditEvent::new(EventKind::Kmip, outcome.operation.name().unwrap_or("Unknown"))
        .client(Some(caller.name()), Some(&fingerprint), Some(caller.group()))
        .source(conn.peer)
        .object(outcome.unique_identifier.as_deref());
    match &outcome.result {
        Ok(()) => event,
        // The audit line gets the internal detail the client's message only
        // names by its reference.
        Err(e) => event.failed(e.reason.name().unwrap_or("Unknown"), &e.audit_message()),
    }
}

/// A built service, bound to its addresses and ready to run.
pub struct Server {
    pub listener: Arc<Listener<KmipHandler>>,
    pub sockets: Vec<TcpListener>,
    pub local_addrs: Vec<SocketAddr>,
    pub trust: Arc<TrustStore>,
    pub keys: Arc<KeyService>,
    pub config: Config,
}

impl Server {
    /// Opens the HSM and the store, loads trust and binds the listen addresses.
    pub async fn build(config: Config) -> Result<Server, ServeError> {
        let pin = config
            .hsm
            .read_pin()
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let mut hsm_config = crate::hsm::HsmConfig::new(&config.hsm.module, &config.hsm.token_label, pin);
        hsm_config.slot_id = config.hsm.slot;
        hsm_config.call_timeout = config.hsm.call_timeout;
        let timeout = hsm_config.call_timeout;
        let hsm_threads = hsm_config.session_pool_size;
        let hsm = tokio::task::spawn_blocking(move || Pkcs11Hsm::connect(&hsm_config))
            .await
            .map_err(|e| ServeError::Hsm(e.to_string()))?
            .map_err(|e| ServeError::Hsm(e.to_string()))?;
        let hsm = AsyncHsm::with_threads(Arc::new(hsm), timeout, hsm_threads);
        let crk = hsm
            .crk_versions()
            .await
            .map_err(|e| ServeError::Hsm(e.to_string()))?
            .into_iter()
            .max()
            .ok_or_else(|| {
                ServeError::Hsm("the token holds no root key; run `keyward hsm init` first".into())
            })?;

        let store: Arc<dyn Store> = match config.store.kind {
            StoreKind::Sqlite => {
                let path = config.store.path.clone();
                let store =
                    tokio::task::spawn_blocking(move || SqliteStore::open(&path, SqliteOptions::default()))
                        .await
                        .map_err(|e| ServeError::Store(e.to_string()))?
                        .map_err(|e| ServeError::Store(e.to_string()))?;
                Arc::new(store)
            }
        };
        Self::assemble(config, hsm, store, crk).await
    }

    async fn assemble(
        config: Config,
        hsm: AsyncHsm,
        store: Arc<dyn Store>,
        crk: CrkVersion,
    ) -> Result<Server, ServeError> {
        let keys = Arc::new(KeyService::new(hsm, store, crk));
        let trust =
            Arc::new(TrustStore::from_config(&config.tls).map_err(|e| ServeError::Tls(e.to_string()))?);
        let tls = ServerConfigSource::new(&TlsSettings::from_config(&config.tls), Arc::clone(&trust))
            .map_err(|e| ServeError::Tls(e.to_string()))?;
        let limits = DecodeLimits {
            max_message_bytes: config.server.max_message_bytes,
            ..DecodeLimits::default()
        };
        let settings = ListenerSettings {
            max_connections: config.server.max_connections,
            handshake_timeout: config.server.handshake_timeout,
            read_timeout: config.server.read_timeout,
            // A response is as small as the request that asked for it; give its
            // delivery the same time a request gets to arrive.
            write_timeout: config.server.read_timeout,
            idle_timeout: config.server.idle_timeout,
            max_message_bytes: config.server.max_message_bytes,
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
        let audit = AuditSink::start(AuditSettings::new(config.audit.path.clone()))
            .map_err(|e| ServeError::Config(e.to_string()))?;
        let handler = KmipHandler {
            ops: Operations::new(Arc::clone(&keys), ServerInfo::default(), limits),
            audit,
        };
        let listener = Arc::new(Listener {
            settings,
            tls: Arc::new(tls),
            handler: Arc::new(handler),
            stats: Arc::new(ListenerStats::default()),
        });
        Ok(Server {
            listener,
            sockets,
            local_addrs,
            trust,
            keys,
            config,
        })
    }

    /// Serves until `shutdown` turns true; then drains and returns.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let Server {
            listener, sockets, ..
        } = self;
        let audit = listener.handler.audit.clone();
        listener.serve(sockets, shutdown).await;
        // Every answered request's event reaches the trail before the process ends.
        let _ = tokio::task::spawn_blocking(move || audit.flush(std::time::Duration::from_secs(5))).await;
    }

    /// Re-reads the configuration file's trust settings (SIGHUP). A failed reload
    /// keeps the trust in force.
    pub fn reload_trust(trust: &TrustStore, config_path: &std::path::Path) -> Result<(), String> {
        let config = Config::load(config_path).map_err(|e| e.to_string())?;
        trust.reload(&config.tls).map_err(|e| e.to_string())
    }
}
