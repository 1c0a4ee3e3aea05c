//! The running server loses no acknowledged key to `kill -9`, and SIGTERM drains:
//! a request in flight when it arrives is still answered, and the process exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::TestServer;
use common::kmip_client::{Client, ClientTls};
use common::vcenter::{
    Outgoing, V1_1, Vcenter, check_get, create_payload, exchange, expect_success, uid_payload,
};
use keyward::kmip::message::ResponseMessage;
use keyward::kmip::payload::{Payload, locate};
use keyward::kmip::{Operation, ResultStatus, State, tags};
use keyward::ttlv::{self, Item};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every object the caller can see (Locate with no attributes).
async fn all_objects(vc: &Vcenter) -> HashSet<String> {
    let answers = vc
        .step(vec![(
            Operation::LOCATE,
            Item::structure(tags::REQUEST_PAYLOAD, Vec::new()),
        )])
        .await;
    locate::Response::from_payload(expect_success(&answers[0]))
        .unwrap()
        .unique_identifiers
        .into_iter()
        .collect()
}

/// What one writer saw before the server died.
#[derive(Default)]
struct Seen {
    /// Create acknowledged; the key's bytes when the Get right after it answered.
    acknowledged: Vec<(String, Option<Vec<u8>>)>,
    /// Creates sent whose answer never came (the server may or may not have them).
    unresolved: usize,
}

/// Creates keys as fast as one kept-alive connection allows until the server dies.
async fn writer(addr: std::net::SocketAddr, tls: ClientTls, acked: Arc<AtomicUsize>) -> Seen {
    let mut seen = Seen::default();
    let Ok(mut client) = Client::connect(addr, &tls).await else {
        return seen;
    };
    loop {
        let create = client.call(Operation::CREATE, create_payload()).await;
        let uid = match create {
            Ok(item) if item.result_status == ResultStatus::SUCCESS => item
                .payload
                .as_ref()
                .and_then(|p| p.child(tags::UNIQUE_IDENTIFIER))
                .and_then(Item::as_text)
                .unwrap()
                .to_owned(),
            Ok(item) => panic!("Create failed before the kill: {item:?}"),
            Err(_) => {
                seen.unresolved += 1;
                return seen;
            }
        };
        acked.fetch_add(1, Ordering::Relaxed);
        let bytes = match client.call(Operation::GET, uid_payload(&uid)).await {
            Ok(item) => Some(check_get(&item, &uid).0),
            Err(_) => None,
        };
        let died = bytes.is_none();
        seen.acknowledged.push((uid, bytes));
        if died {
            return seen;
        }
    }
}

#[test]
fn kill_9_loses_no_acknowledged_key_and_changes_nothing_else() {
    let mut server = TestServer::start();
    let rt = runtime();
    let vc = Vcenter::new(server.addr, server.client_tls());

    // Keys that were fully set up before the crash: activated and tagged.
    let before: Vec<(String, Vec<u8>)> = rt.block_on(async {
        let mut keys = Vec::new();
        for i in 0..3 {
            let (uid, key) = vc
                .encrypt_vm(
                    &format!("564d0000-0000-0000-0000-00000000000{i}"),
                    &format!("vm-{i}"),
                )
                .await;
            keys.push((uid, key.0));
        }
        keys
    });

    const WRITERS: usize = 8;
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| rt.spawn(writer(server.addr, server.client_tls(), Arc::clone(&acked))))
        .collect();
    // Kill once a good number of Creates were acknowledged (not after a fixed time).
    let mut waited = 0;
    while acked.load(Ordering::Relaxed) < 200 {
        assert!(
            waited < 600,
            "writers too slow: {} acknowledged",
            acked.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    }
    server.kill9();
    let mut seen = Seen::default();
    for w in writers {
        let s = rt.block_on(w).unwrap();
        seen.acknowledged.extend(s.acknowledged);
        seen.unresolved += s.unresolved;
    }
    eprintln!(
        "killed after {} acknowledged Creates ({} unresolved)",
        seen.acknowledged.len(),
        seen.unresolved
    );

    server.spawn();
    let vc = Vcenter::new(server.addr, server.client_tls());
    rt.block_on(async {
        let located = all_objects(&vc).await;
        let acknowledged: HashSet<String> = seen
            .acknowledged
            .iter()
            .map(|(uid, _)| uid.clone())
            .chain(before.iter().map(|(uid, _)| uid.clone()))
            .collect();
        let lost: Vec<_> = acknowledged.difference(&located).collect();
        assert!(lost.is_empty(), "acknowledged keys lost: {lost:?}");
        let extra = located.difference(&acknowledged).count();
        assert!(
            extra <= seen.unresolved,
            "{extra} objects nobody was told about, but only {} Creates were unresolved",
            seen.unresolved
        );
        for (uid, bytes) in &seen.acknowledged {
            let got = vc.get(uid).await;
            if let Some(bytes) = bytes {
                assert_eq!(&got.0, bytes, "{uid}: the same bytes after the crash");
            }
            assert_eq!(vc.state(uid).await, State::PRE_ACTIVE);
        }
        for (i, (uid, bytes)) in before.iter().enumerate() {
            assert_eq!(&vc.power_on(uid).await.0, bytes);
            assert_eq!(vc.text_attribute(uid, "x-Name").await, Some(format!("vm-{i}")));
            assert_eq!(
                vc.text_attribute(uid, "x-Component").await.as_deref(),
                Some("Virtual Machine")
            );
        }
        // Still writable.
        vc.encrypt_vm("564d0000-0000-0000-0000-0000000000ff", "after-crash")
            .await;
    });
}

/// A request that is half sent when SIGTERM arrives, and others fully sent just
/// before it, all get their answers; new connections are refused; exit status 0;
/// the keys created during the drain are there after a restart.
#[test]
fn sigterm_drains_requests_in_flight_and_exits_zero() {
    let mut server = TestServer::start();
    let rt = runtime();
    let (half_sent, batches, (mut pipelined, pipelined_items)) = rt.block_on(async {
        let vc = Vcenter::new(server.addr, server.client_tls());
        // A vCenter-style connection with a Create half written.
        let mut slow = vc.open().await;
        let create = common::vcenter::request_message(
            V1_1,
            None,
            &[Outgoing {
                operation: Operation::CREATE,
                id: Some(b"QLKC\x10\0\0\0".to_vec()),
                payload: create_payload(),
            }],
        );
        let (first, rest) = create.split_at(create.len() / 2);
        slow.send_bytes(first).await.unwrap();

        // Batches of Creates fully written just before the signal.
        let mut batches = Vec::new();
        for b in 0..4u32 {
            let mut client = server.client().await;
            let items: Vec<Outgoing> = (0..16u32)
                .map(|i| Outgoing {
                    operation: Operation::CREATE,
                    id: Some([b"QLKC".as_slice(), &(b * 100 + i).to_le_bytes()].concat()),
                    payload: create_payload(),
                })
                .collect();
            client
                .send_bytes(&common::vcenter::request_message(V1_1, None, &items))
                .await
                .unwrap();
            batches.push((client, items));
        }
        // A big batch with a second request pipelined behind it: the second has
        // arrived before the signal too, and is answered as well.
        let mut pipelined = server.client().await;
        let items: Vec<Outgoing> = (0..128u32)
            .map(|i| Outgoing {
                operation: Operation::CREATE,
                id: Some([b"QLKP".as_slice(), &i.to_le_bytes()].concat()),
                payload: create_payload(),
            })
            .collect();
        let mut both = common::vcenter::request_message(V1_1, None, &items);
        let second = vec![Outgoing {
            operation: Operation::GET,
            id: Some(b"QLKC\xff\0\0\0".to_vec()),
            payload: uid_payload("no-such-key"),
        }];
        both.extend(common::vcenter::request_message(V1_1, None, &second));
        pipelined.send_bytes(&both).await.unwrap();
        (Some((slow, rest.to_vec())), batches, (pipelined, items))
    });
    server.signal("TERM");
    let created = rt.block_on(async {
        // The listener stops accepting: wait for that, so the rest of the slow
        // request surely arrives after the shutdown began.
        let mut refused = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(server.addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(refused, "the listener kept accepting after SIGTERM");

        let (mut slow, rest) = half_sent.unwrap();
        slow.send_bytes(&rest).await.unwrap();
        let answer = slow
            .read_message()
            .await
            .unwrap()
            .expect("the half-sent request is answered");
        let answer = ResponseMessage::from_item(&ttlv::decode(&answer).unwrap()).unwrap();
        let mut created = vec![
            expect_success(&answer.batch_items[0])
                .child(tags::UNIQUE_IDENTIFIER)
                .and_then(Item::as_text)
                .unwrap()
                .to_owned(),
        ];
        assert!(slow.read_message().await.ok().flatten().is_none(), "then closed");

        for (mut client, items) in batches {
            let bytes = client
                .read_message()
                .await
                .unwrap()
                .expect("the batch sent before SIGTERM is answered");
            let answer = ResponseMessage::from_item(&ttlv::decode(&bytes).unwrap()).unwrap();
            assert_eq!(answer.batch_items.len(), items.len());
            for (sent, got) in items.iter().zip(&answer.batch_items) {
                assert_eq!(got.unique_batch_item_id, sent.id);
                created.push(
                    expect_success(got)
                        .child(tags::UNIQUE_IDENTIFIER)
                        .and_then(Item::as_text)
                        .unwrap()
                        .to_owned(),
                );
            }
        }
        let bytes = pipelined
            .read_message()
            .await
            .unwrap()
            .expect("the big batch is answered");
        let answer = ResponseMessage::from_item(&ttlv::decode(&bytes).unwrap()).unwrap();
        assert_eq!(answer.batch_items.len(), pipelined_items.len());
        for got in &answer.batch_items {
            created.push(
                expect_success(got)
                    .child(tags::UNIQUE_IDENTIFIER)
                    .and_then(Item::as_text)
                    .unwrap()
                    .to_owned(),
            );
        }
        let bytes = pipelined
            .read_message()
            .await
            .unwrap()
            .expect("the request pipelined behind it is answered too");
        let answer = ResponseMessage::from_item(&ttlv::decode(&bytes).unwrap()).unwrap();
        assert_eq!(
            answer.batch_items[0].result_reason,
            Some(keyward::kmip::ResultReason::ITEM_NOT_FOUND)
        );
        created
    });
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status after SIGTERM: {status:?}\n{}",
        server.log()
    );
    assert!(server.log().contains("stopped"), "{}", server.log());

    server.spawn();
    rt.block_on(async {
        let vc = Vcenter::new(server.addr, server.client_tls());
        let mut bytes = HashMap::new();
        for uid in &created {
            bytes.insert(uid.clone(), vc.get(uid).await.0);
        }
        assert_eq!(bytes.len(), 1 + 4 * 16 + 128);
        // An idle kept-alive connection does not hold up the next shutdown.
        let idle = vc.open().await;
        let mut client = server.client().await;
        let answers = exchange(
            &mut client,
            V1_1,
            None,
            &[Outgoing {
                operation: Operation::GET,
                id: Some(b"QLKC\x20\0\0\0".to_vec()),
                payload: uid_payload(&created[0]),
            }],
        )
        .await;
        assert_eq!(check_get(&answers[0], &created[0]).0, bytes[&created[0]]);
        server.signal("TERM");
        let status = server.wait_exit(Duration::from_secs(5));
        assert!(status.success());
        drop((idle, client));
    });
}
