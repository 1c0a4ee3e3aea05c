//! Certificates: keyward's own development CA, server and client certificates it
//! issues, CSR signing, fingerprints and inspection.
//!
//! vCenter can trust a KMS four ways (DESIGN §2); two of them need keyward to act as a
//! small CA: "KMS issues certificate + key" ([`CertificateAuthority::issue_client`]) and
//! "KMS signs vCenter's CSR" ([`CertificateAuthority::sign_csr`]). The same CA makes the
//! server certificate that vCenter then trusts by fingerprint or by uploading the CA.
//! Keys are generated with aws-lc-rs (through rcgen); private-key PEM only ever lives in
//! a [`SecretString`](crate::secret::SecretString) and is written with mode 0600.

mod error;
mod files;
mod fingerprint;
mod inspect;
mod issue;

pub use error::PkiError;
pub use files::{write_private_pem, write_public_pem};
pub use fingerprint::Fingerprint;
pub use inspect::{CertInfo, certs_from_pem, inspect_der, inspect_pem};
pub use issue::{CertificateAuthority, DEFAULT_SERVER_NAMES, IssuedCert, KeyKind};

#[cfg(test)]
mod tests;
