//! Nothing the store's operators can edit changes what keyward serves: a
//! record edited in OpenBao (its state), moved to another group, swapped with
//! another record, or rolled back to an older version is refused on every
//! node with "changed outside keyward", and the refusal is audited.
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::bao_cluster::BaoCluster;
use crate::common::cluster::KeywardCluster;
use crate::common::kmip_client::ClientTls;
use crate::kmip;
use keyward::kmip::ResultStatus;

/// Get on every node and Activate on one are refused with "changed outside
/// keyward" (asked as `tls`'s client), and every node's audit file says so for
/// this uid: what went otherwise (empty when all did), so that one run
/// reports every case.
async fn refused_everywhere(nodes: &KeywardCluster, tls: &ClientTls, uid: &str, case: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut check = |what: String, outcome: Result<(), kmip::Failed>| match outcome {
        // Never the key bytes in a message.
        Ok(()) => wrong.push(format!("{case}: {what} succeeded")),
        Err(e) if e.reason.is_none() => wrong.push(format!("{case}: {what}: no KMIP answer: {}", e.message)),
        Err(e) if !e.message.contains("changed outside keyward") => wrong.push(format!(
            "{case}: {what}: refused, but {:?}: {:?}",
            e.reason, e.message
        )),
        Err(_) => {}
    };
    for i in 0..nodes.len() {
        let got = kmip::get(nodes.server(i).addr, tls, uid).await.map(|_| ());
        check(format!("Get on node {i}"), got);
    }
    let activated = kmip::activate(nodes.server(1).addr, tls, uid).await;
    check("Activate on node 1".to_owned(), activated);
    if wrong.is_empty() {
        for i in 0..nodes.len() {
            nodes.audit_once(i, &format!("{case}: an audit line for {uid}"), |text| {
                text.lines()
                    .any(|l| l.contains(uid) && l.contains("changed outside keyward"))
            });
        }
    }
    wrong
}

#[test]
fn records_edited_or_moved_in_the_store_are_refused_on_every_node() {
    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 3, "cluster-tamper", "");
    // A client of the group a record is moved to (trusted on every node).
    let other_group = nodes.issue_client("other-client", "other-group");
    let rt = crate::common::admin::multi_thread_runtime();
    let tls = nodes.tls();
    let a = nodes.server(0).addr;
    rt.block_on(async {
        let mut uids = Vec::new();
        for _ in 0..2 {
            let uid = kmip::create(a, &tls).await.unwrap();
            // Readable everywhere before anyone touches the store.
            for i in 0..nodes.len() {
                kmip::get(nodes.server(i).addr, &tls, &uid).await.unwrap();
            }
            uids.push(uid);
        }

        // Edited: `bao kv patch … state=2` (Pre-Active made Active).
        bao.kv_patch(&nodes.record_path(&uids[0]), "state", serde_json::json!(2));
        let mut wrong = refused_everywhere(&nodes, &tls, &uids[0], "state edited").await;

        // Moved to another group: that group's client is refused, and the
        // key's own group no longer gets it either.
        let (data, _) = bao.kv_read(&nodes.record_path(&uids[1])).unwrap();
        assert_eq!(data["group"], "default", "{data}");
        bao.kv_patch(
            &nodes.record_path(&uids[1]),
            "group",
            serde_json::json!("other-group"),
        );
        wrong.extend(refused_everywhere(&nodes, &other_group, &uids[1], "moved to another group").await);
        for i in 0..nodes.len() {
            let got = kmip::get(nodes.server(i).addr, &tls, &uids[1]).await;
            assert!(got.is_err(), "moved: node {i} still serves it to its old group");
        }
        assert!(
            wrong.is_empty(),
            "changed records served or refused unclearly:\n{}",
            wrong.join("\n")
        );
    });
}

#[test]
fn a_record_rolled_back_in_the_store_is_refused_on_every_node() {
    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 3, "cluster-rollback", "");
    let rt = crate::common::admin::multi_thread_runtime();
    let tls = nodes.tls();
    rt.block_on(async {
        let uid = kmip::create(nodes.server(0).addr, &tls).await.unwrap();
        let path = nodes.record_path(&uid);
        let (older, _) = bao.kv_read(&path).unwrap();
        kmip::activate(nodes.server(1).addr, &tls, &uid).await.unwrap();
        for i in 0..nodes.len() {
            kmip::get(nodes.server(i).addr, &tls, &uid).await.unwrap();
        }
        // The Pre-Active version written back over the Active one.
        let (_, current) = bao.kv_read(&path).unwrap();
        bao.kv_write(&path, &older, current);
        let state = kmip::once(
            nodes.server(2).addr,
            &tls,
            keyward::kmip::Operation::GET_ATTRIBUTES,
            crate::common::vcenter::get_attributes_payload(&uid, "State"),
        )
        .await
        .unwrap();
        let mut wrong = refused_everywhere(&nodes, &tls, &uid, "rolled back").await;
        if state.result_status == ResultStatus::SUCCESS {
            wrong.push(format!(
                "rolled back: Get Attributes(State) answered {:?}",
                state.payload
            ));
        }
        assert!(
            wrong.is_empty(),
            "a rolled-back record served or refused unclearly:\n{}",
            wrong.join("\n")
        );
    });
}

#[test]
fn a_record_swapped_in_the_store_is_refused_on_every_node() {
    let Some(bao) = BaoCluster::start() else { return };
    let nodes = KeywardCluster::start(&bao, 3, "cluster-swap", "");
    let rt = crate::common::admin::multi_thread_runtime();
    let tls = nodes.tls();
    rt.block_on(async {
        let first = kmip::create(nodes.server(0).addr, &tls).await.unwrap();
        let second = kmip::create(nodes.server(1).addr, &tls).await.unwrap();
        for i in 0..nodes.len() {
            kmip::get(nodes.server(i).addr, &tls, &second).await.unwrap();
        }
        // The first record's data written under the second's path.
        let (data, _) = bao.kv_read(&nodes.record_path(&first)).unwrap();
        let (_, version) = bao.kv_read(&nodes.record_path(&second)).unwrap();
        bao.kv_write(&nodes.record_path(&second), &data, version);
        let wrong = refused_everywhere(&nodes, &tls, &second, "swapped").await;
        // The record that was copied is still itself.
        kmip::get(nodes.server(2).addr, &tls, &first).await.unwrap();
        assert!(
            wrong.is_empty(),
            "a swapped record served or refused unclearly:\n{}",
            wrong.join("\n")
        );
    });
}
