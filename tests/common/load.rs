//! A steady KMIP load: client tasks that Create a key, Get it, and Get one of
//! their earlier keys again, over kept-alive connections, until stopped. Any
//! failed operation panics the task: the server must keep serving.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::kmip_client::{Client, ClientTls};
use keyward::kmip::{Operation, ResultStatus, tags};
use keyward::ttlv::Item;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::vcenter::{check_get, create_payload, uid_payload};

/// Keys a load made: (unique id, the 32 bytes Get returned right after Create).
pub(crate) type Keys = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    pub keys: Keys,
    pub gets: Arc<AtomicUsize>,
}

impl Load {
    /// Starts `clients` tasks on `rt`.
    pub(crate) fn start(rt: &Runtime, addr: SocketAddr, tls: &ClientTls, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let keys: Keys = Arc::default();
        let gets = Arc::new(AtomicUsize::new(0));
        let tasks = (0..clients)
            .map(|_| {
                rt.spawn(client_task(
                    addr,
                    tls.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&keys),
                    Arc::clone(&gets),
                ))
            })
            .collect();
        Load {
            stop,
            tasks,
            keys,
            gets,
        }
    }

    pub(crate) fn created(&self) -> usize {
        self.keys.lock().unwrap().len()
    }

    /// Waits until at least `n` keys exist (panics after 60 s).
    pub(crate) fn wait_for(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.created() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "load too slow: {}",
                self.created()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        self.keys.lock().unwrap().clone()
    }

    /// Stops the tasks (each finishes its current step); every key made.
    pub(crate) fn stop(self, rt: &Runtime) -> Vec<(String, Vec<u8>)> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            rt.block_on(t).expect("a load client failed");
        }
        self.keys.lock().unwrap().clone()
    }
}

async fn client_task(
    addr: SocketAddr,
    tls: ClientTls,
    stop: Arc<AtomicBool>,
    keys: Keys,
    gets: Arc<AtomicUsize>,
) {
    let mut client = Client::connect(addr, &tls).await.expect("connect");
    let mut mine: Vec<(String, Vec<u8>)> = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let uid = create(&mut client).await;
        let bytes = get(&mut client, &uid).await;
        keys.lock().unwrap().push((uid.clone(), bytes.clone()));
        mine.push((uid, bytes));
        // And an older key of this client's: readable, same bytes, whatever CRK it is under now.
        n += 1;
        let (old_uid, old_bytes) = &mine[(n * 7919) % mine.len()];
        assert_eq!(
            &get(&mut client, old_uid).await,
            old_bytes,
            "Get of {old_uid} changed"
        );
        gets.fetch_add(2, Ordering::Relaxed);
    }
    client.close().await;
}

/// Create with vCenter's template over `client`, which must succeed: the new key's uid.
pub(crate) async fn create(client: &mut Client) -> String {
    let item = client
        .call(Operation::CREATE, create_payload())
        .await
        .expect("Create");
    assert_eq!(
        item.result_status,
        ResultStatus::SUCCESS,
        "Create failed: {item:?}"
    );
    item.payload
        .as_ref()
        .and_then(|p| p.child(tags::UNIQUE_IDENTIFIER))
        .and_then(Item::as_text)
        .expect("Create answers the id")
        .to_owned()
}

/// Get over `client`: the key's 32 bytes.
pub(crate) async fn get(client: &mut Client, uid: &str) -> Vec<u8> {
    let item = client.call(Operation::GET, uid_payload(uid)).await.expect("Get");
    check_get(&item, uid).0
}

/// Checks every key Gets the bytes it had, over a few connections.
pub(crate) fn check_all(rt: &Runtime, addr: SocketAddr, tls: &ClientTls, keys: &[(String, Vec<u8>)]) {
    rt.block_on(async {
        let mut tasks = Vec::new();
        for chunk in keys.chunks(keys.len().div_ceil(4).max(1)) {
            let chunk = chunk.to_vec();
            let tls = tls.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr, &tls).await.expect("connect");
                for (uid, bytes) in &chunk {
                    assert_eq!(&get(&mut client, uid).await, bytes, "Get of {uid} changed");
                }
                client.close().await;
            }));
        }
        for t in tasks {
            t.await.expect("a checking client failed");
        }
    });
}
