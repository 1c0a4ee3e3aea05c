//! Client-certificate trust over real TLS on 127.0.0.1: CA-issued and pinned
//! (vCenter-style self-signed, CA-flagged) clients are accepted; missing, untrusted,
//! expired, wrongly-signed and TLS 1.1 clients are refused; trust reloads apply to the
//! next handshake and to resumed sessions.

// Test helpers outside #[test] functions may unwrap too (clippy.toml covers only those).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keyward::auth::{TrustMatch, TrustSnapshot, TrustSource, TrustStore};
use keyward::config::TlsVersion;
use keyward::net::tls::{ServerConfigSource, TlsSettings, client_identity};
use keyward::pki::{CertificateAuthority, KeyKind, write_private_pem, write_public_pem};
use keyward::secret::SecretString;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
const BOTH: [&SupportedProtocolVersion; 2] = [TLS12, TLS13];

/// A certificate with its private key, as a client holds them.
struct ClientCert {
    der: CertificateDer<'static>,
    key: SecretString,
}

impl ClientCert {
    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key.expose().as_bytes()).unwrap()
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// vCenter's own client certificate: self-signed, `basicConstraints CA:TRUE`, RSA.
fn vcenter_style(cn: &str, valid_days: i64) -> ClientCert {
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.not_before = now() - Duration::from_secs(86_400 * 2);
    params.not_after = if valid_days >= 0 {
        now() + Duration::from_secs(86_400 * valid_days as u64)
    } else {
        now() - Duration::from_secs(86_400 * (-valid_days) as u64)
    };
    let cert = params.self_signed(&key).unwrap();
    ClientCert {
        der: cert.der().clone(),
        key: SecretString::new(key.serialize_pem()),
    }
}

/// A client certificate issued by `ca` that expired yesterday.
fn expired_from(ca: &CertificateAuthority) -> ClientCert {
    let ca_key = KeyPair::from_pem(ca.key_pem().expose()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(ca.cert_pem(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "expired");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = now() - Duration::from_secs(86_400 * 30);
    params.not_after = now() - Duration::from_secs(86_400);
    let cert = params.signed_by(&key, &issuer).unwrap();
    ClientCert {
        der: cert.der().clone(),
        key: SecretString::new(key.serialize_pem()),
    }
}

fn issued(ca: &CertificateAuthority, cn: &str) -> ClientCert {
    let c = ca.issue_client(cn, KeyKind::EcdsaP256, 30).unwrap();
    ClientCert {
        der: c.cert_der,
        key: c.key_pem,
    }
}

/// A running test server. Each connection gets one line: `ok <ca|pin> <name> <kind>`
/// when an identity was derived, `no <reason> <kind>` when the handshake passed but the
/// identity check did not (a real listener closes the connection then).
struct Server {
    addr: SocketAddr,
    trust: Arc<TrustStore>,
    ca: CertificateAuthority,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(snapshot: impl FnOnce(&CertificateAuthority) -> TrustSnapshot) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("keyward test CA", 30).unwrap();
        let server_cert = ca.issue_server(&[], KeyKind::EcdsaP256, 30).unwrap();
        let settings = TlsSettings {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            session_cache_entries: 64,
            send_ca_names: true,
        };
        write_public_pem(&settings.cert, &server_cert.cert_pem).unwrap();
        write_private_pem(&settings.key, &server_cert.key_pem).unwrap();
        let trust = Arc::new(TrustStore::new(snapshot(&ca)));
        let source = Arc::new(ServerConfigSource::new(&settings, trust.clone()).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = TlsAcceptor::from(source.current());
                let trust = source.trust().clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let conn = tls.get_ref().1;
                    let kind = format!("{:?}", conn.handshake_kind());
                    let line = match client_identity(conn, &trust) {
                        Ok(id) => match id.matched {
                            TrustMatch::Ca(s) => format!("ok ca {} {kind}\n", s.name),
                            TrustMatch::Pin(s) => format!("ok pin {} {kind}\n", s.name),
                        },
                        Err(e) => format!("no {e} {kind}\n"),
                    };
                    let _ = tls.write_all(line.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Server {
            addr,
            trust,
            ca,
            _dir: dir,
        }
    }

    fn client(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        cert: Option<&ClientCert>,
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.cert_der().clone()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots);
        Arc::new(match cert {
            Some(c) => builder
                .with_client_auth_cert(vec![c.der.clone()], c.key_der())
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// Connects and returns the server's line, or an error text when refused.
    async fn attempt(&self, config: Arc<ClientConfig>) -> Result<String, String> {
        let run = async {
            let tcp = TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let mut text = String::new();
            tls.read_to_string(&mut text)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if text.is_empty() {
                return Err("closed without a reply".into());
            }
            Ok(text)
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    }

    async fn accepted(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        cert: Option<&ClientCert>,
    ) -> String {
        let reply = self.attempt(self.client(versions, cert)).await;
        match reply {
            Ok(line) if line.starts_with("ok ") => line,
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    async fn refused(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        cert: Option<&ClientCert>,
    ) -> String {
        match self.attempt(self.client(versions, cert)).await {
            Ok(line) if line.starts_with("ok ") => panic!("expected refusal, got {line:?}"),
            Ok(line) => line,
            Err(e) => e,
        }
    }
}

fn ca_and_pins(ca: &CertificateAuthority, pins: &[(&str, &ClientCert)]) -> TrustSnapshot {
    let mut b = TrustSnapshot::builder();
    b.add_ca(TrustSource::new("test-ca", None), ca.cert_der().clone());
    for (name, cert) in pins {
        b.add_pinned_cert(TrustSource::new(*name, Some("vsphere".into())), &cert.der)
            .unwrap();
    }
    b.build().unwrap()
}

#[tokio::test]
async fn ca_issued_client_is_accepted_over_tls12_and_tls13() {
    let server = Server::start(|ca| ca_and_pins(ca, &[])).await;
    let client = issued(&server.ca, "vpxd");
    for version in BOTH {
        let line = server.accepted(&[version], Some(&client)).await;
        assert!(line.starts_with("ok ca test-ca"), "{line}");
    }
}

#[tokio::test]
async fn pinned_vcenter_style_self_signed_ca_flagged_client_is_accepted() {
    let vc = vcenter_style("vcenter.example.com", 3650);
    let server = Server::start(|ca| ca_and_pins(ca, &[("vc1", &vc)])).await;
    for version in BOTH {
        let line = server.accepted(&[version], Some(&vc)).await;
        assert!(line.starts_with("ok pin vc1"), "{line}");
    }
}

#[tokio::test]
async fn vcenter_style_cert_trusted_only_as_a_ca_is_refused_by_webpki() {
    // Why pinning exists: uploading vCenter's self-signed certificate as a "CA" does not
    // make webpki accept it as a client certificate (CA used as end entity).
    let vc = vcenter_style("vcenter.example.com", 3650);
    let vc_der = vc.der.clone();
    let server = Server::start(move |_| {
        let mut b = TrustSnapshot::builder();
        b.add_ca(TrustSource::new("vc-as-ca", None), vc_der);
        b.build().unwrap()
    })
    .await;
    server.refused(&BOTH, Some(&vc)).await;
}

#[tokio::test]
async fn missing_untrusted_and_expired_certificates_are_refused() {
    let expired_pin = vcenter_style("old-vcenter", -1);
    let server = Server::start(|ca| ca_and_pins(ca, &[("old", &expired_pin)])).await;
    let other_ca = CertificateAuthority::generate("someone else's CA", 30).unwrap();
    let stranger = issued(&other_ca, "stranger");
    let unpinned = vcenter_style("unknown-vcenter", 3650);
    let expired = expired_from(&server.ca);
    for version in BOTH {
        let why = server.refused(&[version], None).await;
        assert!(!why.is_empty());
        server.refused(&[version], Some(&stranger)).await;
        server.refused(&[version], Some(&unpinned)).await;
        let why = server.refused(&[version], Some(&expired)).await;
        assert!(
            why.to_lowercase().contains("expired") || why.contains("alert"),
            "{why}"
        );
        server.refused(&[version], Some(&expired_pin)).await;
    }
}

#[tokio::test]
async fn pinned_certificate_signed_with_the_wrong_key_is_refused() {
    let vc = vcenter_style("vcenter.example.com", 3650);
    let impostor_key = vcenter_style("impostor", 3650).key_der();
    let server = Server::start(|ca| ca_and_pins(ca, &[("vc1", &vc)])).await;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signing_key = provider.key_provider.load_private_key(impostor_key).unwrap();
    // CertifiedKey::new does not check that key and certificate match: exactly what an
    // attacker holding only the (public) pinned certificate would do.
    let stolen = CertifiedKey::new(vec![vc.der.clone()], signing_key);
    for version in BOTH {
        let mut roots = RootCertStore::empty();
        roots.add(server.ca.cert_der().clone()).unwrap();
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(stolen.clone())));
        let reply = server.attempt(Arc::new(config)).await;
        assert!(!matches!(&reply, Ok(l) if l.starts_with("ok ")), "{reply:?}");
    }
    server.accepted(&BOTH, Some(&vc)).await;
}

#[tokio::test]
async fn reload_applies_to_the_next_handshake_and_to_resumed_sessions() {
    let vc = vcenter_style("vcenter.example.com", 3650);
    let server = Server::start(|ca| ca_and_pins(ca, &[])).await;
    // Not yet trusted; then `clients add` + reload: accepted without a restart.
    server.refused(&BOTH, Some(&vc)).await;
    server.trust.replace(ca_and_pins(&server.ca, &[("vc1", &vc)]));
    server.accepted(&BOTH, Some(&vc)).await;

    for version in BOTH {
        // One client config keeps its session cache, so its second connection resumes.
        let resuming = server.client(&[version], Some(&vc));
        server.trust.replace(ca_and_pins(&server.ca, &[("vc1", &vc)]));
        let first = server.attempt(resuming.clone()).await.unwrap();
        assert!(first.starts_with("ok pin vc1"), "{first}");
        let again = server.attempt(resuming.clone()).await.unwrap();
        assert!(again.contains("Resumed"), "resumption is enabled: {again}");

        // `clients remove` + reload.
        server.trust.replace(ca_and_pins(&server.ca, &[]));
        server.refused(&[version], Some(&vc)).await;
        // A resumed session skips certificate verification; the identity check does not.
        let resumed = server.attempt(resuming).await.unwrap();
        assert!(
            resumed.starts_with("no ") && resumed.contains("Resumed"),
            "{resumed}"
        );
    }
}

#[tokio::test]
async fn tls11_client_hello_is_refused() {
    let server = Server::start(|ca| ca_and_pins(ca, &[])).await;
    // A ClientHello offering only TLS 1.1 (legacy_version 3.2, no supported_versions
    // extension), written by hand because rustls cannot speak TLS 1.1.
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, RSA-AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);

    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "server must close, not hang");
    if !reply.is_empty() {
        // A fatal alert record: protocol_version (70) or handshake_failure (40), never a
        // ServerHello (0x16).
        assert_eq!(reply[0], 0x15, "expected an alert record, got {reply:02x?}");
        assert_eq!(reply.get(5), Some(&2), "fatal: {reply:02x?}");
        assert!(matches!(reply.get(6), Some(40 | 70)), "{reply:02x?}");
    }
}

#[tokio::test]
async fn hint_list_follows_reload() {
    let vc = vcenter_style("vcenter.example.com", 3650);
    let server = Server::start(|ca| ca_and_pins(ca, &[])).await;
    let ca_only = server.trust.snapshot().hint_subjects().len();
    assert_eq!(ca_only, 1);
    let mut b = TrustSnapshot::builder();
    b.add_ca(TrustSource::new("test-ca", None), server.ca.cert_der().clone())
        .add_pin(
            TrustSource::new("bare", None),
            keyward::pki::Fingerprint::of_der(&vc.der),
        );
    server.trust.replace(b.build().unwrap());
    assert!(server.trust.snapshot().hint_subjects().is_empty());
    // A Java-like client filtering by hints would now offer its self-signed certificate.
    server.accepted(&BOTH, Some(&vc)).await;
}

#[tokio::test]
async fn tls11_openssl_client_is_refused_when_openssl_is_available() {
    let server = Server::start(|ca| ca_and_pins(ca, &[])).await;
    let addr = server.addr.to_string();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr,
                "-tls1_1",
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
            ])
            .stdin(std::process::Stdio::null())
            .output()
    });
    let Ok(output) = run.await.unwrap() else {
        eprintln!("openssl not installed; the hand-made ClientHello test covers TLS 1.1");
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    if text.contains("no protocols available") {
        eprintln!("this openssl build cannot offer TLS 1.1; nothing was sent");
        return;
    }
    assert!(
        text.contains("alert"),
        "server should answer with an alert: {text}"
    );
}
