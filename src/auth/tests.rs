use std::path::Path;

use super::*;
use crate::config::clients::{ClientEntry, ClientKind, write_entry};
use crate::config::{Config, TlsConfig};
use crate::pki::{CertificateAuthority, Fingerprint, KeyKind, write_public_pem};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn tls_config(dir: &Path, tls_extra: &str) -> TlsConfig {
    let text = format!(
        "[tls]\ncert = \"s.pem\"\nkey = \"s.key\"\n{tls_extra}\n\
         [hsm]\nmodule = \"m.so\"\ntoken_label = \"t\"\n[store]\npath = \"db\"\n"
    );
    Config::from_toml(&text, dir).unwrap().tls
}

#[test]
fn config_ca_and_clients_dir_pin_give_identities() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("VMCA", 30).unwrap();
    write_public_pem(&dir.path().join("vmca.pem"), ca.cert_pem()).unwrap();
    let vc = CertificateAuthority::generate("vcenter self-signed", 30).unwrap();
    let clients = dir.path().join("clients");
    std::fs::create_dir(&clients).unwrap();
    write_public_pem(&clients.join("vc1.pem"), vc.cert_pem()).unwrap();
    write_entry(
        &clients,
        &ClientEntry {
            name: "vc1".into(),
            kind: ClientKind::Pin,
            cert: Some(clients.join("vc1.pem")),
            fingerprint: Some(Fingerprint::of_der(vc.cert_der()).0),
            group: Some("prod".into()),
            password: None,
        },
    )
    .unwrap();
    let tls = tls_config(
        dir.path(),
        "client_ca = [\"vmca.pem\"]\nclients_dir = \"clients\"",
    );
    let trust = TrustStore::from_config(&tls).unwrap();
    let snap = trust.snapshot();
    assert_eq!((snap.ca_count(), snap.pin_count()), (1, 1));
    assert_eq!(
        snap.hint_subjects().len(),
        2,
        "CA subject and the pinned cert's issuer"
    );

    let pinned = ClientIdentity::from_chain(&[vc.cert_der().clone()], &snap, now()).unwrap();
    assert_eq!(
        pinned.matched,
        TrustMatch::Pin(TrustSource::new("vc1", Some("prod".into())))
    );
    assert_eq!(pinned.group(), Some("prod"));
    assert_eq!(pinned.common_name.as_deref(), Some("vcenter self-signed"));

    let leaf = ca.issue_client("vpxd", KeyKind::EcdsaP256, 1).unwrap();
    let id = ClientIdentity::from_chain(std::slice::from_ref(&leaf.cert_der), &snap, now()).unwrap();
    assert!(matches!(&id.matched, TrustMatch::Ca(s) if s.name.starts_with("tls.client_ca")));
    assert_eq!(id.fingerprint, Fingerprint::of_der(&leaf.cert_der).0);

    // After expiry, and after removal, the same chain no longer yields an identity.
    let far_future = now() + 400 * 86_400;
    assert_eq!(
        ClientIdentity::from_chain(std::slice::from_ref(&leaf.cert_der), &snap, far_future),
        Err(IdentityError::OutsideValidity)
    );
    trust.replace(TrustSnapshot::empty());
    assert_eq!(trust.generation(), 1);
    assert_eq!(
        ClientIdentity::from_chain(&[leaf.cert_der], &trust.snapshot(), now()),
        Err(IdentityError::NotTrusted)
    );
    assert_eq!(
        ClientIdentity::from_chain(&[], &trust.snapshot(), now()),
        Err(IdentityError::NoCertificate)
    );
}

#[test]
fn bare_fingerprint_pin_empties_the_hint_list() {
    let ca = CertificateAuthority::generate("VMCA", 30).unwrap();
    let mut b = TrustSnapshot::builder();
    b.add_ca(TrustSource::new("vmca", None), ca.cert_der().clone());
    assert_eq!(b.build().unwrap().hint_subjects().len(), 1);
    let mut b = TrustSnapshot::builder();
    b.add_ca(TrustSource::new("vmca", None), ca.cert_der().clone())
        .add_pin(TrustSource::new("p", None), Fingerprint([1; 32]));
    let snap = b.build().unwrap();
    assert!(snap.hint_subjects().is_empty());
    assert!(snap.ca_verifier().is_some());
}

#[test]
fn failed_reload_keeps_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let pin = "aa".repeat(32);
    let tls = tls_config(dir.path(), &format!("client_pins = [\"{pin}\"]"));
    let trust = TrustStore::from_config(&tls).unwrap();
    let broken = tls_config(dir.path(), "client_ca = [\"missing.pem\"]");
    let err = trust.reload(&broken).unwrap_err().to_string();
    assert!(err.contains("missing.pem"), "{err}");
    assert_eq!(trust.generation(), 0);
    assert!(trust.snapshot().pinned(&Fingerprint([0xaa; 32])).is_some());

    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut b = TrustSnapshot::builder();
    assert!(b.add_ca_pem_file(TrustSource::new("junk", None), &junk).is_ok());
    assert!(b.build().is_err(), "undecodable CA is refused at build");
}
