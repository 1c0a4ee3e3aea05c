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

/// A CA for these tests, able to sign intermediates (rcgen directly: keyward's own CA
/// only issues leaves).
fn test_ca(
    name: &str,
    signer: Option<&rcgen::Issuer<'static, rcgen::KeyPair>>,
) -> (
    rustls_pki_types::CertificateDer<'static>,
    rcgen::Issuer<'static, rcgen::KeyPair>,
) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = match signer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.der().clone(), rcgen::Issuer::new(params, key))
}

#[test]
fn group_comes_from_the_ca_that_verifies_not_from_issuer_names_the_client_sends() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_a, _ca_a_key) = test_ca("Group A CA", None);
    let (ca_b, ca_b_issuer) = test_ca("Group B CA", None);
    let (intermediate_b, intermediate_b_issuer) = test_ca("Group B intermediate", Some(&ca_b_issuer));
    // A forgery anyone can make: a certificate whose issuer NAME is group A's CA,
    // signed by a look-alike key.
    let (_, fake_a_issuer) = test_ca("Group A CA", None);
    let (forged, _) = test_ca("forged link", Some(&fake_a_issuer));

    let mut leaf_params = rcgen::CertificateParams::new(vec!["client-b".to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client-b");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = leaf_params
        .signed_by(&leaf_key, &intermediate_b_issuer)
        .unwrap()
        .der()
        .clone();

    let mut builder = TrustSnapshot::builder();
    builder.add_ca(TrustSource::new("vc-a", Some("group-a".into())), ca_a.clone());
    builder.add_ca(TrustSource::new("vc-b", Some("group-b".into())), ca_b.clone());
    let snap = builder.build().unwrap();

    // Chain order as the client chooses: the forged link before the real intermediate.
    let chain = vec![leaf.clone(), forged, intermediate_b.clone()];
    let id = ClientIdentity::from_chain(&chain, &snap, now()).unwrap();
    assert_eq!(id.group(), Some("group-b"), "{:?}", id.matched);
    let honest = ClientIdentity::from_chain(&[leaf, intermediate_b], &snap, now()).unwrap();
    assert_eq!(honest.group(), Some("group-b"));

    // One CA trusted for two groups is refused when trust is loaded.
    let mut twice = TrustSnapshot::builder();
    twice.add_ca(TrustSource::new("vc-a", Some("group-a".into())), ca_a.clone());
    twice.add_ca(TrustSource::new("vc-a2", Some("group-b".into())), ca_a);
    assert!(twice.build().is_err());
    drop(dir);
}

fn with_password(name: &str, group: Option<&str>, password: &[u8]) -> TrustSource {
    TrustSource::new(name, group.map(str::to_owned)).with_password(Some(crate::password::ClientPassword {
        username: "u".into(),
        hash: crate::password::PasswordHash::for_tests(password),
    }))
}

#[test]
fn one_certificate_pinned_by_disagreeing_entries_is_refused_naming_both() {
    let vc = CertificateAuthority::generate("vcenter self-signed", 30).unwrap();
    let fp = Fingerprint::of_der(vc.cert_der());
    let mut b = TrustSnapshot::builder();
    b.add_pin(TrustSource::new("vc-prod", Some("prod".into())), fp)
        .add_pin(TrustSource::new("vc-test", Some("test".into())), fp);
    let err = b.build().unwrap_err().to_string();
    assert!(
        err.contains("vc-prod") && err.contains("vc-test") && err.contains("group"),
        "{err}"
    );

    let mut b = TrustSnapshot::builder();
    b.add_pin(TrustSource::new("open", None), fp)
        .add_pin(with_password("locked", None, b"pw-1"), fp);
    let err = b.build().unwrap_err().to_string();
    assert!(
        err.contains("open") && err.contains("locked") && err.contains("password"),
        "{err}"
    );

    // Entries that agree are harmless: the first names the client.
    let mut b = TrustSnapshot::builder();
    b.add_pin(TrustSource::new("a", Some("g".into())), fp)
        .add_pin(TrustSource::new("b", Some("g".into())), fp);
    assert_eq!(b.build().unwrap().pinned(&fp).unwrap().name, "a");
}

#[test]
fn an_entry_without_password_never_shadows_one_with_a_password() {
    let ca = CertificateAuthority::generate("VMCA", 30).unwrap();
    let leaf = ca.issue_client("vpxd", KeyKind::EcdsaP256, 1).unwrap();
    let chain = [leaf.cert_der.clone()];
    // The same CA in two entries of one group, the open one first.
    let mut b = TrustSnapshot::builder();
    b.add_ca(TrustSource::new("open", None), ca.cert_der().clone())
        .add_ca(with_password("locked", None, b"pw"), ca.cert_der().clone());
    let snap = b.build().unwrap();
    let id = ClientIdentity::from_chain(&chain, &snap, now()).unwrap();
    assert_eq!(id.matched.source().name, "locked");

    // A pin without password over a CA entry with one: the CA entry wins.
    let mut b = TrustSnapshot::builder();
    b.add_ca(with_password("locked", None, b"pw"), ca.cert_der().clone())
        .add_pin(
            TrustSource::new("open-pin", None),
            Fingerprint::of_der(&leaf.cert_der),
        );
    let id = ClientIdentity::from_chain(&chain, &b.build().unwrap(), now()).unwrap();
    assert!(
        matches!(&id.matched, TrustMatch::Ca(s) if s.name == "locked"),
        "{:?}",
        id.matched
    );

    // A pin with a password stays the pin.
    let mut b = TrustSnapshot::builder();
    b.add_ca(TrustSource::new("open", None), ca.cert_der().clone())
        .add_pin(
            with_password("locked-pin", None, b"pw"),
            Fingerprint::of_der(&leaf.cert_der),
        );
    let id = ClientIdentity::from_chain(&chain, &b.build().unwrap(), now()).unwrap();
    assert!(matches!(&id.matched, TrustMatch::Pin(s) if s.name == "locked-pin"));
}

#[test]
fn a_password_change_forgets_the_credential_proved_on_a_connection() {
    let vc = CertificateAuthority::generate("vcenter self-signed", 30).unwrap();
    let fp = Fingerprint::of_der(vc.cert_der());
    let chain = [vc.cert_der().clone()];
    let snapshot = |source: TrustSource| {
        let mut b = TrustSnapshot::builder();
        b.add_pin(source, fp);
        b.build().unwrap()
    };
    let old = with_password("vc", None, b"old-password");
    let id = ClientIdentity::from_chain(&chain, &snapshot(old.clone()), now()).unwrap();
    let caller = Caller::new(&id);
    caller.set_credential_verified();

    // Reload with the same entry: the proof stays.
    let same = caller.reverified(&ClientIdentity::from_chain(&chain, &snapshot(old), now()).unwrap());
    assert!(same.credential_verified());
    // Reload after a password change: the new credential is required.
    let changed = ClientIdentity::from_chain(
        &chain,
        &snapshot(with_password("vc", None, b"new-password")),
        now(),
    )
    .unwrap();
    assert!(!caller.reverified(&changed).credential_verified());
    // A password newly required on an entry that had none: likewise.
    let open = Caller::new(
        &ClientIdentity::from_chain(&chain, &snapshot(TrustSource::new("vc", None)), now()).unwrap(),
    );
    open.set_credential_verified();
    assert!(!open.reverified(&changed).credential_verified());
}

#[tokio::test]
async fn a_client_past_its_failures_is_refused_without_the_slow_hash() {
    use crate::secret::SecretString;
    let accepted = credential::AcceptedCredentials::default();
    let stored = crate::password::ClientPassword {
        username: "u".into(),
        hash: crate::password::PasswordHash::for_tests(b"right"),
    };
    let wrong = SecretString::new("wrong".to_owned());
    let right = SecretString::new("right".to_owned());
    for _ in 0..crate::limits::MAX_CREDENTIAL_FAILURES {
        assert!(!accepted.verify("mallory", &stored, "u", &wrong).await);
    }
    // Locked out now, even with the right password ...
    assert!(!accepted.verify("mallory", &stored, "u", &right).await);
    // ... while another client with the same stored credential is not.
    assert!(accepted.verify("alice", &stored, "u", &right).await);
}
