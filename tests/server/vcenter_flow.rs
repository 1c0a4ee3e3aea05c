//! vCenter's traffic replayed against the real server over mutual TLS on
//! 127.0.0.1 (DESIGN.md §2): registering the KMS, encrypting a VM step by step on
//! short connections, power-on lookups, many flows at once, a boot storm,
//! connections that never say anything, and the password-protection variant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestServer;
use common::vcenter::{Vcenter, X_TAGS};
use keyward::kmip::State;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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
fn vcenter_registers_the_kms_and_encrypts_a_vm() {
    let server = TestServer::start();
    runtime().block_on(async {
        let vc = vcenter(&server);
        let vendor = vc.register_kms().await;
        assert!(!vendor.is_empty());
        // Start-up asked the token for the mechanisms it needs one by one: the
        // whole list made cryptoki log an ERROR per vendor mechanism.
        assert!(!server.log().contains("ERROR"), "{}", server.log());

        let vm_uuid = "564d7a8b-1c2d-3e4f-5a6b-7c8d9e0f1a2b";
        let (uid, key) = vc.encrypt_vm(vm_uuid, "db-server-01").await;

        // Later, on power-on: the same key bytes, still Active.
        let again = vc.power_on(&uid).await;
        assert_eq!(again.0, key.0, "power-on returns the key handed out at creation");

        // The tags that link the key to its VM read back; the others are still
        // "Success with no attribute".
        assert_eq!(
            vc.text_attribute(&uid, "x-Component").await.as_deref(),
            Some("Virtual Machine")
        );
        assert_eq!(
            vc.text_attribute(&uid, "x-Identifier").await.as_deref(),
            Some(vm_uuid)
        );
        assert_eq!(
            vc.text_attribute(&uid, "x-Name").await.as_deref(),
            Some("db-server-01")
        );
        assert_eq!(vc.text_attribute(&uid, "x-Vendor").await, None);
        // keyward's own bookkeeping is there for a client that names it (and
        // left out of "every attribute", see tests/interop/pykmip_lifecycle.py).
        assert!(
            vc.text_attribute(&uid, "y-Created-By")
                .await
                .is_some_and(|c| !c.is_empty())
        );

        // vCenter versions that also stamp the product send the rest as another
        // three-item batch; all six then read back.
        vc.tag(
            &uid,
            [
                ("x-Vendor", "VMware, Inc."),
                ("x-Product", "VMware vSphere"),
                ("x-Product_Version", "8.0.1"),
            ],
        )
        .await;
        let mut seen = Vec::new();
        for name in X_TAGS {
            seen.push(vc.text_attribute(&uid, name).await.expect("set"));
        }
        assert_eq!(
            seen,
            [
                "8.0.1",
                "VMware, Inc.",
                "VMware vSphere",
                vm_uuid,
                "Virtual Machine",
                "db-server-01"
            ]
        );
    });
}

#[test]
fn twenty_vcenter_flows_in_parallel_then_a_boot_storm() {
    let server = TestServer::start();
    runtime().block_on(async {
        let vc = vcenter(&server);
        vc.register_kms().await;
        let mut flows = tokio::task::JoinSet::new();
        for i in 0..20 {
            let vc = vc.clone();
            flows.spawn(async move {
                let uuid = format!("564d0000-0000-0000-0000-{i:012}");
                let (uid, key) = vc.encrypt_vm(&uuid, &format!("vm-{i}")).await;
                (uid, key.0)
            });
        }
        let mut keys = Vec::new();
        while let Some(done) = flows.join_next().await {
            keys.push(done.unwrap());
        }
        assert_eq!(keys.len(), 20);
        let ids: HashSet<_> = keys.iter().map(|(uid, _)| uid.clone()).collect();
        let materials: HashSet<_> = keys.iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(ids.len(), 20, "every key has its own id");
        assert_eq!(materials.len(), 20, "every key has its own bytes");

        // Boot storm: 200 power-ons (Get + Get Attributes(State), each on its own
        // connection) by 32 hosts at once.
        let keys = Arc::new(keys);
        let next = Arc::new(AtomicUsize::new(0));
        let mut hosts = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (vc, keys, next) = (vc.clone(), Arc::clone(&keys), Arc::clone(&next));
            hosts.spawn(async move {
                let mut done = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= 200 {
                        return done;
                    }
                    let (uid, bytes) = &keys[n % keys.len()];
                    assert_eq!(&vc.power_on(uid).await.0, bytes);
                    done += 1;
                }
            });
        }
        let mut total = 0;
        while let Some(done) = hosts.join_next().await {
            total += done.unwrap();
        }
        assert_eq!(total, 200);
    });
}

#[test]
fn silent_and_unfinished_connections_do_not_disturb_serving() {
    let server = TestServer::start();
    runtime().block_on(async {
        let vc = vcenter(&server);
        // Handshakes that complete and then say nothing.
        for _ in 0..10 {
            let client = common::kmip_client::Client::connect(server.addr, &server.client_tls())
                .await
                .unwrap();
            client.close().await;
        }
        // ... and one dropped without even a close_notify.
        drop(
            common::kmip_client::Client::connect(server.addr, &server.client_tls())
                .await
                .unwrap(),
        );
        // TCP connections that never finish (or never start) the handshake: some
        // closed at once, some left hanging while vCenter works.
        for _ in 0..5 {
            let mut tcp = TcpStream::connect(server.addr).await.unwrap();
            tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .await
                .unwrap();
            drop(tcp);
            drop(TcpStream::connect(server.addr).await.unwrap());
        }
        let mut hanging = Vec::new();
        for _ in 0..8 {
            let mut tcp = TcpStream::connect(server.addr).await.unwrap();
            tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
            hanging.push(tcp);
            hanging.push(TcpStream::connect(server.addr).await.unwrap());
        }
        let (uid, key) = vc
            .encrypt_vm("564d0000-aaaa-bbbb-cccc-000000000001", "web-01")
            .await;
        assert_eq!(vc.power_on(&uid).await.0, key.0);
        drop(hanging);
        assert_eq!(vc.state(&uid).await, State::ACTIVE);
    });
    let mut server = server;
    assert!(server.running());
}

#[test]
fn password_protected_vcenter_flow_is_accepted() {
    let server = TestServer::start();
    runtime().block_on(async {
        let mut vc = vcenter(&server);
        vc.credential = Some(("vcenter-admin".into(), "not-a-real-password".into()));
        vc.register_kms().await;
        let (uid, key) = vc
            .encrypt_vm("564d0000-1111-2222-3333-444444444444", "secure-vm")
            .await;
        assert_eq!(vc.power_on(&uid).await.0, key.0);
    });
}
