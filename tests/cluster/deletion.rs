//! A record deleted in the store (`bao kv metadata delete`, as a customer
//! revoking a key would) stops being served on every node: Get answers Item
//! Not Found at once (read-through), and Locate stops returning it within the
//! deletion-sync bound (`[cluster] sync_interval`, 10 s by default).
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use crate::common::bao_cluster::BaoCluster;
use crate::common::cluster::KeywardCluster;
use crate::kmip;
use keyward::kmip::ResultReason;

/// The default deletion-sync bound, and what a loaded machine may add.
const BOUND: Duration = Duration::from_secs(10);
const SLACK: Duration = Duration::from_secs(5);

#[test]
fn a_record_deleted_in_the_store_is_gone_from_every_node_within_the_bound() {
    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 3, "cluster-delete", "");
    let rt = crate::common::admin::multi_thread_runtime();
    let tls = nodes.tls();
    rt.block_on(async {
        let vcenter = nodes.vcenter(0);
        let (uid, _) = vcenter.encrypt_vm("4211-vm-deleted", "vm-deleted").await;
        let kept = nodes.vcenter(1).encrypt_vm("4211-vm-kept", "vm-kept").await.0;
        // Every node has read it and finds it (warm caches and indexes).
        for i in 0..nodes.len() {
            let addr = nodes.server(i).addr;
            kmip::get(addr, &tls, &uid).await.unwrap();
            let found = kmip::locate(addr, &tls, "x-Name", "vm-deleted").await.unwrap();
            assert_eq!(found, vec![uid.clone()], "node {i}");
        }

        bao.kv_metadata_delete(&nodes.record_path(&uid));
        let deleted_at = Instant::now();
        let mut gone_after = Vec::new();
        for i in 0..nodes.len() {
            let addr = nodes.server(i).addr;
            let when = kmip::until(
                &format!("node {i} no longer serving the deleted key"),
                BOUND + SLACK,
                || async {
                    let get = kmip::get(addr, &tls, &uid).await;
                    let located = kmip::locate(addr, &tls, "x-Name", "vm-deleted").await.unwrap();
                    match get {
                        Err(e) if e.reason == Some(ResultReason::ITEM_NOT_FOUND) && located.is_empty() => {
                            Some(deleted_at.elapsed())
                        }
                        _ => None,
                    }
                },
            )
            .await;
            gone_after.push(when);
        }
        let worst = gone_after.iter().max().copied().unwrap();
        eprintln!(
            "cluster: a record deleted in the store: gone from Get and Locate on every node \
             within {worst:?} (per node {gone_after:?}; bound {BOUND:?})"
        );
        assert!(worst <= BOUND + SLACK, "{worst:?}");
        // Every node audits it.
        for i in 0..nodes.len() {
            nodes.audit_once(i, "the deletion in the store", |text| {
                text.lines()
                    .any(|l| l.contains(&uid) && l.contains("StoreRecordDeleted"))
            });
        }
        // Once gone, it stays gone; the other key is untouched.
        for i in 0..nodes.len() {
            let addr = nodes.server(i).addr;
            let err = kmip::get(addr, &tls, &uid).await.unwrap_err();
            assert_eq!(
                err.reason,
                Some(ResultReason::ITEM_NOT_FOUND),
                "node {i}: {err:?}"
            );
            kmip::get(addr, &tls, &kept).await.unwrap();
            let found = kmip::locate(addr, &tls, "x-Name", "vm-kept").await.unwrap();
            assert_eq!(found, vec![kept.clone()], "node {i}");
        }
    });
}
