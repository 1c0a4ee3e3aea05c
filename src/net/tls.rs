//! The server's rustls configuration: aws-lc-rs provider, TLS 1.2 and 1.3, session
//! resumption, and a client certificate always required and checked against the live
//! [`TrustStore`].
//!
//! Supported: TLS 1.2 with ECDHE suites (AES-GCM, ChaCha20-Poly1305) and TLS 1.3.
//! Not supported: TLS 1.1 and older, and TLS 1.2 static-RSA key exchange (e.g.
//! `TLS_RSA_WITH_AES_128_CBC_SHA256`, which old vCenters offered); rustls implements
//! neither, and such clients fail the handshake with a protocol or handshake alert.
//!
//! Client certificates are accepted two ways:
//! - **CA**: the chain verifies (webpki: signatures, validity, clientAuth usage) to a
//!   configured CA;
//! - **pin**: the end-entity certificate's SHA-256 is pinned. This is for vCenter's
//!   self-signed certificates carrying `CA:TRUE`, which webpki refuses as end entities.
//!   No chain is built, but the certificate must be inside its validity window
//!   (decision: an expired pinned certificate is refused like an expired CA-issued one;
//!   the operator pins the renewed certificate, which vCenter must present anyway), and
//!   the handshake signature is verified with the certificate's key exactly as for CA
//!   clients, so presenting someone's pinned certificate without its key fails.
//!
//! The verifier reads the trust snapshot on every handshake, so a reload applies to the
//! next handshake. Resumed sessions skip certificate verification in TLS; callers must
//! therefore derive the caller with [`client_identity`], which re-checks the presented
//! chain against the current trust set.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use zeroize::Zeroizing;

use crate::auth::{ClientIdentity, IdentityError, TrustStore};
use crate::config::{TlsConfig, TlsVersion};
use crate::pki::{self, Fingerprint};

/// Sessions kept for stateful (session-ID) resumption. Each entry is a few hundred
/// bytes; 4096 covers a boot storm of hundreds of hosts reconnecting.
const SESSION_CACHE_ENTRIES: usize = 4096;
/// Largest server certificate chain or key file read.
const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// What the server TLS configuration is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM chain, end entity first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    pub versions: Vec<TlsVersion>,
    pub session_cache_entries: usize,
    /// Whether the CertificateRequest names the trusted CAs (`tls.send_ca_names`);
    /// false sends an empty list (any certificate may be offered).
    pub send_ca_names: bool,
}

impl TlsSettings {
    pub fn from_config(tls: &TlsConfig) -> Self {
        TlsSettings {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            versions: tls.tls_versions.clone(),
            session_cache_entries: SESSION_CACHE_ENTRIES,
            send_ca_names: tls.send_ca_names,
        }
    }
}

/// Why the TLS configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// `tls.cert` unusable.
    Cert {
        path: PathBuf,
        reason: String,
    },
    /// `tls.key` unusable (the reason never contains key bytes).
    Key {
        path: PathBuf,
        reason: String,
    },
    Rustls(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Cert { path, reason } => write!(f, "tls.cert: {}: {reason}", path.display()),
            TlsError::Key { path, reason } => write!(f, "tls.key: {}: {reason}", path.display()),
            TlsError::Rustls(reason) => write!(f, "TLS configuration: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Builds the server configuration with the hint list of the trust set in force now.
/// A listener that wants hint lists to follow reloads uses [`ServerConfigSource`].
pub fn build_server_config(
    settings: &TlsSettings,
    trust: Arc<TrustStore>,
) -> Result<Arc<ServerConfig>, TlsError> {
    Ok(ServerConfigSource::new(settings, trust)?.current())
}

/// Hands out the current server configuration, rebuilding it (cheaply: the key,
/// session cache and ticket keys are shared) when the trust set changed, so the
/// CertificateRequest hint list follows reloads. Verification itself never needs a
/// rebuild: the verifier reads the live trust set on every handshake.
///
/// The server certificate and key can be replaced while serving
/// ([`ServerConfigSource::reload_certificate`], called on SIGHUP and when `keyward
/// serve` sees the files change): the certificate resolver reads the current pair on
/// every handshake, so new connections get the new certificate and established ones
/// carry on with the one they negotiated.
pub struct ServerConfigSource {
    parts: SharedParts,
    trust: Arc<TrustStore>,
    cached: RwLock<(u64, Arc<ServerConfig>)>,
}

struct SharedParts {
    provider: Arc<CryptoProvider>,
    versions: Vec<&'static SupportedProtocolVersion>,
    settings: TlsSettings,
    certificate: Arc<CurrentCertificate>,
    session_storage: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
}

/// The server's certificate and key in force, swapped whole on reload.
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for CurrentCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of Debug output; the certificate's fingerprint names it.
        let current = self.0.read().unwrap_or_else(PoisonError::into_inner).clone();
        f.debug_tuple("CurrentCertificate")
            .field(&current.cert.first().map(|der| Fingerprint::of_der(der)))
            .finish()
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

impl fmt::Debug for ServerConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfigSource")
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl ServerConfigSource {
    pub fn new(settings: &TlsSettings, trust: Arc<TrustStore>) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certified_key = Arc::new(load_certified_key(settings, &provider)?);
        let certificate = Arc::new(CurrentCertificate(RwLock::new(certified_key)));
        let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
        for v in &settings.versions {
            versions.push(match v {
                TlsVersion::Tls12 => &rustls::version::TLS12,
                TlsVersion::Tls13 => &rustls::version::TLS13,
            });
        }
        let parts = SharedParts {
            provider,
            versions,
            settings: settings.clone(),
            certificate,
            session_storage: ServerSessionMemoryCache::new(settings.session_cache_entries.max(1)),
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|e| TlsError::Rustls(e.to_string()))?,
        };
        let generation = trust.generation();
        let config = parts.build(&trust)?;
        Ok(ServerConfigSource {
            parts,
            trust,
            cached: RwLock::new((generation, config)),
        })
    }

    /// The configuration to use for the next accepted connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        let generation = self.trust.generation();
        {
            let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
            if cached.0 == generation {
                return cached.1.clone();
            }
        }
        match self.parts.build(&self.trust) {
            Ok(config) => {
                let mut cached = self.cached.write().unwrap_or_else(PoisonError::into_inner);
                *cached = (generation, config.clone());
                config
            }
            // Rebuilding only changes the hint list; keep the working configuration.
            Err(e) => {
                tracing::warn!(error = %e, "keeping the previous TLS configuration");
                self.cached
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .1
                    .clone()
            }
        }
    }

    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    /// Re-reads `tls.cert` and `tls.key` and serves them from the next handshake on.
    /// On error (unreadable, or a key that does not match the certificate — e.g. caught
    /// between the two renames of a renewal) the pair in force stays.
    pub fn reload_certificate(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(load_certified_key(&self.parts.settings, &self.parts.provider)?);
        *self
            .parts
            .certificate
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// SHA-256 of the end-entity certificate served now.
    pub fn certificate_fingerprint(&self) -> Option<Fingerprint> {
        let current = self
            .parts
            .certificate
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        current.cert.first().map(|der| Fingerprint::of_der(der))
    }

    /// The certificate and key files, for change watching.
    pub fn settings(&self) -> &TlsSettings {
        &self.parts.settings
    }
}

impl SharedParts {
    fn build(&self, trust: &Arc<TrustStore>) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = Arc::new(TrustVerifier {
            trust: trust.clone(),
            hints: if self.settings.send_ca_names {
                trust.snapshot().hint_subjects().to_vec()
            } else {
                Vec::new()
            },
            algorithms: self.provider.signature_verification_algorithms,
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.certificate.clone());
        config.session_storage = self.session_storage.clone();
        config.ticketer = self.ticketer.clone();
        config.ignore_client_order = true;
        // KMIP over TLS names no ALPN protocol; leave `alpn_protocols` empty.
        Ok(Arc::new(config))
    }
}

fn load_certified_key(settings: &TlsSettings, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: settings.cert.clone(),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        path: settings.key.clone(),
        reason,
    };
    let chain_pem = crate::config::read_bounded(&settings.cert, MAX_PEM_FILE_BYTES)
        .map_err(|e| cert_err(e.to_string()))?;
    let chain = pki::certs_from_pem(&chain_pem).map_err(|e| cert_err(e.to_string()))?;
    let key_pem = Zeroizing::new(
        crate::config::read_bounded(&settings.key, MAX_PEM_FILE_BYTES).map_err(|e| key_err(e.to_string()))?,
    );
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| key_err("no usable PRIVATE KEY block".into()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_err("does not match the certificate".into()),
        other => key_err(other.to_string()),
    })
}

/// Accepts a client whose chain verifies to a configured CA or whose certificate is
/// pinned; see the module documentation.
struct TrustVerifier {
    trust: Arc<TrustStore>,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for TrustVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustVerifier")
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for TrustVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let snapshot = self.trust.snapshot();
        if snapshot.pinned(&Fingerprint::of_der(end_entity)).is_some() {
            let info = pki::inspect_der(end_entity)
                .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
            let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            if now < info.not_before {
                return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet));
            }
            if now > info.not_after {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
            }
            return Ok(ClientCertVerified::assertion());
        }
        match snapshot.ca_verifier() {
            Some(webpki) => webpki.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The verified caller of a finished handshake, re-checked against the trust set in
/// force now (this is what makes trust removal apply to resumed sessions). A caller
/// accepted here is recorded in the trust store's "last seen" map.
pub fn client_identity(
    conn: &rustls::ServerConnection,
    trust: &TrustStore,
) -> Result<ClientIdentity, IdentityError> {
    let chain = conn.peer_certificates().ok_or(IdentityError::NoCertificate)?;
    let now = crate::clock::unix_now();
    let identity = ClientIdentity::from_chain(chain, &trust.snapshot(), now)?;
    trust
        .last_seen()
        .record(&identity.matched.source().name, identity.fingerprint, now);
    Ok(identity)
}
