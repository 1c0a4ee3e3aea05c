//! The running server refuses clients it must not serve — no certificate, one from
//! another CA, an expired one, TLS 1.1 — and accepts vCenter's self-signed,
//! CA-flagged certificate once it is pinned through a per-client trust file and a
//! SIGHUP, and refuses it again once the file is removed and SIGHUP sent. After
//! every refusal a good client is still served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use common::vcenter::{Outgoing, V1_1, request_message};
use keyward::kmip::message::ResponseMessage;
use keyward::kmip::{Operation, ResultStatus, tags};
use keyward::pki::{CertificateAuthority, Fingerprint, KeyKind};
use keyward::ttlv::{self, HEADER_LEN, Item};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A client certificate chain and its key, PEM.
struct Identity {
    cert_pem: String,
    key_pem: String,
}

impl Identity {
    fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// vCenter's own certificate: self-signed, `CA:TRUE`, RSA 2048.
fn vcenter_self_signed() -> Identity {
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "vcenter.example.com");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.not_before = now() - Duration::from_secs(86_400);
    params.not_after = now() + Duration::from_secs(86_400 * 365);
    let cert = params.self_signed(&key).unwrap();
    Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A client certificate from the server's own development CA that expired yesterday.
fn expired_from_dev_ca(server: &TestServer) -> Identity {
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(server.path("pki/ca.key")).unwrap()).unwrap();
    let ca_pem = std::fs::read_to_string(server.path("pki/ca.pem")).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "expired-client");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = now() - Duration::from_secs(86_400 * 30);
    params.not_after = now() - Duration::from_secs(86_400);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A well-formed client certificate from a CA the server has never heard of.
fn from_other_ca() -> Identity {
    let ca = CertificateAuthority::generate("Some Other CA", 365).unwrap();
    let issued = ca.issue_client("stranger", KeyKind::EcdsaP256, 365).unwrap();
    Identity {
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem.expose().to_owned(),
    }
}

fn dev_client(server: &TestServer) -> Identity {
    Identity {
        cert_pem: std::fs::read_to_string(server.path("pki/client.pem")).unwrap(),
        key_pem: std::fs::read_to_string(server.path("pki/client.key")).unwrap(),
    }
}

/// A rustls client trusting the server's CA, presenting `identity` (or nothing).
fn client_config(server: &TestServer, identity: Option<&Identity>) -> Arc<ClientConfig> {
    client_config_with(
        server,
        identity,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
}

fn client_config_with(
    server: &TestServer,
    identity: Option<&Identity>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server.path("pki/ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                vec![id.der()],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    Arc::new(config)
}

/// Connects and sends Discover Versions; `Ok` only when a successful KMIP answer
/// comes back. Refusals surface as a failed handshake or, in TLS 1.3 (where the
/// client's certificate is checked after the client considers the handshake
/// done), as an alert or a close on the first read.
async fn attempt(server: &TestServer, config: Arc<ClientConfig>) -> Result<(), String> {
    let exchange = async {
        let tcp = TcpStream::connect(server.addr).await.map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let request = request_message(
            V1_1,
            None,
            &[Outgoing {
                operation: Operation::DISCOVER_VERSIONS,
                id: None,
                payload: Item::structure(tags::REQUEST_PAYLOAD, Vec::new()),
            }],
        );
        tls.write_all(&request).await.map_err(|e| format!("write: {e}"))?;
        let mut header = [0u8; HEADER_LEN];
        tls.read_exact(&mut header)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let total = ttlv::frame_len(&header, 1 << 20).map_err(|e| e.to_string())?;
        let mut message = header.to_vec();
        message.resize(total, 0);
        tls.read_exact(&mut message[HEADER_LEN..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        let response = ResponseMessage::from_item(&ttlv::decode(&message).unwrap()).unwrap();
        assert_eq!(response.batch_items[0].result_status, ResultStatus::SUCCESS);
        let _ = tls.shutdown().await;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .map_err(|_| "the server neither answered nor closed".to_string())?
}

async fn assert_refused(server: &TestServer, config: Arc<ClientConfig>, what: &str) {
    let result = attempt(server, config).await;
    assert!(result.is_err(), "{what} must be refused");
    eprintln!("{what}: refused ({})", result.unwrap_err());
    // ... and the server still serves a good client.
    attempt(server, client_config(server, Some(&dev_client(server))))
        .await
        .unwrap_or_else(|e| panic!("good client after {what}: {e}"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn bad_client_certificates_are_refused_and_serving_goes_on() {
    let mut server = TestServer::start();
    runtime().block_on(async {
        attempt(&server, client_config(&server, Some(&dev_client(&server))))
            .await
            .expect("the development client is served");
        // In TLS 1.2 the handshake itself fails; in TLS 1.3 the client learns on its
        // first read. Each twice, to see the server unharmed by repetition.
        for versions in [[&rustls::version::TLS12], [&rustls::version::TLS13]].repeat(2) {
            let config = |id: Option<&Identity>| client_config_with(&server, id, &versions);
            assert_refused(&server, config(None), "no client certificate").await;
            assert_refused(
                &server,
                config(Some(&from_other_ca())),
                "another CA's certificate",
            )
            .await;
            assert_refused(
                &server,
                config(Some(&expired_from_dev_ca(&server))),
                "an expired certificate",
            )
            .await;
            // vCenter's self-signed certificate, not yet pinned.
            assert_refused(
                &server,
                config(Some(&vcenter_self_signed())),
                "an unpinned self-signed certificate",
            )
            .await;
        }
    });
    assert!(server.running());
}

/// openssl offering only TLS 1.1, and a hand-made TLS 1.1 ClientHello (in case this
/// openssl build will not send one): both end in an alert or a close.
#[test]
fn tls_1_1_is_refused_and_serving_goes_on() {
    let server = TestServer::start();
    let (cert, key, ca) = server.client_files();
    let output = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &server.addr.to_string(), "-tls1_1"])
        .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .arg("-CAfile")
        .arg(&ca)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("openssl -tls1_1: {text}");
    assert!(!output.status.success(), "TLS 1.1 must fail: {text}");
    assert!(!text.contains("Cipher is ECDHE"), "no TLS 1.1 session: {text}");
    if !text.contains("no protocols available") {
        assert!(
            text.contains("alert"),
            "expected an alert from the server: {text}"
        );
    }

    runtime().block_on(async {
        // legacy_version 3.2 and no supported_versions extension: TLS 1.1 only.
        let mut body = vec![0x03, 0x02];
        body.extend_from_slice(&[0x5a; 32]);
        body.push(0);
        body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]);
        body.extend_from_slice(&[0x01, 0x00]);
        let mut hello = vec![0x01, 0x00, 0x00, body.len() as u8];
        hello.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x02, 0x00, hello.len() as u8];
        record.extend_from_slice(&hello);
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&record).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut reply))
            .await
            .expect("the server closes")
            .ok();
        if !reply.is_empty() {
            assert_eq!(reply[0], 0x15, "an alert, never a ServerHello: {reply:02x?}");
            assert_eq!(reply.get(5), Some(&2), "fatal alert: {reply:02x?}");
        }
        attempt(&server, client_config(&server, Some(&dev_client(&server))))
            .await
            .expect("still serving after TLS 1.1");
    });
}

/// Retries `attempt` until it gives the wanted outcome: a SIGHUP reload is
/// asynchronous, and the test must not guess how long it takes.
async fn until(server: &TestServer, config: &Arc<ClientConfig>, accepted: bool) -> Result<(), String> {
    let mut last = Ok(());
    for _ in 0..100 {
        last = attempt(server, Arc::clone(config)).await;
        if last.is_ok() == accepted {
            return last.or(Ok(()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "never became {}: {last:?}",
        if accepted { "accepted" } else { "refused" }
    ))
}

#[test]
fn pinned_vcenter_certificate_is_accepted_after_sighup_and_refused_after_removal() {
    let server = TestServer::start();
    let vcenter = vcenter_self_signed();
    let fingerprint = Fingerprint::of_der(&vcenter.der()).to_colon_hex();
    let clients = server.path("clients");
    // One config for every attempt: its session cache lets later attempts resume,
    // and a resumed session must not outlive the removal of the pin either.
    let config = client_config(&server, Some(&vcenter));
    runtime().block_on(async {
        assert_refused(&server, Arc::clone(&config), "the vCenter certificate before pinning").await;

        std::fs::write(clients.join("vcenter-prod.pem"), &vcenter.cert_pem).unwrap();
        std::fs::write(
            clients.join("vcenter-prod.toml"),
            format!(
                "name = \"vcenter-prod\"\nkind = \"pin\"\nfingerprint = \"{fingerprint}\"\ncert = \"vcenter-prod.pem\"\n"
            ),
        )
        .unwrap();
        server.signal("HUP");
        until(&server, &config, true).await.expect("pinned after SIGHUP");
        // Resumption (the config holds a session now) keeps working while pinned.
        attempt(&server, Arc::clone(&config)).await.unwrap();

        std::fs::remove_file(clients.join("vcenter-prod.toml")).unwrap();
        server.signal("HUP");
        until(&server, &config, false).await.expect("refused after removal");
        // A fresh handshake (no session to resume) is refused too.
        assert_refused(
            &server,
            client_config(&server, Some(&vcenter)),
            "the vCenter certificate after unpinning",
        )
        .await;
    });
    assert!(server.log().contains("client trust reloaded"), "{}", server.log());
}
