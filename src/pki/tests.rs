use std::os::unix::fs::PermissionsExt;

use rcgen::{CertificateParams, DnType, KeyPair};

use super::*;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[test]
fn ca_issues_server_and_client_certificates() {
    let ca = CertificateAuthority::generate("keyward dev CA", 365).unwrap();
    let ca_info = inspect_der(ca.cert_der()).unwrap();
    assert!(ca_info.is_ca && ca_info.self_issued);
    assert_eq!(ca_info.common_name.as_deref(), Some("keyward dev CA"));
    assert!(ca_info.is_valid_at(now()));

    let server = ca.issue_server(&[], KeyKind::EcdsaP256, 30).unwrap();
    let info = inspect_der(&server.cert_der).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("localhost"));
    assert_eq!(info.issuer, ca_info.subject);
    assert!(!info.is_ca);
    assert!(server.key_pem.expose().contains("PRIVATE KEY"));
    assert!(
        !format!("{server:?}").contains("PRIVATE"),
        "Debug must not show the key"
    );

    let client = ca.issue_client("vcenter", KeyKind::Rsa2048, 30).unwrap();
    let key = KeyPair::from_pem(client.key_pem.expose()).unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_RSA_SHA256);
    assert_eq!(
        inspect_pem(&client.cert_pem).unwrap()[0].fingerprint,
        Fingerprint::of_der(&client.cert_der)
    );
}

#[test]
fn reloaded_ca_keeps_issuing_under_the_same_name() {
    let ca = CertificateAuthority::generate("keyward CA", 30).unwrap();
    let again = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    let leaf = again.issue_client("x", KeyKind::EcdsaP256, 1).unwrap();
    assert_eq!(
        inspect_der(&leaf.cert_der).unwrap().issuer,
        inspect_der(ca.cert_der()).unwrap().subject
    );
}

#[test]
fn csr_is_signed_with_our_policy_not_the_requested_one() {
    let ca = CertificateAuthority::generate("keyward CA", 30).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["vcenter.example.com".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "vcenter.example.com");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let cert_pem = ca.sign_csr(&csr, 365).unwrap();
    let info = &inspect_pem(&cert_pem).unwrap()[0];
    assert_eq!(info.common_name.as_deref(), Some("vcenter.example.com"));
    assert!(!info.is_ca, "a CSR cannot ask for a CA certificate");
    assert!(
        ca.sign_csr(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            1
        )
        .is_err()
    );
}

#[test]
fn bad_requests_are_refused() {
    assert!(CertificateAuthority::generate("", 30).is_err());
    assert!(CertificateAuthority::generate("ca", 0).is_err());
    assert!(certs_from_pem("").is_err());
    assert!(inspect_der(b"\x30\x00").is_err());
}

#[test]
fn private_keys_are_written_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("keyward CA", 30).unwrap();
    let key_path = dir.path().join("ca.key");
    let cert_path = dir.path().join("ca.pem");
    write_private_pem(&key_path, ca.key_pem()).unwrap();
    write_public_pem(&cert_path, ca.cert_pem()).unwrap();
    write_private_pem(&key_path, ca.key_pem()).unwrap(); // overwrite is atomic and allowed
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&cert_path).unwrap(), ca.cert_pem());
}
