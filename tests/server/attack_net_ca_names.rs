//! Issue 10, item 8: the TLS CertificateRequest names the trusted CAs to any
//! peer, before it has authenticated. `[tls] send_ca_names = false` sends none;
//! the default keeps today's list (clients that choose their certificate by it,
//! Java and Windows among them, need it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::{Arc, Mutex};

use common::TestServer;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// Records the CA names of the CertificateRequest and offers no certificate.
#[derive(Debug, Default)]
struct RecordNames(Mutex<Option<usize>>);

impl ResolvesClientCert for RecordNames {
    fn resolve(&self, root_hint_subjects: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        *self.0.lock().unwrap() = Some(root_hint_subjects.len());
        None
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// How many CA names an unauthenticated peer learns from `server`.
fn names_sent(server: &TestServer) -> usize {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server.path("pki/ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let recorder = Arc::new(RecordNames::default());
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(recorder.clone());
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    common::admin::runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        // Without a certificate the server refuses; the names were seen by then.
        let _ = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await;
    });
    let seen = *recorder.0.lock().unwrap();
    seen.expect("the server sent a CertificateRequest")
}

#[test]
fn ca_names_are_sent_by_default_and_withheld_when_configured() {
    let default = TestServer::start();
    assert!(
        names_sent(&default) > 0,
        "today's behaviour: the trusted CAs are named"
    );
    drop(default);

    let quiet = TestServer::start_with(|text| {
        *text = text.replacen("[tls]\n", "[tls]\nsend_ca_names = false\n", 1);
    });
    assert_eq!(names_sent(&quiet), 0);
    // The trusted client still gets in.
    common::admin::wait_trusted(quiet.addr, &quiet.client_tls());
}
