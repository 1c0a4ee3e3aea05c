//! Nothing acknowledged is lost: 8 clients create keys, spread over the
//! nodes, while a keyward node is `kill -9`ed and restarted, and while the
//! Raft leader of the store is killed. Every Create that was answered Success
//! is then read back, with the same bytes, through every node.
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::common::bao_cluster::BaoCluster;
use crate::common::cluster::KeywardCluster;
use crate::common::kmip_client::ClientTls;
use crate::kmip;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// One acknowledged Create.
#[derive(Clone, Debug)]
struct Ack {
    uid: String,
    /// The client's own node (it fails over to the next ones when that one
    /// does not answer).
    preferred: usize,
    /// The node that acknowledged it.
    node: usize,
    started: Instant,
    at: Instant,
}

/// A request no node acknowledged.
#[derive(Clone, Debug)]
struct Failure {
    at: Instant,
    why: String,
}

/// Clients creating keys until stopped. Each request goes to the client's
/// own node first and, as vCenter does with a KMS cluster, to the next node
/// when that one fails; a request that fails on every node is counted failed.
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    acks: Arc<Mutex<Vec<Ack>>>,
    failures: Arc<Mutex<Vec<Failure>>>,
    failovers: Arc<AtomicUsize>,
}

impl Writers {
    fn start(rt: &Runtime, addrs: &Arc<RwLock<Vec<SocketAddr>>>, tls: &ClientTls, clients: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let failovers = Arc::new(AtomicUsize::new(0));
        let tasks = (0..clients)
            .map(|client| {
                let (stop, acks, failures, failovers) = (
                    Arc::clone(&stop),
                    Arc::clone(&acks),
                    Arc::clone(&failures),
                    Arc::clone(&failovers),
                );
                let addrs = Arc::clone(addrs);
                let tls = tls.clone();
                rt.spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let nodes = addrs.read().unwrap().clone();
                        let preferred = client % nodes.len();
                        let started = Instant::now();
                        let mut why = String::new();
                        let mut acked = false;
                        for hop in 0..nodes.len() {
                            let node = (preferred + hop) % nodes.len();
                            match kmip::create(nodes[node], &tls).await {
                                Ok(uid) => {
                                    acks.lock().unwrap().push(Ack {
                                        uid,
                                        preferred,
                                        node,
                                        started,
                                        at: Instant::now(),
                                    });
                                    acked = true;
                                    break;
                                }
                                Err(e) => {
                                    failovers.fetch_add(1, Ordering::Relaxed);
                                    why = format!("{e:?}");
                                }
                            }
                        }
                        if !acked {
                            failures.lock().unwrap().push(Failure {
                                at: Instant::now(),
                                why,
                            });
                            // Every node refused: vCenter would wait a little too.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                })
            })
            .collect();
        Writers {
            stop,
            tasks,
            acks,
            failures,
            failovers,
        }
    }

    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Waits until `n` Creates were acknowledged in all (60 s at most).
    fn wait_acked(&self, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {n} acknowledged; failures: {:?}",
                self.acked(),
                self.failures
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` Creates that started after `since` were acknowledged
    /// and matched `which` (60 s at most); the first one's time.
    fn wait_acked_since(
        &self,
        since: Instant,
        n: usize,
        what: &str,
        which: impl Fn(&Ack) -> bool,
    ) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let acks = self.acks.lock().unwrap().clone();
            let mut matching: Vec<&Ack> = acks.iter().filter(|a| a.started >= since && which(a)).collect();
            if matching.len() >= n {
                matching.sort_by_key(|a| a.at);
                return matching[0].at;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {} acknowledged; last failures: {:?}",
                matching.len(),
                self.failures
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(self, rt: &Runtime) -> (Vec<Ack>, Vec<Failure>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            rt.block_on(task).expect("a writer failed");
        }
        let acks = self.acks.lock().unwrap().clone();
        let failures = self.failures.lock().unwrap().clone();
        (acks, failures, self.failovers.load(Ordering::Relaxed))
    }
}

/// Reads every acknowledged key through node 0, then checks every other node
/// answers the same bytes: the uids lost or changed (none expected).
fn losses(rt: &Runtime, nodes: &KeywardCluster, acks: &[Ack]) -> Vec<String> {
    let tls = nodes.tls();
    rt.block_on(async {
        let mut expected = Vec::new();
        let mut lost = Vec::new();
        for ack in acks {
            match kmip::get(nodes.server(0).addr, &tls, &ack.uid).await {
                Ok(bytes) => expected.push((ack.uid.clone(), bytes)),
                Err(e) => lost.push(format!("{} (acked by node {}): {e:?}", ack.uid, ack.node)),
            }
        }
        for i in 1..nodes.len() {
            lost.extend(
                kmip::check_all(nodes.server(i).addr, &tls, &expected)
                    .await
                    .into_iter()
                    .map(|l| format!("node {i}: {l}")),
            );
        }
        lost
    })
}

fn addresses(nodes: &KeywardCluster) -> Arc<RwLock<Vec<SocketAddr>>> {
    Arc::new(RwLock::new(
        (0..nodes.len()).map(|i| nodes.server(i).addr).collect(),
    ))
}

#[test]
fn eight_clients_lose_nothing_while_a_node_is_killed_and_restarted() {
    let Some(bao) = BaoCluster::start() else { return };
    let mut nodes = KeywardCluster::start(&bao, 3, "cluster-node-kill", "");
    let rt = crate::common::admin::multi_thread_runtime();
    let addrs = addresses(&nodes);
    let writers = Writers::start(&rt, &addrs, &nodes.tls(), 8);
    writers.wait_acked(40, "before the kill");

    let victim = 1;
    let killed_at = Instant::now();
    nodes.kill9(victim);
    let acked_at_kill = writers.acked();
    // The victim's clients fail over to the other nodes.
    let failed_over = writers.wait_acked_since(killed_at, 3, "the victim's clients failing over", |a| {
        a.preferred == victim
    });
    let failover = failed_over - killed_at;
    writers.wait_acked(acked_at_kill + 40, "while the node is down");

    nodes.restart(victim);
    let restarted_at = Instant::now();
    addrs.write().unwrap()[victim] = nodes.server(victim).addr;
    let back = writers.wait_acked_since(restarted_at, 3, "the restarted node serving", |a| {
        a.node == victim
    });
    let served_after_restart = back - restarted_at;
    writers.wait_acked(writers.acked() + 20, "after the restart");

    let (acks, failures, failovers) = writers.stop(&rt);
    let lost = losses(&rt, &nodes, &acks);
    eprintln!(
        "cluster: keyward node kill -9: {} Creates acknowledged, {} failed on every node, {failovers} \
         attempts failed over to another node; losses = {}; the victim's clients acknowledged \
         elsewhere {failover:?} after the kill; the restarted node served {served_after_restart:?} \
         after its start",
        acks.len(),
        failures.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged keys lost or changed: {lost:#?}");
    assert!(
        failures.is_empty(),
        "with two nodes up every request should have been served: {failures:?}"
    );
}

#[test]
fn the_raft_leader_killed_under_load_loses_nothing_and_writes_resume() {
    let Some(mut bao) = BaoCluster::start() else {
        return;
    };
    let nodes = KeywardCluster::start(&bao, 3, "cluster-leader-kill", "");
    let rt = crate::common::admin::multi_thread_runtime();
    let addrs = addresses(&nodes);
    let writers = Writers::start(&rt, &addrs, &nodes.tls(), 8);
    writers.wait_acked(40, "before the kill");

    let leader = bao.leader().expect("an active OpenBao node");
    let killed_at = Instant::now();
    bao.kill9(leader);
    let new_leader = bao.wait_leader(Duration::from_secs(60));
    let elected = killed_at.elapsed();
    // Writes resume: every client has an acknowledged Create sent after the kill.
    let resumed = writers.wait_acked_since(killed_at, 8, "writes after the leader was killed", |_| true);
    let resumed_after = resumed - killed_at;
    writers.wait_acked(writers.acked() + 40, "with the new leader");
    bao.restart(leader);
    writers.wait_acked(writers.acked() + 20, "with the old leader back as a follower");

    let (acks, failures, failovers) = writers.stop(&rt);
    let lost = losses(&rt, &nodes, &acks);
    let failed_after: Vec<Duration> = failures.iter().map(|f| f.at - killed_at).collect();
    eprintln!(
        "cluster: OpenBao leader (node {}) kill -9: node {} elected after {elected:?}; first \
         acknowledged Create sent after the kill {resumed_after:?} after it; {} Creates \
         acknowledged, {} failed on every node (last {:?} after the kill), {failovers} attempts \
         failed over; losses = {}",
        leader + 1,
        new_leader + 1,
        acks.len(),
        failures.len(),
        failed_after.iter().max(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged keys lost or changed: {lost:#?}");
    // "At most briefly": failures only around the election.
    if let Some(last) = failed_after.iter().max() {
        assert!(
            *last < elected + Duration::from_secs(15),
            "writes still failing {last:?} after the kill (leader elected after {elected:?}): {failures:?}"
        );
    }
    for f in &failures {
        assert!(f.why.contains("retry"), "a failure that is not 'retry': {f:?}");
    }
}
