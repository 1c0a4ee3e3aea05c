//! Reading certificates: PEM splitting and a summary for operators (subject, issuer,
//! validity, fingerprint) as `keyward clients list` and `keyward cert show` print it.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Fingerprint, PkiError};

/// Most certificates taken from one PEM bundle; a CA bundle holds a handful.
const MAX_CERTS_PER_PEM: usize = 256;

/// What an operator needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// RFC 4514 form, e.g. `CN=vcenter.example.com, O=VMware`.
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    /// Colon hex of the serial number.
    pub serial: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    pub fingerprint: Fingerprint,
    /// Carries `basicConstraints CA:TRUE` (vCenter's self-signed certificates do).
    pub is_ca: bool,
    /// Subject equals issuer.
    pub self_issued: bool,
}

impl CertInfo {
    /// Whether `unix_seconds` falls inside the validity window (both ends inclusive).
    pub fn is_valid_at(&self, unix_seconds: i64) -> bool {
        self.not_before <= unix_seconds && unix_seconds <= self.not_after
    }
}

/// Summarises one DER certificate.
pub fn inspect_der(der: &[u8]) -> Result<CertInfo, PkiError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::Parse(format!("certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::Parse("certificate: trailing bytes after DER".into()));
    }
    let validity = cert.validity();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        serial: cert.raw_serial_as_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        fingerprint: Fingerprint::of_der(der),
        is_ca: cert.is_ca(),
        self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
    })
}

/// Summarises every certificate in a PEM text.
pub fn inspect_pem(pem: &str) -> Result<Vec<CertInfo>, PkiError> {
    certs_from_pem(pem)?.iter().map(|der| inspect_der(der)).collect()
}

/// Every `CERTIFICATE` block of a PEM text, in order; other blocks are skipped. A text
/// with no certificate is an error (an empty trust file is almost always a mistake).
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = item.map_err(|e| PkiError::Parse(format!("PEM: {e}")))?;
        if certs.len() >= MAX_CERTS_PER_PEM {
            return Err(PkiError::Parse(format!(
                "more than {MAX_CERTS_PER_PEM} certificates in one PEM"
            )));
        }
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(PkiError::Parse("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}
