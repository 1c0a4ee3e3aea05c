//! The validated server configuration (TOML).
//!
//! Loading is two steps: serde reads the file into raw structs that refuse unknown keys,
//! then [`parse`] checks every value, applies safe defaults and resolves relative paths
//! against the folder that holds the config file (so `cert = "server.pem"` next to
//! `/etc/keyward/keyward.toml` means `/etc/keyward/server.pem` wherever the process
//! was started). The HSM PIN is never a config value: only where to read it from.
//!
//! ```toml
//! [server]
//! listen = ["127.0.0.1:5696", "[::1]:5696"]
//! max_connections = 1024
//! max_handshakes = 256       # of those, still in the TLS handshake
//! max_handshakes_per_source = 32  # handshaking at once from one address
//! first_byte_timeout = 3     # seconds from connect to the first ClientHello byte
//! handshake_timeout = 10     # seconds
//! read_timeout = 30
//! idle_timeout = 300
//! max_message_bytes = 1048576
//! max_request_bytes_in_flight = 67108864  # all connections together, beyond 64 KiB each
//! max_objects_per_group = 2000000  # a group's quota of managed objects
//!
//! [tls]
//! cert = "server.pem"        # chain, leaf first
//! key = "server.key"
//! client_ca = ["vmca.pem"]
//! client_pins = ["AB:CD:..."] # SHA-256 of a client certificate
//! clients_dir = "clients"    # one trust file per client, see `clients`
//! send_ca_names = true       # name the trusted CAs in the CertificateRequest
//! tls_versions = ["1.2", "1.3"]
//! issuing_ca_cert = "ca.pem"  # keyward's own CA, for `keyward clients issue|sign-csr`
//! issuing_ca_key = "ca.key"   # and `server-cert renew`; both or neither (default: none)
//!
//! [hsm]
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "keyward"   # or token_uri = "pkcs11:token=keyward;serial=..." (RFC 7512)
//! pin_file = "hsm.pin"       # or a systemd credential named by pin_credential
//! call_timeout = 5
//!
//! [store]
//! kind = "sqlite"
//! path = "keyward.db"
//!
//! # With a remote store (kind = "openbao", ...), each node's index of it:
//! # [cluster]
//! # index = "index.db"        # required then; refused with the embedded store
//! # sync_interval = 10        # seconds: records deleted or created elsewhere seen within it
//! # read_grace = 300          # seconds: reads served from local copies while the store is out of reach
//!
//! [audit]
//! path = "audit.log"
//!
//! [metrics]
//! listen = "127.0.0.1:9569"  # Prometheus text and /health; off when absent
//!
//! [process]
//! allow_root = false         # refuse to serve as user id 0 unless true
//! lock_memory = true         # mlockall: key pages never swapped (where the OS allows)
//! ```

pub mod clients;
mod error;
mod parse;
mod pin;
mod stamp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::ConfigError;
pub use parse::parse_fingerprint;
pub use stamp::FileStamp;

pub use crate::store::StoreConfig;

/// Largest config file read (64 KiB); a real one is under 2 KiB.
const MAX_CONFIG_FILE_BYTES: u64 = 64 * 1024;

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this was loaded from (absolute when loaded from disk).
    pub source: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub hsm: HsmConfig,
    /// `[store]`: which backend holds the sealed records (see `store::open`).
    pub store: StoreConfig,
    /// `[cluster]`: this node's index of a remote store; `None` with the
    /// embedded store (which needs none).
    pub cluster: Option<crate::store::IndexSettings>,
    pub audit: AuditConfig,
    pub metrics: MetricsConfig,
    pub process: ProcessConfig,
}

/// `[server]`: listener and per-connection bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub max_connections: usize,
    /// Connections still in the TLS handshake at once (at most `max_connections`).
    pub max_handshakes: usize,
    /// Of those, from one source address (at most `max_handshakes`).
    pub max_handshakes_per_source: usize,
    /// From TCP accept to the first byte of the ClientHello.
    pub first_byte_timeout: Duration,
    pub handshake_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_message_bytes: usize,
    /// Bytes of requests being read or handled at once over all connections,
    /// beyond the first 64 KiB of each (at least `max_message_bytes`).
    pub max_request_bytes_in_flight: usize,
    /// Managed objects one group may hold; Create, Register and Re-key beyond
    /// it are refused (a tenant cannot grow without limit).
    pub max_objects_per_group: usize,
}

/// `[tls]`: the server's own certificate and whom it trusts as clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM chain, end-entity first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// PEM bundles of CAs whose issued client certificates are accepted.
    pub client_ca: Vec<PathBuf>,
    /// SHA-256 fingerprints of individually trusted client certificates.
    pub client_pins: Vec<[u8; 32]>,
    /// Folder of per-client trust files (see [`clients`]).
    pub clients_dir: Option<PathBuf>,
    /// Whether the CertificateRequest names the trusted CAs (and the issuers of
    /// pinned certificates). Default true: clients that pick their certificate by
    /// this list (Java, Windows) find theirs. False sends an empty list, so an
    /// unauthenticated peer does not learn whom the server trusts.
    pub send_ca_names: bool,
    /// Protocol versions offered, never empty.
    pub tls_versions: Vec<TlsVersion>,
    /// keyward's own CA, used by the administration commands only (the server never
    /// reads it). `None`: issuing and signing certificates is refused.
    pub issuing_ca: Option<IssuingCa>,
}

/// `tls.issuing_ca_cert` / `tls.issuing_ca_key`: the CA that issues client certificates
/// (`keyward clients issue`, `clients sign-csr`) and renews the server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingCa {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `[hsm]`: the PKCS#11 module and token holding the root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmConfig {
    pub module: PathBuf,
    /// `token_label` (and `slot`), or the fields of `token_uri`.
    pub token: crate::hsm::TokenSelector,
    /// File holding the user PIN (used when no systemd credential is present).
    pub pin_file: Option<PathBuf>,
    /// Name of the systemd credential holding the PIN (`$CREDENTIALS_DIRECTORY/<name>`).
    pub pin_credential: String,
    pub call_timeout: Duration,
}

/// `[metrics]`: the operator's view of the running service (Prometheus text and
/// health endpoints) on its own listener. Off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
}

/// `[audit]`: optional JSON-lines audit file, in addition to the systemd journal
/// (see `crate::audit`: events go to stderr only when there is neither).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditConfig {
    pub path: Option<PathBuf>,
}

/// `[process]`: hardening of the server process (applied by `system::harden`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Serve even as root. Off by default: the service needs no privilege.
    pub allow_root: bool,
    /// Lock all memory so that key pages are never swapped out.
    pub lock_memory: bool,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            allow_root: false,
            lock_memory: true,
        }
    }
}

impl HsmConfig {
    /// What `hsm::open` needs: this section with the PIN read from the systemd
    /// credential or the PIN file (never from the configuration itself).
    pub fn settings(&self) -> Result<crate::hsm::HsmConfig, ConfigError> {
        let pin = self.read_pin()?;
        let mut settings = crate::hsm::HsmConfig::new(&self.module, "", pin);
        settings.token = self.token.clone();
        settings.call_timeout = self.call_timeout;
        Ok(settings)
    }
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let absolute = std::path::absolute(path).map_err(|e| ConfigError::read(path, &e))?;
        let text = read_bounded(&absolute, MAX_CONFIG_FILE_BYTES)?;
        let base = absolute.parent().unwrap_or(Path::new("/"));
        parse::parse(&text, &absolute, base)
    }

    /// Validates config text; relative paths are resolved against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        parse::parse(text, &base_dir.join("<inline>"), base_dir)
    }
}

/// Reads a small text file, refusing one larger than `limit` before reading it.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<String, ConfigError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| ConfigError::read(path, &e))?;
    let mut text = String::new();
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| ConfigError::read(path, &e))?;
    if text.len() as u64 > limit {
        return Err(ConfigError::Read {
            path: path.to_path_buf(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
