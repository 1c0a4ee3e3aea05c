//! Malformed, oversized, truncated, deeply nested, slow and never-read input
//! against the running server over mutual TLS: each connection is closed (or
//! answered with a KMIP error where the message is readable as KMIP), the server
//! keeps serving everyone else, and its memory, threads and descriptors stay
//! bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use common::kmip_client::Client;
use common::vcenter::{Outgoing, V1_1, Vcenter, request_message};
use keyward::kmip::message::{ProtocolVersion, ResponseMessage};
use keyward::kmip::{Operation, ResultReason, ResultStatus, tags};
use keyward::ttlv::{self, Item, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// What the server did with a message.
#[derive(Debug)]
enum Outcome {
    Closed,
    Answered(Box<ResponseMessage>),
}

/// Reads the server's reaction; it must come (no hang) within the timeout.
async fn outcome(client: &mut Client) -> Outcome {
    let read = tokio::time::timeout(Duration::from_secs(20), client.read_message())
        .await
        .expect("the server must answer or close, not hang");
    match read {
        Ok(Some(bytes)) => Outcome::Answered(Box::new(
            ResponseMessage::from_item(&ttlv::decode(&bytes).unwrap()).unwrap(),
        )),
        Ok(None) | Err(_) => Outcome::Closed,
    }
}

async fn send_and_see(server: &TestServer, bytes: &[u8], close_after: bool) -> Outcome {
    let mut client = server.client().await;
    // A large write may itself fail once the server has refused and closed.
    if client.send_bytes(bytes).await.is_err() {
        return Outcome::Closed;
    }
    if close_after {
        let _ = client.shutdown_write().await;
    }
    outcome(&mut client).await
}

fn dv(id: Option<&[u8]>) -> Outgoing {
    Outgoing {
        operation: Operation::DISCOVER_VERSIONS,
        id: id.map(<[u8]>::to_vec),
        payload: Item::structure(tags::REQUEST_PAYLOAD, Vec::new()),
    }
}

fn valid_request() -> Vec<u8> {
    request_message(V1_1, None, &[dv(Some(b"QLKC\x01\0\0\0"))])
}

/// `depth` Structures, each the only child of the one before: 8 bytes a level.
fn nested(depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(depth * 8);
    for level in 0..depth {
        let inner = ((depth - 1 - level) * 8) as u32;
        out.extend_from_slice(&[0x42, 0x00, 0x78, 0x01]);
        out.extend_from_slice(&inner.to_be_bytes());
    }
    out
}

/// The kinds of malformed framing; each must end in a closed connection.
fn malformed() -> Vec<(&'static str, Vec<u8>, bool)> {
    let valid = valid_request();
    vec![
        (
            "garbage",
            b"GET / HTTP/1.1\r\nHost: kms\r\n\r\n\x00\xff\x13\x37garbage".to_vec(),
            false,
        ),
        (
            "a header announcing 2 GiB",
            vec![0x42, 0x00, 0x78, 0x01, 0x80, 0x00, 0x00, 0x00],
            false,
        ),
        (
            "a header announcing 4 GiB - 8",
            vec![0x42, 0x00, 0x78, 0x01, 0xff, 0xff, 0xff, 0xf8],
            false,
        ),
        (
            "a first item that is not a Structure",
            vec![0x42, 0x00, 0x78, 0x02, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0],
            false,
        ),
        (
            "a length that is not a multiple of 8",
            vec![0x42, 0x00, 0x78, 0x01, 0, 0, 0, 5, 1, 2, 3, 4, 5],
            false,
        ),
        (
            "a truncated message, then close",
            valid[..valid.len() / 2].to_vec(),
            true,
        ),
        ("a header alone, then close", valid[..8].to_vec(), true),
        ("100k nested structures", nested(100_000), false),
        (
            "an invalid TTLV body (bad padding)",
            {
                let mut m = vec![0x42, 0x00, 0x78, 0x01, 0, 0, 0, 16];
                m.extend_from_slice(&[
                    0x42, 0x00, 0x7a, 0x07, 0, 0, 0, 3, b'a', b'b', b'c', 9, 9, 9, 9, 9,
                ]);
                m
            },
            false,
        ),
    ]
}

fn vcenter(server: &TestServer) -> Vcenter {
    Vcenter::new(server.addr, server.client_tls())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn malformed_frames_close_the_connection_and_serving_goes_on() {
    let mut server = TestServer::start();
    runtime().block_on(async {
        let vc = vcenter(&server);
        for (what, bytes, close_after) in malformed() {
            match send_and_see(&server, &bytes, close_after).await {
                Outcome::Closed => {}
                Outcome::Answered(m) => panic!("{what}: expected a close, got {m:?}"),
            }
            let uid = vc.create().await;
            vc.get(&uid).await;
        }
        // The same after a valid message on the connection: answered, then closed.
        let mut client = server.client().await;
        let mut both = valid_request();
        both.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]);
        client.send_bytes(&both).await.unwrap();
        assert!(matches!(outcome(&mut client).await, Outcome::Answered(_)));
        assert!(matches!(outcome(&mut client).await, Outcome::Closed));
        // Not TLS at all.
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&valid_request()).await.unwrap();
        let mut sink = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut sink),
        )
        .await;
        assert!(read.is_ok(), "plaintext KMIP must be closed, not left hanging");
        vc.register_kms().await;
    });
    assert!(server.running(), "{}", server.log());
}

fn expect_error(outcome: Outcome, version: ProtocolVersion, reason: ResultReason, id: Option<&[u8]>) {
    let Outcome::Answered(m) = outcome else {
        panic!("expected a KMIP error answer, got a close");
    };
    assert_eq!(
        m.header.protocol_version, version,
        "answered in the request's version"
    );
    assert_eq!(m.batch_items.len(), 1, "{m:?}");
    let item = &m.batch_items[0];
    assert_eq!(item.result_status, ResultStatus::OPERATION_FAILED, "{item:?}");
    assert_eq!(item.result_reason, Some(reason), "{item:?}");
    assert_eq!(item.unique_batch_item_id.as_deref(), id);
}

#[test]
fn readable_but_wrong_kmip_is_answered_with_a_kmip_error() {
    let server = TestServer::start();
    runtime().block_on(async {
        let v13 = ProtocolVersion::V1_3;
        let version = |v: ProtocolVersion| {
            Item::structure(
                tags::PROTOCOL_VERSION,
                vec![
                    Item::new(tags::PROTOCOL_VERSION_MAJOR, Value::Integer(v.major)),
                    Item::new(tags::PROTOCOL_VERSION_MINOR, Value::Integer(v.minor)),
                ],
            )
        };
        // Valid TTLV, a Request Message in form, but its header lacks Batch Count
        // and it has no batch item: Invalid Message, in the version it names.
        let not_kmip = ttlv::encode_to_vec(&Item::structure(
            tags::REQUEST_MESSAGE,
            vec![Item::structure(tags::REQUEST_HEADER, vec![version(v13)])],
        ));
        let mut client = server.client().await;
        client.send_bytes(&not_kmip).await.unwrap();
        expect_error(
            outcome(&mut client).await,
            v13,
            ResultReason::INVALID_MESSAGE,
            None,
        );
        // The connection stays usable after a KMIP-level error.
        client.send_bytes(&valid_request()).await.unwrap();
        assert!(matches!(outcome(&mut client).await, Outcome::Answered(_)));

        // Valid TTLV that is no Request Message at all: Invalid Message too.
        let foreign = ttlv::encode_to_vec(&Item::structure(
            keyward::ttlv::Tag(0x54_0001),
            vec![Item::new(keyward::ttlv::Tag(0x54_0002), Value::Integer(7))],
        ));
        client.send_bytes(&foreign).await.unwrap();
        match outcome(&mut client).await {
            Outcome::Answered(m) => {
                assert_eq!(
                    m.batch_items[0].result_reason,
                    Some(ResultReason::INVALID_MESSAGE),
                    "{m:?}"
                );
            }
            Outcome::Closed => panic!("a readable TTLV message deserves a KMIP answer"),
        }

        // Batch Count 3 for one item.
        let mut header = vec![
            version(ProtocolVersion::V1_1),
            Item::new(tags::BATCH_COUNT, Value::Integer(3)),
        ];
        let item = Item::structure(
            tags::BATCH_ITEM,
            vec![
                Item::new(
                    tags::OPERATION,
                    Value::Enumeration(Operation::DISCOVER_VERSIONS.0),
                ),
                Item::structure(tags::REQUEST_PAYLOAD, Vec::new()),
            ],
        );
        let wrong_count = ttlv::encode_to_vec(&Item::structure(
            tags::REQUEST_MESSAGE,
            vec![
                Item::structure(tags::REQUEST_HEADER, header.clone()),
                item.clone(),
            ],
        ));
        client.send_bytes(&wrong_count).await.unwrap();
        expect_error(
            outcome(&mut client).await,
            V1_1,
            ResultReason::INVALID_MESSAGE,
            None,
        );
        // Batch Count 0 with one item, and Batch Count -1.
        for count in [0, -1] {
            header[1] = Item::new(tags::BATCH_COUNT, Value::Integer(count));
            let bytes = ttlv::encode_to_vec(&Item::structure(
                tags::REQUEST_MESSAGE,
                vec![
                    Item::structure(tags::REQUEST_HEADER, header.clone()),
                    item.clone(),
                ],
            ));
            client.send_bytes(&bytes).await.unwrap();
            expect_error(
                outcome(&mut client).await,
                V1_1,
                ResultReason::INVALID_MESSAGE,
                None,
            );
        }

        // An operation the server does not know: Operation Not Supported, id echoed.
        let id = b"QLKC\x07\0\0\0";
        let unknown = request_message(
            V1_1,
            None,
            &[Outgoing {
                operation: Operation(0x0000_00ff),
                id: Some(id.to_vec()),
                payload: Item::structure(tags::REQUEST_PAYLOAD, Vec::new()),
            }],
        );
        client.send_bytes(&unknown).await.unwrap();
        expect_error(
            outcome(&mut client).await,
            V1_1,
            ResultReason::OPERATION_NOT_SUPPORTED,
            Some(id),
        );
        // ... and one the server knows of but does not implement (Certify).
        let certify = request_message(
            V1_1,
            None,
            &[Outgoing {
                operation: Operation::CERTIFY,
                id: Some(id.to_vec()),
                payload: Item::structure(tags::REQUEST_PAYLOAD, Vec::new()),
            }],
        );
        client.send_bytes(&certify).await.unwrap();
        expect_error(
            outcome(&mut client).await,
            V1_1,
            ResultReason::OPERATION_NOT_SUPPORTED,
            Some(id),
        );
        client.close().await;
        vcenter(&server).register_kms().await;
    });
}

/// One byte a second: the read timeout (2 s here) cuts the connection off long
/// before the message is complete; the same in the handshake.
#[test]
fn slow_clients_are_cut_off_by_the_timeouts() {
    let server = TestServer::start_with(|toml| {
        *toml = toml.replace(
            "[server]\n",
            "[server]\nread_timeout = 2\nhandshake_timeout = 2\n",
        );
    });
    runtime().block_on(async {
        let vc = vcenter(&server);
        let request = valid_request();

        let mut client = server.client().await;
        let mut sent = 0;
        let mut closed = false;
        for byte in &request {
            if client.send_bytes(std::slice::from_ref(byte)).await.is_err() {
                closed = true;
                break;
            }
            sent += 1;
            // While the slow client dribbles, others are served.
            if sent % 3 == 0 {
                vc.state(&vc.create().await).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if sent >= 8 {
                // Past the header the server is inside its read timeout; it must
                // close well before the last byte (a write may still succeed into
                // the socket buffer, so look for the close too).
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(1), client.read_message()).await {
                    assert!(
                        !matches!(r, Ok(Some(_))),
                        "no answer to a message never completed"
                    );
                    closed = true;
                    break;
                }
            }
        }
        assert!(closed, "the slow client was never cut off");
        assert!(
            sent < request.len(),
            "cut off before the message was complete ({sent} bytes sent)"
        );

        // Slow handshake: a ClientHello one byte a second.
        let hello = [
            0x16u8, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c, 0x03, 0x03, 0x11, 0x22,
        ];
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut cut = false;
        for byte in hello.iter().cycle().take(30) {
            if tcp.write_all(std::slice::from_ref(byte)).await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut buf = [0u8; 64];
            if let Ok(Ok(_)) = tokio::time::timeout(
                Duration::from_millis(1),
                tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
            )
            .await
            {
                cut = true;
                break;
            }
        }
        assert!(
            cut,
            "a handshake dribbled over 30 s must be cut off by the 2 s handshake timeout"
        );
        vc.register_kms().await;
    });
}

/// A client that sends requests and never reads the answers fills the socket
/// buffers; the server must not wait for it forever.
#[test]
fn a_client_that_never_reads_is_cut_off() {
    let server = TestServer::start_with(|toml| {
        *toml = toml.replace("[server]\n", "[server]\nread_timeout = 2\n");
    });
    runtime().block_on(async {
        // 256 Discover Versions per message: each answer is several times the request.
        let items: Vec<Outgoing> = (0..256u32)
            .map(|i| {
                let mut o = dv(None);
                o.id = Some([b"QLKC".as_slice(), &i.to_le_bytes()].concat());
                o
            })
            .collect();
        let request = request_message(V1_1, None, &items);
        let mut client = server.client().await;
        let flood = async {
            for _ in 0..5_000 {
                if client.send_bytes(&request).await.is_err() {
                    return true;
                }
            }
            false
        };
        let cut = tokio::time::timeout(Duration::from_secs(60), flood).await;
        assert_eq!(cut, Ok(true), "the server kept the never-reading client forever");
        vcenter(&server).register_kms().await;
    });
}

/// The kernel's view of the server's TCP connections (for failure messages).
fn ss(port: u16) -> String {
    let out = std::process::Command::new("ss")
        .args(["-tanp", &format!("sport = :{port}")])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn memory_threads_and_descriptors_stay_bounded_under_a_burst() {
    let server = TestServer::start();
    let server = Arc::new(server);
    let burst = |rounds: usize| {
        let server = Arc::clone(&server);
        async move {
            let cases = Arc::new(malformed());
            let mut tasks = tokio::task::JoinSet::new();
            for worker in 0..16 {
                let (server, cases) = (Arc::clone(&server), Arc::clone(&cases));
                tasks.spawn(async move {
                    let vc = Vcenter::new(server.addr, server.client_tls());
                    for n in (worker..rounds).step_by(16) {
                        if n % 4 == 0 {
                            vc.state(&vc.create().await).await;
                        } else {
                            let (_, bytes, close_after) = &cases[n % cases.len()];
                            send_and_see(&server, bytes, *close_after).await;
                        }
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.unwrap();
            }
        }
    };
    let rt = runtime();
    // Warm up: the allocator, the session cache, the HSM session pool.
    rt.block_on(burst(64));
    let targets0 = server.fd_targets();
    let (rss0, threads0, fds0) = (
        server.proc_status("VmRSS"),
        server.proc_status("Threads"),
        server.open_sockets(),
    );
    rt.block_on(burst(800));
    // Sockets of closed connections are released (asynchronously): wait for it.
    let mut fds1 = server.open_sockets();
    for _ in 0..100 {
        if fds1 <= fds0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        fds1 = server.open_sockets();
    }
    let (rss1, threads1) = (server.proc_status("VmRSS"), server.proc_status("Threads"));
    eprintln!(
        "after 800 connections (600 malformed): VmRSS {rss0} -> {rss1} kB, threads {threads0} -> {threads1}, sockets {fds0} -> {fds1}"
    );
    assert!(
        fds1 <= fds0,
        "sockets leak: {targets0:?} -> {:?}\n{}",
        server.fd_targets(),
        ss(server.addr.port())
    );
    assert!(rss1 < rss0 + 64 * 1024, "memory grows: {rss0} -> {rss1} kB");
    // Tokio's blocking pool (HSM and SQLite calls) may add threads under load; it is
    // bounded, far below one thread per connection.
    assert!(threads1 < threads0 + 64, "threads grow: {threads0} -> {threads1}");
}
