//! The caller's identity, derived from the certificate chain it presented.

use std::fmt;

use rustls_pki_types::{CertificateDer, UnixTime};

use super::{TrustSnapshot, TrustSource};
use crate::pki::{self, Fingerprint};

/// Which trust entry accepted the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustMatch {
    /// The chain verified against this CA.
    Ca(TrustSource),
    /// The end-entity certificate's fingerprint is pinned by this entry.
    Pin(TrustSource),
}

impl TrustMatch {
    pub fn source(&self) -> &TrustSource {
        match self {
            TrustMatch::Ca(s) | TrustMatch::Pin(s) => s,
        }
    }
}

/// A verified client: what the ops layer authorizes and the audit log records.
///
/// Only [`ClientIdentity::from_chain`] makes one (a private field keeps it so),
/// after the chain verified against the trust in force: holding a
/// `ClientIdentity` is the proof that TLS verification accepted the peer, and
/// [`super::Caller::new`] asks for that proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// SHA-256 of the end-entity certificate.
    pub fingerprint: [u8; 32],
    /// RFC 4514 subject of the end-entity certificate.
    pub subject: String,
    pub common_name: Option<String>,
    pub matched: TrustMatch,
    /// Unforgeable outside this module.
    verified: Verified,
}

/// The private witness inside every [`ClientIdentity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verified;

/// Why no identity could be derived; the connection must then be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    NoCertificate,
    BadCertificate(String),
    /// Outside its validity window now (it may have been valid at handshake time).
    OutsideValidity,
    /// No current trust entry accepts it (e.g. removed since the session was created).
    NotTrusted,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::NoCertificate => f.write_str("client presented no certificate"),
            IdentityError::BadCertificate(e) => write!(f, "client certificate unreadable: {e}"),
            IdentityError::OutsideValidity => f.write_str("client certificate expired or not yet valid"),
            IdentityError::NotTrusted => f.write_str("client certificate no longer trusted"),
        }
    }
}

impl std::error::Error for IdentityError {}

impl ClientIdentity {
    /// Derives the identity of a peer whose `chain` (end entity first) the TLS layer
    /// verified, re-checking it against `trust` as it is now and at `now_unix` seconds.
    ///
    /// The chain was verified when the session was made; a resumed session skips that
    /// verification, so this check is what makes a removed pin or CA, or an expiry,
    /// apply to resumed sessions as well. A pin wins over a CA when both match,
    /// unless the pin requires no password and the CA entry does: then the
    /// stricter CA entry wins (an entry without a password never shadows one with).
    pub fn from_chain(
        chain: &[CertificateDer<'_>],
        trust: &TrustSnapshot,
        now_unix: i64,
    ) -> Result<ClientIdentity, IdentityError> {
        let end_entity = chain.first().ok_or(IdentityError::NoCertificate)?;
        let info = pki::inspect_der(end_entity).map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        if !info.is_valid_at(now_unix) {
            return Err(IdentityError::OutsideValidity);
        }
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_unix.max(0) as u64));
        let pinned = trust.pinned(&info.fingerprint);
        let matched = match pinned {
            Some(pin) if pin.password.is_some() => TrustMatch::Pin(pin.clone()),
            Some(pin) => match trust.verifying_ca(chain, now) {
                Some(ca) if ca.password.is_some() => TrustMatch::Ca(ca.clone()),
                _ => TrustMatch::Pin(pin.clone()),
            },
            None => match trust.verifying_ca(chain, now) {
                Some(ca) => TrustMatch::Ca(ca.clone()),
                None => return Err(IdentityError::NotTrusted),
            },
        };
        Ok(ClientIdentity {
            fingerprint: info.fingerprint.0,
            subject: info.subject,
            common_name: info.common_name,
            matched,
            verified: Verified,
        })
    }

    /// Colon-hex fingerprint, as shown to administrators.
    pub fn fingerprint_hex(&self) -> String {
        Fingerprint(self.fingerprint).to_colon_hex()
    }

    /// The group of the trust entry that accepted the client.
    pub fn group(&self) -> Option<&str> {
        self.matched.source().group.as_deref()
    }
}
