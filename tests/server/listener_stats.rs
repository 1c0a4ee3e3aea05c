//! The listener in-process with an echo handler: its counters add up
//! (every accepted connection is either refused or established; `open` returns
//! to zero) and shutdown returns once connections are gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keyward::auth::{TrustSnapshot, TrustSource, TrustStore};
use keyward::config::TlsVersion;
use keyward::net::tls::{ServerConfigSource, TlsSettings};
use keyward::net::{ConnectionInfo, Listener, ListenerSettings, ListenerStats, RequestHandler};
use keyward::pki::{CertificateAuthority, KeyKind, write_private_pem, write_public_pem};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[allow(dead_code)]
use crate::common::kmip_client;
use kmip_client::{Client, ClientTls};

/// Answers every message with itself.
struct Echo;

impl RequestHandler for Echo {
    async fn handle(&self, _conn: &ConnectionInfo, request: Vec<u8>) -> Option<Vec<u8>> {
        Some(request)
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    client: ClientTls,
    stats: Arc<ListenerStats>,
    stop: watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
}

async fn setup(listener_settings: ListenerSettings) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let ca = CertificateAuthority::generate("listener test CA", 30).unwrap();
    let server_cert = ca.issue_server(&[], KeyKind::EcdsaP256, 30).unwrap();
    let client_cert = ca.issue_client("echo-client", KeyKind::EcdsaP256, 30).unwrap();
    write_public_pem(&path("ca.pem"), ca.cert_pem()).unwrap();
    write_public_pem(&path("server.pem"), &server_cert.cert_pem).unwrap();
    write_private_pem(&path("server.key"), &server_cert.key_pem).unwrap();
    write_public_pem(&path("client.pem"), &client_cert.cert_pem).unwrap();
    write_private_pem(&path("client.key"), &client_cert.key_pem).unwrap();
    let mut trust = TrustSnapshot::builder();
    trust.add_ca(TrustSource::new("test-ca", None), ca.cert_der().clone());
    let trust = Arc::new(TrustStore::new(trust.build().unwrap()));
    let settings = TlsSettings {
        cert: path("server.pem"),
        key: path("server.key"),
        versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
        session_cache_entries: 64,
        send_ca_names: true,
    };
    let stats = Arc::new(ListenerStats::default());
    let listener = Arc::new(Listener {
        settings: listener_settings,
        tls: Arc::new(ServerConfigSource::new(&settings, trust).unwrap()),
        handler: Arc::new(Echo),
        stats: Arc::clone(&stats),
        metrics: keyward::metrics::Metrics::new(),
    });
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let serving = tokio::spawn(listener.serve(vec![socket], stopped));
    let client =
        ClientTls::from_pem_files(&path("ca.pem"), &path("client.pem"), &path("client.key")).unwrap();
    Setup {
        _dir: dir,
        addr,
        client,
        stats,
        stop,
        serving,
    }
}

/// A minimal framed message: an empty Request Message structure.
const MESSAGE: [u8; 8] = [0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0];

/// Waits until `accepted` connections were accepted and all of them closed: a
/// connection the test opened may not have been accepted yet when the others
/// are already closed.
async fn settled(stats: &ListenerStats, accepted: u64) {
    for _ in 0..500 {
        if stats.accepted.load(Ordering::Relaxed) >= accepted && stats.open.load(Ordering::Relaxed) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("connections still open: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_add_up_and_shutdown_returns() {
    let s = setup(ListenerSettings {
        handshake_timeout: Duration::from_secs(2),
        ..ListenerSettings::default()
    })
    .await;
    for _ in 0..3 {
        let mut c = Client::connect(s.addr, &s.client).await.unwrap();
        assert_eq!(c.round_trip_bytes(&MESSAGE).await.unwrap(), MESSAGE);
        assert_eq!(c.round_trip_bytes(&MESSAGE).await.unwrap(), MESSAGE);
        c.close().await;
    }
    // Garbage after the handshake.
    let mut c = Client::connect(s.addr, &s.client).await.unwrap();
    c.send_bytes(b"not a TTLV frame").await.unwrap();
    assert!(c.read_message().await.ok().flatten().is_none());
    // No handshake at all, and a handshake that never finishes (2 s timeout).
    drop(TcpStream::connect(s.addr).await.unwrap());
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    settled(&s.stats, 6).await;

    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let st = &s.stats;
    assert_eq!(get(&st.accepted), 6, "{st:?}");
    assert_eq!(get(&st.established), 4, "{st:?}");
    assert_eq!(get(&st.refused), 2, "{st:?}");
    assert_eq!(get(&st.accepted), get(&st.established) + get(&st.refused));
    assert_eq!(get(&st.messages), 6, "{st:?}");
    assert_eq!(get(&st.closed_bad_input), 1, "{st:?}");
    assert_eq!(get(&st.closed_write_timeout), 0, "{st:?}");

    // Shutdown with an idle connection open: it is closed and serve returns.
    let mut idle = Client::connect(s.addr, &s.client).await.unwrap();
    assert_eq!(idle.round_trip_bytes(&MESSAGE).await.unwrap(), MESSAGE);
    s.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.serving)
        .await
        .expect("serve returns promptly")
        .unwrap();
    assert!(idle.read_message().await.ok().flatten().is_none());
    assert_eq!(s.stats.open.load(Ordering::Relaxed), 0);
    assert!(TcpStream::connect(s.addr).await.is_err(), "no longer listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_new_connections_until_a_slot_frees() {
    let s = setup(ListenerSettings {
        max_connections: 2,
        ..ListenerSettings::default()
    })
    .await;
    let mut first = Client::connect(s.addr, &s.client).await.unwrap();
    let mut second = Client::connect(s.addr, &s.client).await.unwrap();
    first.round_trip_bytes(&MESSAGE).await.unwrap();
    second.round_trip_bytes(&MESSAGE).await.unwrap();
    // The third waits in the kernel's backlog: its handshake does not progress ...
    let third = tokio::spawn({
        let (addr, tls) = (s.addr, s.client.clone());
        async move {
            let mut c = Client::connect(addr, &tls).await.unwrap();
            c.round_trip_bytes(&MESSAGE).await.unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "served past the cap");
    assert_eq!(s.stats.accepted.load(Ordering::Relaxed), 2);
    // ... until a slot frees.
    first.close().await;
    let echoed = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, MESSAGE);
    assert_eq!(s.stats.accepted.load(Ordering::Relaxed), 3);
    second.round_trip_bytes(&MESSAGE).await.unwrap();
}
