//! keyward's own CA: a development/appliance CA that issues the server certificate and,
//! for vCenter's "KMS issues" and "KMS signs CSR" trust methods, client certificates.

use std::fmt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber, SignatureAlgorithm,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::PkiError;
use crate::secret::SecretString;

/// Names put in the server certificate when the operator gives none.
pub const DEFAULT_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Backdating of `notBefore`, so a peer whose clock is a little behind still accepts a
/// certificate made a moment ago.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);
/// Largest CSR accepted (a real one is about 1 KiB).
const MAX_CSR_PEM_BYTES: usize = 64 * 1024;
/// Largest CA certificate or key file read.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;
/// Longest validity issued (about 10 years, what vCenter's own certificates use).
const MAX_VALIDITY_DAYS: u32 = 3660;

/// Key algorithm for a new key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// ECDSA P-256 with SHA-256: the default, fast to sign and verify.
    #[default]
    EcdsaP256,
    /// RSA 2048 (PKCS#1 v1.5 SHA-256) for old vCenter releases that expect RSA.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
}

impl KeyKind {
    fn generate(self) -> Result<KeyPair, PkiError> {
        Ok(match self {
            KeyKind::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?,
            KeyKind::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)?,
        })
    }

    fn is_rsa(self) -> bool {
        !matches!(self, KeyKind::EcdsaP256)
    }
}

/// A certificate and the private key made for it.
pub struct IssuedCert {
    pub cert_der: CertificateDer<'static>,
    pub cert_pem: String,
    /// PKCS#8 PEM; write it with [`super::write_private_pem`].
    pub key_pem: SecretString,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("fingerprint", &super::Fingerprint::of_der(&self.cert_der))
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

/// A CA able to issue certificates: its certificate and signing key.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: SecretString,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &super::Fingerprint::of_der(&self.cert_der))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a new self-signed ECDSA P-256 CA named `common_name`.
    pub fn generate(common_name: &str, validity_days: u32) -> Result<Self, PkiError> {
        let key = KeyKind::EcdsaP256.generate()?;
        let mut params = base_params(common_name, validity_days)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        let key_pem = SecretString::new(key.serialize_pem());
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            key_pem,
        })
    }

    /// Loads an existing CA from its certificate and private-key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &SecretString) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem.expose())
            .map_err(|_| PkiError::Parse("CA private key is not a supported PEM key".into()))?;
        let certs = super::certs_from_pem(cert_pem)?;
        let cert_der = certs
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Parse("no CERTIFICATE block in the CA file".into()))?;
        let (_, parsed) = X509Certificate::from_der(&cert_der)
            .map_err(|e| PkiError::Parse(format!("CA certificate: {e}")))?;
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(PkiError::Parse(
                "the CA private key does not belong to the CA certificate".into(),
            ));
        }
        if !parsed.is_ca() {
            return Err(PkiError::Parse(
                "the CA certificate is not a CA (basicConstraints CA:FALSE)".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(CertificateAuthority {
            issuer,
            cert_der,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.clone(),
        })
    }

    /// Loads the CA named by `tls.issuing_ca_cert` / `tls.issuing_ca_key`.
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, PkiError> {
        let read = |path: &std::path::Path| {
            crate::system::files::read_bounded(path, MAX_CA_FILE_BYTES).map_err(|e| PkiError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        };
        let cert_pem = read(cert)?;
        let key_pem = SecretString::new(read(key)?);
        Self::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
            PkiError::Parse(reason) | PkiError::Generate(reason) => PkiError::Io {
                path: cert.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &SecretString {
        &self.key_pem
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses; the first is
    /// also the common name). An empty list means [`DEFAULT_SERVER_NAMES`].
    pub fn issue_server(
        &self,
        names: &[String],
        key_kind: KeyKind,
        validity_days: u32,
    ) -> Result<IssuedCert, PkiError> {
        let names: Vec<String> = if names.is_empty() {
            DEFAULT_SERVER_NAMES.iter().map(|s| s.to_string()).collect()
        } else {
            names.to_vec()
        };
        let common_name = names.first().map(String::as_str).unwrap_or("keyward");
        let mut params = base_params(common_name, validity_days)?;
        params.subject_alt_names = CertificateParams::new(names.clone())?.subject_alt_names;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = leaf_key_usages(key_kind);
        self.issue_with_new_key(&params, key_kind)
    }

    /// Issues a client certificate and key (vCenter's "KMS issues certificate + key").
    pub fn issue_client(
        &self,
        common_name: &str,
        key_kind: KeyKind,
        validity_days: u32,
    ) -> Result<IssuedCert, PkiError> {
        let mut params = base_params(common_name, validity_days)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = leaf_key_usages(key_kind);
        self.issue_with_new_key(&params, key_kind)
    }

    /// Signs a client's CSR (vCenter's "KMS signs CSR"), returning the certificate PEM.
    ///
    /// Only the subject name and subject alternative names are taken from the request;
    /// validity, key usage (client authentication only) and `CA:FALSE` are ours, so a
    /// CSR cannot ask for a CA certificate. The CSR's self-signature is verified.
    pub fn sign_csr(&self, csr_pem: &str, validity_days: u32) -> Result<String, PkiError> {
        if csr_pem.len() > MAX_CSR_PEM_BYTES {
            return Err(PkiError::Parse("CSR larger than 64 KiB".into()));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Parse(format!("CSR: {e}")))?;
        let mut params = base_params("unused", validity_days)?;
        params.distinguished_name = csr.params.distinguished_name.clone();
        params.subject_alt_names = csr.params.subject_alt_names.clone();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let rsa = is_rsa_algorithm(csr.public_key.algorithm());
        params.key_usages = leaf_key_usages(if rsa { KeyKind::Rsa2048 } else { KeyKind::EcdsaP256 });
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.pem())
    }

    fn issue_with_new_key(
        &self,
        params: &CertificateParams,
        key_kind: KeyKind,
    ) -> Result<IssuedCert, PkiError> {
        let key = key_kind.generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: SecretString::new(key.serialize_pem()),
        })
    }
}

fn is_rsa_algorithm(alg: &SignatureAlgorithm) -> bool {
    [
        &rcgen::PKCS_RSA_SHA256,
        &rcgen::PKCS_RSA_SHA384,
        &rcgen::PKCS_RSA_SHA512,
    ]
    .contains(&alg)
}

/// Key usage of an end-entity certificate; RSA keys also get keyEncipherment for old
/// clients that check it.
fn leaf_key_usages(key_kind: KeyKind) -> Vec<KeyUsagePurpose> {
    let mut usages = vec![KeyUsagePurpose::DigitalSignature];
    if key_kind.is_rsa() {
        usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    usages
}

/// Subject, validity window and a random serial shared by everything we issue.
fn base_params(common_name: &str, validity_days: u32) -> Result<CertificateParams, PkiError> {
    if common_name.is_empty() || common_name.len() > 64 {
        return Err(PkiError::Generate("common name must be 1 to 64 bytes".into()));
    }
    if validity_days == 0 || validity_days > MAX_VALIDITY_DAYS {
        return Err(PkiError::Generate(format!(
            "validity must be 1 to {MAX_VALIDITY_DAYS} days"
        )));
    }
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + Duration::from_secs(u64::from(validity_days) * 86_400);
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// 127 random bits: positive as a DER INTEGER and unpredictable (RFC 5280 §4.1.2.2).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| PkiError::Generate("random number generator failed".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}
