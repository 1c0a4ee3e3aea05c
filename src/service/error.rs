//! Why the service could not start or stopped: one variant per cause, each
//! keeping its typed source.

use std::fmt;
use std::net::SocketAddr;

use crate::audit::AuditError;
use crate::auth::TrustError;
use crate::config::ConfigError;
use crate::hsm::HsmError;
use crate::net::tls::TlsError;
use crate::store::OpenError;

#[derive(Debug)]
pub enum ServeError {
    /// The configuration (or a file it names, such as the PIN file) is unusable.
    Config(ConfigError),
    /// The HSM cannot be opened or answered with an error.
    Hsm(HsmError),
    /// The token holds no root key yet.
    NoRootKey,
    /// The store cannot be opened.
    Store(OpenError),
    /// Client trust (CAs, pins, trust files) cannot be loaded.
    Trust(TrustError),
    /// The server certificate or key cannot be used.
    Tls(TlsError),
    /// The audit trail cannot be opened.
    Audit(AuditError),
    /// A listen address cannot be bound.
    Bind(SocketAddr, std::io::Error),
    /// A signal handler cannot be installed.
    Signal(std::io::Error),
    /// A task of the service ended abnormally (panicked or was cancelled).
    Task {
        what: &'static str,
        source: tokio::task::JoinError,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(e) => write!(f, "configuration: {e}"),
            ServeError::Hsm(e) => write!(f, "HSM: {e}"),
            ServeError::NoRootKey => {
                f.write_str("HSM: the token holds no root key; run `keyward hsm init` first")
            }
            ServeError::Store(e) => write!(f, "store: {e}"),
            ServeError::Trust(e) => write!(f, "TLS: {e}"),
            ServeError::Tls(e) => write!(f, "TLS: {e}"),
            ServeError::Audit(e) => write!(f, "audit: {e}"),
            ServeError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServeError::Signal(e) => write!(f, "cannot install a signal handler: {e}"),
            ServeError::Task { what, source } => write!(f, "{what} failed: {source}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Config(e) => Some(e),
            ServeError::Hsm(e) => Some(e),
            ServeError::NoRootKey => None,
            ServeError::Store(e) => Some(e),
            ServeError::Trust(e) => Some(e),
            ServeError::Tls(e) => Some(e),
            ServeError::Audit(e) => Some(e),
            ServeError::Bind(_, e) | ServeError::Signal(e) => Some(e),
            ServeError::Task { source, .. } => Some(source),
        }
    }
}

impl From<ConfigError> for ServeError {
    fn from(e: ConfigError) -> Self {
        ServeError::Config(e)
    }
}

impl From<HsmError> for ServeError {
    fn from(e: HsmError) -> Self {
        ServeError::Hsm(e)
    }
}

impl From<OpenError> for ServeError {
    fn from(e: OpenError) -> Self {
        ServeError::Store(e)
    }
}

impl From<TrustError> for ServeError {
    fn from(e: TrustError) -> Self {
        ServeError::Trust(e)
    }
}

impl From<TlsError> for ServeError {
    fn from(e: TlsError) -> Self {
        ServeError::Tls(e)
    }
}

impl From<AuditError> for ServeError {
    fn from(e: AuditError) -> Self {
        ServeError::Audit(e)
    }
}
