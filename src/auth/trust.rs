//! The trusted client set: CA bundles (chain verification by webpki) and pinned
//! certificate fingerprints (for vCenter's self-signed, CA-flagged client certificates
//! that webpki refuses as end entities).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::DistinguishedName;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::LastSeen;
use crate::config::clients::{self, ClientKind};
use crate::config::{ConfigError, TlsConfig};
use crate::password::ClientPassword;
use crate::pki::{self, Fingerprint};

/// Where a trust decision came from: a client entry's name (or the config key that
/// listed it), its group and the KMIP credential it must present on top of the
/// certificate, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrustSource {
    pub name: String,
    pub group: Option<String>,
    pub password: Option<ClientPassword>,
}

impl TrustSource {
    pub fn new(name: impl Into<String>, group: Option<String>) -> Self {
        TrustSource {
            name: name.into(),
            group,
            password: None,
        }
    }

    /// Requires `password` (Username/Password) from clients this source accepts.
    pub fn with_password(mut self, password: Option<ClientPassword>) -> Self {
        self.password = password;
        self
    }
}

/// Why the trust set could not be built. The previous set stays in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustError {
    Config(ConfigError),
    /// A CA bundle or pinned certificate could not be used; names the trust entry.
    Entry {
        name: String,
        reason: String,
    },
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustError::Config(e) => e.fmt(f),
            TrustError::Entry { name, reason } => write!(f, "trust entry {name}: {reason}"),
        }
    }
}

impl std::error::Error for TrustError {}

impl From<ConfigError> for TrustError {
    fn from(e: ConfigError) -> Self {
        TrustError::Config(e)
    }
}

fn entry_error(source: &TrustSource, reason: impl fmt::Display) -> TrustError {
    TrustError::Entry {
        name: source.name.clone(),
        reason: reason.to_string(),
    }
}

#[derive(Debug, Clone)]
struct TrustedCa {
    /// DER of the CA's subject Name (for the CertificateRequest hint list).
    subject: Vec<u8>,
}

/// A verifier over the CAs of ONE trust entry. The group a client lands in must come
/// from the entry whose roots actually verify its chain — not from issuer names in the
/// chain it sent, which a client of one group could forge to claim another's.
struct EntryVerifier {
    source: TrustSource,
    verifier: Arc<dyn ClientCertVerifier>,
}

#[derive(Debug, Clone)]
struct PinnedCert {
    source: TrustSource,
    /// Issuer Name of the pinned certificate when we have the certificate itself (for
    /// the CertificateRequest hint list); `None` for a bare fingerprint.
    issuer: Option<Vec<u8>>,
}

/// One immutable version of the trusted client set.
pub struct TrustSnapshot {
    cas: Vec<TrustedCa>,
    ca_verifier: Option<Arc<dyn ClientCertVerifier>>,
    entry_verifiers: Vec<EntryVerifier>,
    pins: HashMap<Fingerprint, PinnedCert>,
    hints: Vec<DistinguishedName>,
}

impl fmt::Debug for TrustSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustSnapshot")
            .field("cas", &self.cas.len())
            .field("pins", &self.pins.len())
            .finish()
    }
}

impl TrustSnapshot {
    /// Trusts nobody: every handshake is refused.
    pub fn empty() -> Self {
        TrustSnapshot {
            cas: Vec::new(),
            ca_verifier: None,
            entry_verifiers: Vec::new(),
            pins: HashMap::new(),
            hints: Vec::new(),
        }
    }

    pub fn builder() -> TrustSnapshotBuilder {
        TrustSnapshotBuilder::default()
    }

    /// Builds the set named by `[tls]`: `client_ca` bundles, `client_pins`, and every
    /// entry in `clients_dir`.
    pub fn from_config(tls: &TlsConfig) -> Result<Self, TrustError> {
        let mut builder = TrustSnapshot::builder();
        for path in &tls.client_ca {
            let name = format!("tls.client_ca {}", path.display());
            builder.add_ca_pem_file(TrustSource::new(name, None), path)?;
        }
        for (i, pin) in tls.client_pins.iter().enumerate() {
            builder.add_pin(
                TrustSource::new(format!("tls.client_pins[{i}]"), None),
                Fingerprint(*pin),
            );
        }
        if let Some(dir) = &tls.clients_dir {
            for entry in clients::load_dir(dir)? {
                let source = TrustSource::new(entry.name.clone(), entry.group.clone())
                    .with_password(entry.password.clone());
                match (entry.kind, &entry.cert) {
                    (ClientKind::Ca, Some(path)) => {
                        builder.add_ca_pem_file(source, path)?;
                    }
                    (ClientKind::Pin, Some(path)) => {
                        let der = first_cert_of(&source, path)?;
                        if let Some(expected) = entry.fingerprint
                            && Fingerprint(expected) != Fingerprint::of_der(&der)
                        {
                            return Err(entry_error(
                                &source,
                                "fingerprint does not match the certificate in `cert`",
                            ));
                        }
                        builder.add_pinned_cert(source, &der)?;
                    }
                    (ClientKind::Pin, None) => {
                        if let Some(fp) = entry.fingerprint {
                            builder.add_pin(source, Fingerprint(fp));
                        }
                    }
                    // `clients::parse_entry` refuses a CA entry without a bundle.
                    (ClientKind::Ca, None) => {}
                }
            }
        }
        builder.build()
    }

    /// The pin entry matching this certificate fingerprint, if any.
    pub fn pinned(&self, fingerprint: &Fingerprint) -> Option<&TrustSource> {
        self.pins.get(fingerprint).map(|p| &p.source)
    }

    /// The trust entry whose CAs verify `chain` (end entity first) at `now`. Run
    /// after every handshake, resumed ones included, so it also re-applies expiry and
    /// removal. When several entries verify it (the same CA in two entries of one
    /// group, or a root in one and its intermediate in another), the stricter
    /// wins: the first, in configuration order, that requires a password; else
    /// the first. An entry without a password never shadows one with a password.
    pub fn verifying_ca(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Option<&TrustSource> {
        let (end_entity, intermediates) = chain.split_first()?;
        let mut first = None;
        for entry in &self.entry_verifiers {
            if entry
                .verifier
                .verify_client_cert(end_entity, intermediates, now)
                .is_err()
            {
                continue;
            }
            if entry.source.password.is_some() {
                return Some(&entry.source);
            }
            first.get_or_insert(&entry.source);
        }
        first
    }

    /// webpki verifier over every configured CA, `None` when no CA is configured.
    pub fn ca_verifier(&self) -> Option<&Arc<dyn ClientCertVerifier>> {
        self.ca_verifier.as_ref()
    }

    /// Distinguished names to send in the CertificateRequest: the CA subjects plus the
    /// issuers of pinned certificates we hold. Empty (meaning "send any certificate")
    /// as soon as one pin is a bare fingerprint, because clients that filter their
    /// certificate by this list (Java, Windows) would otherwise never offer the pinned,
    /// self-signed certificate.
    pub fn hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    pub fn ca_count(&self) -> usize {
        self.cas.len()
    }

    pub fn pin_count(&self) -> usize {
        self.pins.len()
    }
}

/// Collects CAs and pins, then builds a [`TrustSnapshot`].
#[derive(Default)]
pub struct TrustSnapshotBuilder {
    cas: Vec<(TrustSource, CertificateDer<'static>)>,
    pins: Vec<(TrustSource, Fingerprint, Option<Vec<u8>>)>,
}

impl TrustSnapshotBuilder {
    /// Trusts certificates issued by `ca` (a root; intermediates come from the client).
    pub fn add_ca(&mut self, source: TrustSource, ca: CertificateDer<'static>) -> &mut Self {
        self.cas.push((source, ca));
        self
    }

    /// Trusts every CA certificate in a PEM bundle file.
    pub fn add_ca_pem_file(&mut self, source: TrustSource, path: &Path) -> Result<&mut Self, TrustError> {
        for der in certs_of(&source, path)? {
            self.cas.push((source.clone(), der));
        }
        Ok(self)
    }

    /// Trusts the one certificate with this SHA-256 fingerprint.
    pub fn add_pin(&mut self, source: TrustSource, fingerprint: Fingerprint) -> &mut Self {
        self.pins.push((source, fingerprint, None));
        self
    }

    /// Pins a certificate we have in full (its issuer can then be hinted to clients).
    pub fn add_pinned_cert(&mut self, source: TrustSource, der: &[u8]) -> Result<&mut Self, TrustError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| entry_error(&source, e))?;
        let issuer = cert.issuer().as_raw().to_vec();
        self.pins.push((source, Fingerprint::of_der(der), Some(issuer)));
        Ok(self)
    }

    pub fn build(self) -> Result<TrustSnapshot, TrustError> {
        let mut roots = RootCertStore::empty();
        let mut cas = Vec::with_capacity(self.cas.len());
        let mut per_entry: Vec<(TrustSource, RootCertStore)> = Vec::new();
        let mut seen: HashMap<Fingerprint, TrustSource> = HashMap::new();
        for (source, der) in self.cas {
            let (_, cert) = X509Certificate::from_der(&der).map_err(|e| entry_error(&source, e))?;
            let subject = cert.subject().as_raw().to_vec();
            // One CA trusted for two groups would make a client's group ambiguous.
            if let Some(other) = seen.get(&Fingerprint::of_der(&der))
                && other.group != source.group
            {
                return Err(entry_error(
                    &source,
                    format!("CA already trusted by {} for another group", other.name),
                ));
            }
            seen.insert(Fingerprint::of_der(&der), source.clone());
            roots
                .add(der.clone())
                .map_err(|e| entry_error(&source, format!("not usable as a trust anchor: {e}")))?;
            match per_entry.iter_mut().find(|(s, _)| *s == source) {
                Some((_, store)) => store.add(der.clone()),
                None => {
                    let mut store = RootCertStore::empty();
                    let added = store.add(der.clone());
                    per_entry.push((source.clone(), store));
                    added
                }
            }
            .map_err(|e| entry_error(&source, format!("not usable as a trust anchor: {e}")))?;
            cas.push(TrustedCa { subject });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut entry_verifiers = Vec::with_capacity(per_entry.len());
        for (source, store) in per_entry {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                    .build()
                    .map_err(|e| entry_error(&source, e))?;
            entry_verifiers.push(EntryVerifier { source, verifier });
        }
        // Issuers in configuration order, so the hint list is deterministic.
        let pinned_issuers: Vec<Vec<u8>> = self
            .pins
            .iter()
            .filter_map(|(_, _, issuer)| issuer.clone())
            .collect();
        let mut pins: HashMap<Fingerprint, PinnedCert> = HashMap::with_capacity(self.pins.len());
        for (source, fingerprint, issuer) in self.pins {
            // One certificate pinned by two entries that disagree on its group or
            // password would go silently to whichever came first: refuse the set,
            // naming both. Entries that agree are harmless; the first names it.
            if let Some(other) = pins.get(&fingerprint) {
                if other.source.group != source.group || other.source.password != source.password {
                    return Err(entry_error(
                        &source,
                        format!(
                            "pins the same certificate as {} with another {}",
                            other.source.name,
                            if other.source.group != source.group {
                                "group"
                            } else {
                                "password"
                            }
                        ),
                    ));
                }
                continue;
            }
            pins.insert(fingerprint, PinnedCert { source, issuer });
        }
        let mut hint_names: Vec<&Vec<u8>> = Vec::new();
        if pins.values().all(|p| p.issuer.is_some()) {
            for name in cas.iter().map(|ca| &ca.subject).chain(pinned_issuers.iter()) {
                if !hint_names.contains(&name) {
                    hint_names.push(name);
                }
            }
        }
        let hints = hint_names
            .into_iter()
            .map(|name| DistinguishedName::from(name.clone()))
            .collect();
        let ca_verifier = if roots.is_empty() {
            None
        } else {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TrustError::Entry {
                    name: "client CAs".into(),
                    reason: e.to_string(),
                })?;
            Some(verifier)
        };
        Ok(TrustSnapshot {
            cas,
            ca_verifier,
            entry_verifiers,
            pins,
            hints,
        })
    }
}

fn certs_of(source: &TrustSource, path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    // CA bundles are small; 1 MiB holds hundreds of certificates.
    let pem = crate::config::read_bounded(path, 1024 * 1024)?;
    pki::certs_from_pem(&pem).map_err(|e| entry_error(source, format!("{}: {e}", path.display())))
}

fn first_cert_of(source: &TrustSource, path: &Path) -> Result<CertificateDer<'static>, TrustError> {
    certs_of(source, path)?
        .into_iter()
        .next()
        .ok_or_else(|| entry_error(source, "no certificate"))
}

/// The live trust set. Readers take a cheap `Arc` clone per handshake; a reload builds
/// the new snapshot completely before swapping it in, so a bad reload changes nothing.
pub struct TrustStore {
    current: RwLock<Arc<TrustSnapshot>>,
    generation: AtomicU64,
    last_seen: LastSeen,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field("generation", &self.generation())
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

impl TrustStore {
    pub fn new(snapshot: TrustSnapshot) -> Self {
        TrustStore {
            current: RwLock::new(Arc::new(snapshot)),
            generation: AtomicU64::new(0),
            last_seen: LastSeen::default(),
        }
    }

    pub fn from_config(tls: &TlsConfig) -> Result<Self, TrustError> {
        Ok(TrustStore::new(TrustSnapshot::from_config(tls)?))
    }

    /// The snapshot in force now.
    pub fn snapshot(&self) -> Arc<TrustSnapshot> {
        // A panic while holding the lock cannot leave a half-written Arc; keep serving.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `snapshot` in force for every later handshake.
    pub fn replace(&self, snapshot: TrustSnapshot) {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *guard = Arc::new(snapshot);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Re-reads the trust named by `[tls]`; on error the old set stays in force.
    pub fn reload(&self, tls: &TlsConfig) -> Result<(), TrustError> {
        let snapshot = TrustSnapshot::from_config(tls)?;
        self.replace(snapshot);
        Ok(())
    }

    /// When each client last connected (recorded by `net::tls::client_identity`).
    pub fn last_seen(&self) -> &LastSeen {
        &self.last_seen
    }

    /// Increases on every replace; lets holders of derived state (the TLS server
    /// config's hint list) notice a change cheaply.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
