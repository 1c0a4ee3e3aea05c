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
