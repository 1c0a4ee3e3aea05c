//! vCenter fails over request by request: every step of its flow on another
//! node than the step before, each on a new connection, right after it.
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use crate::common::bao_cluster::BaoCluster;
use crate::common::cluster::KeywardCluster;
use crate::common::vcenter::{Vcenter, X_TAGS};
use keyward::kmip::State;

#[test]
fn the_vcenter_flow_with_each_step_on_another_node() {
    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 3, "cluster-flow", "");
    let rt = crate::common::admin::multi_thread_runtime();
    let base = nodes.vcenter(0);
    // One vCenter (one batch id counter), its steps sent to node `i`.
    let on = |i: usize| Vcenter {
        addr: nodes.server(i % nodes.len()).addr,
        ..base.clone()
    };
    let started = Instant::now();
    rt.block_on(async {
        let uid = on(0).create().await;
        let key = on(1).get(&uid).await;
        assert_eq!(on(2).state(&uid).await, State::PRE_ACTIVE);
        on(0).activate(&uid).await;
        assert_eq!(on(1).state(&uid).await, State::ACTIVE);
        for (i, name) in X_TAGS.iter().enumerate() {
            assert_eq!(on(i + 2).text_attribute(&uid, name).await, None, "{name}");
        }
        on(2)
            .tag(
                &uid,
                [
                    ("x-Component", "Virtual Machine"),
                    ("x-Identifier", "4211a8e1-vm-flow"),
                    ("x-Name", "vm-flow"),
                ],
            )
            .await;
        assert_eq!(
            on(0).text_attribute(&uid, "x-Name").await.as_deref(),
            Some("vm-flow")
        );
        assert_eq!(
            on(1).text_attribute(&uid, "x-Identifier").await.as_deref(),
            Some("4211a8e1-vm-flow")
        );
        // Power-on through each node: the same key bytes everywhere.
        for i in 0..3 {
            assert_eq!(on(i).power_on(&uid).await.0, key.0, "node {i}");
        }
        // Locate by the VM's id finds it through every node.
        for i in 0..3 {
            let found = crate::kmip::locate(on(i).addr, &base.tls, "x-Identifier", "4211a8e1-vm-flow")
                .await
                .unwrap();
            assert_eq!(found, vec![uid.clone()], "Locate on node {i}");
        }
        // A second VM, its steps on the nodes in the other order.
        let uid2 = on(2).create().await;
        on(1).activate(&uid2).await;
        assert_eq!(on(0).state(&uid2).await, State::ACTIVE);
        assert_eq!(on(2).get(&uid2).await.0, on(1).get(&uid2).await.0);
        assert_ne!(uid, uid2);
    });
    eprintln!(
        "cluster: vCenter flow over 3 nodes, one step per node in turn: {:?}",
        started.elapsed()
    );
}

/// No lost update: three nodes adding attributes to one key at once; every
/// Add Attribute answered Success is there afterwards, seen from every node.
#[test]
fn concurrent_changes_of_one_key_through_three_nodes_lose_no_update() {
    use crate::common::vcenter::add_attribute_payload;
    use keyward::kmip::{Operation, ResultStatus};

    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 3, "cluster-race", "");
    let rt = crate::common::admin::multi_thread_runtime();
    let tls = nodes.tls();
    rt.block_on(async {
        let uid = crate::kmip::create(nodes.server(0).addr, &tls).await.unwrap();
        let mut tasks = Vec::new();
        for node in 0..nodes.len() {
            let (addr, tls, uid) = (nodes.server(node).addr, tls.clone(), uid.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut refused = Vec::new();
                for i in 0..8 {
                    let name = format!("x-node{node}-{i}");
                    let payload = add_attribute_payload(&uid, &name, "set");
                    match crate::kmip::once(addr, &tls, Operation::ADD_ATTRIBUTE, payload).await {
                        Ok(item) if item.result_status == ResultStatus::SUCCESS => acked.push(name),
                        Ok(item) => refused.push(format!("{name}: {:?}", item.result_message)),
                        Err(e) => refused.push(format!("{name}: {e:?}")),
                    }
                }
                (acked, refused)
            }));
        }
        let mut acked = Vec::new();
        let mut refused = Vec::new();
        for task in tasks {
            let (a, r) = task.await.unwrap();
            acked.extend(a);
            refused.extend(r);
        }
        for i in 0..nodes.len() {
            let vcenter = nodes.vcenter(i);
            for name in &acked {
                assert_eq!(
                    vcenter.text_attribute(&uid, name).await.as_deref(),
                    Some("set"),
                    "{name} acknowledged but missing on node {i}"
                );
            }
        }
        eprintln!(
            "cluster: 24 Add Attribute on one key from 3 nodes at once: {} acknowledged (all kept on \
             every node), {} refused: {refused:?}",
            acked.len(),
            refused.len()
        );
        for r in &refused {
            assert!(r.contains("retry"), "a refusal that does not say retry: {r}");
        }
        assert!(
            acked.len() >= 12,
            "most concurrent changes should succeed: {refused:?}"
        );
    });
}
