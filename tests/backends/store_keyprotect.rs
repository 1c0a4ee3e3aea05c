//! The IBM Key Protect / HPCS store against the in-repo fake of the keys API
//! v2 (tests/common/keyprotect_fake.rs; no emulator exists): the shared
//! conformance suite, the layout a customer sees in the console, a key
//! deleted in the console, two nodes racing, and faults (deadlines, 429/503
//! with Retry-After, a connection dropped after a write took effect, refused
//! and expiring tokens, the alias cap, the payload limit).
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::keyprotect_fake::{API_KEY, Fault, INSTANCE, KpFake};

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::store::conformance::{self, sample_record};
use keyward::store::{Conflict, KeyProtectConfig, KeyProtectStore, Store, StoreError};

fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn config(fake: &KpFake, dir: &Path, timeout: Duration) -> KeyProtectConfig {
    let key = dir.join("kp.apikey");
    write_secret(&key, &format!("{API_KEY}\n"));
    KeyProtectConfig {
        address: fake.address(),
        iam_address: fake.iam_address(),
        instance_id: INSTANCE.to_owned(),
        api_key_file: key,
        ca_file: None,
        key_ring: None,
        timeout,
    }
}

fn store(fake: &KpFake, dir: &Path) -> KeyProtectStore {
    KeyProtectStore::open(&config(fake, dir, Duration::from_secs(5))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyprotect_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let fakes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let outcome = conformance::run_all(|| {
        let fakes = Arc::clone(&fakes);
        let dir = dir.path().to_owned();
        async move {
            // A fresh, empty instance per check.
            let fake = KpFake::start().await;
            let store: Arc<dyn Store> = Arc::new(store(&fake, &dir));
            fakes.lock().unwrap().push(fake);
            Ok(store)
        }
    })
    .await;
    let failures = outcome.err().unwrap_or_default();
    let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "keyprotect fails {} check(s):\n{}",
        failures.len(),
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_per_record_as_the_console_shows_it_and_every_call_is_identified() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&fake, dir.path());
    let record = sample_record("uid-a", 1);
    store.create(&record).await.unwrap();
    let mut changed = record.clone();
    changed.state = 2;
    assert_eq!(store.update(&changed, 1).await.unwrap(), 2);

    // Copy-on-write: generation 1 deleted, generation 2 live, one name.
    let keys = fake.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.name == "kmip-uid-a"));
    assert_eq!(
        (keys[0].state, keys[0].aliases.as_slice()),
        (5, &["kmip-uid-a-g1".to_owned()][..])
    );
    assert_eq!(
        (keys[1].state, keys[1].aliases.as_slice()),
        (1, &["kmip-uid-a-g2".to_owned()][..])
    );
    assert_eq!(keys[1].description, "keyward record uid-a generation 2");
    assert_eq!(store.get("uid-a").await.unwrap().unwrap().state, 2);

    // One token for all of it; every API call names the instance and has
    // its own correlation id.
    assert_eq!(fake.grants(), 1);
    let calls: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/api/v2/"))
        .collect();
    assert!(calls.len() >= 5, "{calls:?}");
    assert!(calls.iter().all(|s| s.instance.as_deref() == Some(INSTANCE)));
    let mut ids: Vec<String> = calls.iter().map(|s| s.correlation_id.clone().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), calls.len(), "correlation ids must be fresh per call");

    // KMIP Destroy: every key of the record deleted, as the customer sees.
    assert!(store.delete("uid-a", Some(2)).await.unwrap());
    assert!(fake.keys().iter().all(|k| k.state == 5));
    assert_eq!(store.get("uid-a").await.unwrap(), None);
    assert!(!store.delete("uid-a", None).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_customer_deleted_in_the_console_is_never_served() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&fake, dir.path());
    store.create(&sample_record("uid-a", 1)).await.unwrap();
    store.create(&sample_record("uid-b", 2)).await.unwrap();
    let mut changed = sample_record("uid-a", 1);
    changed.state = 2;
    store.update(&changed, 1).await.unwrap();
    assert_eq!(fake.delete_in_console("kmip-uid-a"), 1);

    // GET answers state 5 with no payload: absent, never an older generation.
    assert_eq!(store.get("uid-a").await.unwrap(), None);
    assert_eq!(store.update(&changed, 2).await.unwrap_err(), StoreError::NotFound);
    let all = store.find(&Default::default()).await.unwrap();
    assert_eq!(all, ["uid-b"]);
    let page = store.list_page(None, 10).await.unwrap();
    assert_eq!(page.len(), 1);

    // The uid can be created again: a new generation, a new alias.
    store.create(&sample_record("uid-a", 3)).await.unwrap();
    assert_eq!(store.get("uid-a").await.unwrap().unwrap().version, 1);
    assert!(
        fake.keys()
            .iter()
            .any(|k| k.aliases == ["kmip-uid-a-g3"] && k.state == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_updating_the_same_key_have_exactly_one_winner() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node_a = Arc::new(store(&fake, dir.path()));
    let node_b = Arc::new(store(&fake, dir.path()));
    node_a.create(&sample_record("uid-a", 1)).await.unwrap();
    for round in 0..10u32 {
        let version = node_b.get("uid-a").await.unwrap().unwrap().version;
        let mut a = sample_record("uid-a", 1);
        a.attributes = format!("a{round}").into_bytes();
        let mut b = sample_record("uid-a", 1);
        b.attributes = format!("b{round}").into_bytes();
        let (ra, rb) = tokio::join!(node_a.update(&a, version), node_b.update(&b, version));
        let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
        let lost = if ra.is_ok() { &rb } else { &ra };
        assert_eq!(lost.clone().unwrap_err(), StoreError::Conflict(Conflict::Version));
        let now = node_a.get("uid-a").await.unwrap().unwrap();
        assert_eq!(now.version, version + 1);
        let winner = if ra.is_ok() { &a } else { &b };
        assert_eq!(now.attributes, winner.attributes);
    }

    // Read-modify-write loops on both nodes: no increment is lost.
    let mut counter = sample_record("uid-c", 1);
    counter.attributes = 0u32.to_be_bytes().to_vec();
    node_a.create(&counter).await.unwrap();
    let bump = |node: Arc<KeyProtectStore>| async move {
        let mut done = 0;
        while done < 5 {
            let current = node.get("uid-c").await.unwrap().unwrap();
            let n = u32::from_be_bytes(current.attributes[..4].try_into().unwrap());
            let mut next = current.clone();
            next.attributes = (n + 1).to_be_bytes().to_vec();
            match node.update(&next, current.version).await {
                Ok(_) => done += 1,
                Err(StoreError::Conflict(Conflict::Version)) => {}
                Err(other) => panic!("{other}"),
            }
        }
    };
    tokio::join!(bump(Arc::clone(&node_a)), bump(Arc::clone(&node_b)));
    let last = node_a.get("uid-c").await.unwrap().unwrap();
    assert_eq!(last.attributes, 10u32.to_be_bytes());
    assert_eq!(last.version, 11);
    // Older generations are deleted after each win: one live key per record.
    let live = fake
        .keys()
        .into_iter()
        .filter(|k| k.state == 1 && k.name == "kmip-uid-c")
        .count();
    assert_eq!(live, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_racing_an_update_has_exactly_one_winner() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node_a = store(&fake, dir.path());
    let node_b = store(&fake, dir.path());
    for round in 0..5 {
        let uid = format!("uid-{round}");
        node_a.create(&sample_record(&uid, 1)).await.unwrap();
        let mut changed = sample_record(&uid, 1);
        changed.state = 3;
        let (deleted, updated) = tokio::join!(node_a.delete(&uid, Some(1)), node_b.update(&changed, 1));
        match (deleted, updated) {
            (Ok(true), Err(StoreError::Conflict(Conflict::Version)) | Err(StoreError::NotFound)) => {
                assert_eq!(node_b.get(&uid).await.unwrap(), None)
            }
            (Err(StoreError::Conflict(Conflict::Version)), Ok(2)) => {
                assert_eq!(node_b.get(&uid).await.unwrap().unwrap().state, 3)
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_within_the_deadline_and_reported_beyond_it() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&fake, dir.path());
    store.health().await.unwrap();
    fake.inject("GET", "/api/v2/keys?", Fault::Status(429, Some(1)), 1);
    assert_eq!(store.get("uid-a").await.unwrap(), None);
    let times: Vec<Instant> = fake
        .seen()
        .iter()
        .filter(|s| s.path.contains("search=exact:kmip-uid-a"))
        .map(|s| s.at)
        .collect();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "{:?}",
        times[1] - times[0]
    );

    // 503 with a Retry-After past the deadline: reported at once, not waited.
    fake.inject("GET", "/api/v2/keys?", Fault::Status(503, Some(30)), 10);
    let started = Instant::now();
    let err = store.get("uid-a").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.is_transient() && err.to_string().contains("retry after 30 s"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_the_deadline_is_a_timeout_within_it() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = KeyProtectStore::open(&config(&fake, dir.path(), Duration::from_secs(1))).unwrap();
    store.health().await.unwrap();
    fake.inject("GET", "/api/v2/keys?", Fault::Delay(Duration::from_secs(5)), 10);
    let started = Instant::now();
    let err = store.get("uid-a").await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_after_it_took_effect_is_reconciled_by_a_read_not_repeated() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&fake, dir.path());
    fake.inject("POST", "/api/v2/keys", Fault::ResetAfterProcessing, 1);
    store.create(&sample_record("uid-a", 1)).await.unwrap();
    assert_eq!(fake.keys().len(), 1, "the create was repeated: {:?}", fake.keys());
    let posts = fake
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.path == "/api/v2/keys")
        .count();
    assert_eq!(posts, 1);

    let mut changed = sample_record("uid-a", 1);
    changed.state = 2;
    fake.inject("POST", "/api/v2/keys", Fault::ResetAfterProcessing, 1);
    assert_eq!(store.update(&changed, 1).await.unwrap(), 2);
    let live: Vec<_> = fake.keys().into_iter().filter(|k| k.state == 1).collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].aliases, ["kmip-uid-a-g2"]);
    assert_eq!(store.get("uid-a").await.unwrap().unwrap().state, 2);

    // A create that did not land (503) is sent again after a read finds nothing.
    fake.inject("POST", "/api/v2/keys", Fault::Status(503, None), 1);
    store.create(&sample_record("uid-b", 2)).await.unwrap();
    assert_eq!(fake.keys().iter().filter(|k| k.name == "kmip-uid-b").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_replaced_once_and_tokens_are_refreshed_before_expiry_by_one_call() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store(&fake, dir.path()));
    store.create(&sample_record("uid-a", 1)).await.unwrap();
    assert_eq!(fake.grants(), 1);
    fake.revoke_tokens();
    assert!(store.get("uid-a").await.unwrap().is_some());
    assert_eq!(fake.grants(), 2);
    let unauthorized = fake
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/api/v2/"))
        .count();
    assert!(unauthorized >= 3);

    // Short-lived tokens: refreshed once two thirds have passed, by one call
    // while the others keep going.
    fake.set_token_ttl(3);
    fake.revoke_tokens();
    store.health().await.unwrap();
    let granted = fake.grants();
    assert_eq!(granted, 3);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.grants() == granted {
        assert!(Instant::now() < deadline, "the token was never refreshed");
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let store = Arc::clone(&store);
            reads.spawn(async move { store.get("uid-a").await.map(|r| r.is_some()) });
        }
        while let Some(read) = reads.join_next().await {
            assert!(read.unwrap().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.grants(), granted + 1, "one refresh, not one per call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_is_an_auth_error_that_never_shows_the_key() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake, dir.path(), Duration::from_secs(5));
    write_secret(&cfg.api_key_file, "wrong-key-Secret");
    let store = KeyProtectStore::open(&cfg).unwrap();
    let err = store.health().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Auth(m) if m.contains("IAM refused")),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-key-Secret"), "{err}");
    cfg.instance_id = "00000000-0000-4000-8000-000000000000".into();
    write_secret(&cfg.api_key_file, API_KEY);
    let other = KeyProtectStore::open(&cfg).unwrap();
    assert!(matches!(other.health().await.unwrap_err(), StoreError::Auth(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_calls_without_the_instance_header_or_a_token() {
    let fake = KpFake::start().await;
    let addr = fake.address().trim_start_matches("http://").to_owned();
    let raw = move |extra: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "GET /api/v2/keys HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let answer = tokio::task::spawn_blocking(move || {
        (
            raw(""),
            raw(&format!("bluemix-instance: {INSTANCE}\r\n")),
            raw(&format!(
                "bluemix-instance: {INSTANCE}\r\nauthorization: Bearer nope\r\n"
            )),
        )
    })
    .await
    .unwrap();
    assert!(
        answer.0.starts_with("HTTP/1.1 400") && answer.0.contains("Bluemix-Instance"),
        "{}",
        answer.0
    );
    assert!(
        answer.1.starts_with("HTTP/1.1 401") && answer.1.contains("UNAUTHORIZED_ERR"),
        "{}",
        answer.1
    );
    assert!(answer.2.starts_with("HTTP/1.1 401"), "{}", answer.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alias_cap_is_reported_clearly_and_a_large_record_is_too_large_before_any_write() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&fake, dir.path());
    fake.set_alias_cap(Some(2));
    store.create(&sample_record("uid-a", 1)).await.unwrap();
    store.create(&sample_record("uid-b", 2)).await.unwrap();
    let err = store.create(&sample_record("uid-c", 3)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Other(m) if m.contains("alias limit")),
        "{err}"
    );
    // An update needs a second alias for a moment: refused the same way,
    // and the record is unchanged.
    let mut changed = sample_record("uid-a", 1);
    changed.state = 2;
    let err = store.update(&changed, 1).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Other(m) if m.contains("alias limit")),
        "{err}"
    );
    assert_eq!(store.get("uid-a").await.unwrap().unwrap().state, 1);
    fake.set_alias_cap(None);
    store.update(&changed, 1).await.unwrap();

    let before = fake.seen().iter().filter(|s| s.method == "POST").count();
    let mut big = sample_record("uid-big", 4);
    big.sealed = vec![0x5A; 6_000];
    let err = store.create(&big).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TooLarge(m) if m.contains("7500")),
        "{err}"
    );
    assert_eq!(fake.seen().iter().filter(|s| s.method == "POST").count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_cut_short_serves_nothing_and_a_retried_delete_finishes_it() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&fake, dir.path());
    store.create(&sample_record("uid-a", 1)).await.unwrap();
    // The tombstone lands, then Key Protect refuses the deletes for longer
    // than the deadline.
    fake.inject("DELETE", "/api/v2/keys/", Fault::Status(503, Some(30)), 1);
    let err = store.delete("uid-a", Some(1)).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let active: Vec<_> = fake.keys().into_iter().filter(|k| k.state == 1).collect();
    assert!(!active.is_empty(), "{active:?}");
    // Already absent for every reader: the newest generation is a tombstone.
    assert_eq!(store.get("uid-a").await.unwrap(), None);
    assert!(store.find(&Default::default()).await.unwrap().is_empty());
    // A retried delete answers "absent" and leaves no active key behind.
    assert!(!store.delete("uid-a", None).await.unwrap());
    assert!(fake.keys().iter().all(|k| k.state == 5), "{:?}", fake.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_through_more_keys_than_one_page_holds() {
    let fake = KpFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&fake, dir.path());
    let records: Vec<_> = (0..1_050u32)
        .map(|n| sample_record(&format!("uid-{n:05}"), n))
        .collect();
    let written = store
        .import(keyward::store::Export::from_records(records, 100), false)
        .await
        .unwrap();
    assert_eq!(written, 1_050);
    // Deleted keys stay listed (state 5) and are skipped.
    assert!(store.delete("uid-00007", None).await.unwrap());
    assert_eq!(store.count(&Default::default()).await.unwrap(), 1_049);
    let mut after: Option<String> = None;
    let mut walked = 0;
    loop {
        let page = store.list_page(after.as_deref(), 400).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(after.as_deref().is_none_or(|a| page[0].uid.as_str() > a));
        after = Some(last.uid.clone());
        walked += page.len();
    }
    assert_eq!(walked, 1_049);
    // list_uids reads the listing only, never a payload.
    let payload_reads = |fake: &KpFake| {
        fake.seen()
            .iter()
            .filter(|s| s.path.starts_with("/api/v2/keys/"))
            .count()
    };
    let before = payload_reads(&fake);
    let uids = store.list_uids(Some("uid-01000"), 100).await.unwrap();
    assert_eq!(uids.len(), 49);
    assert_eq!(payload_reads(&fake), before);
    let pages = fake
        .seen()
        .iter()
        .filter(|s| s.path.contains("offset=1000"))
        .count();
    assert!(pages > 0, "the second page was never asked for");
}

/// Replaces the `[store]` section of a dev-env keyward.toml.
fn with_keyprotect_store(text: &mut String, fake: &KpFake, api_key_file: &Path) {
    let start = text.find("[store]").unwrap();
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 2 + i);
    let section = format!(
        "[store]\nkind = \"keyprotect\"\naddress = \"{}\"\niam_address = \"{}\"\ninstance_id = \"{INSTANCE}\"\napi_key_file = \"{}\"\ntimeout = 3\n\n[cluster]\nindex = \"index.db\"\n\n",
        fake.address(),
        fake.iam_address(),
        api_key_file.display()
    );
    text.replace_range(start..end, &section);
}

#[test]
fn keyward_serves_create_and_get_from_a_key_protect_store() {
    use crate::common;
    // The fake runs on its own runtime, beside the server process.
    let fake_rt = tokio::runtime::Runtime::new().unwrap();
    let fake = fake_rt.block_on(KpFake::start());
    let dir = tempfile::tempdir().unwrap();
    let api_key_file = dir.path().join("kp.apikey");
    write_secret(&api_key_file, API_KEY);
    let server = common::TestServer::start_with(|text| with_keyprotect_store(text, &fake, &api_key_file));
    let rt = common::admin::runtime();
    let uid = rt.block_on(async {
        let mut client = server.client().await;
        let uid = common::load::create(&mut client).await;
        let key = common::load::get(&mut client, &uid).await;
        assert_eq!(key.len(), 32);
        client.close().await;
        uid
    });
    // One key in the customer's instance, named after the object.
    let keys = fake.keys();
    let live: Vec<_> = keys.iter().filter(|k| k.state == 1).collect();
    assert_eq!(live.len(), 1, "{keys:?}");
    assert_eq!(live[0].name, format!("kmip-{uid}"));
    let payload = live[0].payload.as_deref().unwrap_or_default().len();
    println!("the payload of a vCenter key's record: {payload} of 7500 characters");

    let check = |expect_ok: bool| {
        let out = server.keyward(&["check-config", "--config", server.config().to_str().unwrap()]);
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), expect_ok, "{shown}");
        shown
    };
    assert!(check(true).contains("keyprotect, usable"));
    write_secret(&api_key_file, "not-the-key");
    let shown = check(false);
    assert!(
        shown.contains("IAM refused") && !shown.contains("not-the-key"),
        "{shown}"
    );
    drop(server);
    drop(fake);
}
