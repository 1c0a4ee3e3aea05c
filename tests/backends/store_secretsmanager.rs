//! The AWS Secrets Manager store against moto's server (a local Secrets
//! Manager on 127.0.0.1): the shared conformance suite, the layout a customer
//! sees (and edits, and deletes) in the console, moto's AWSCURRENT quirk, and
//! faults through a fault-injecting proxy: a store that never answers, 429/503
//! with Retry-After, connections reset after the store processed a write, two
//! nodes updating one record at once, a wrong secret key.
//!
//! moto comes from the venv `scripts/pyvenv` makes (`scripts/test` does);
//! without it these tests skip with a message, except under `CI=true`.
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager as sm;
use common::fault_proxy::{Fault, FaultProxy};
use common::moto::Moto;
use keyward::store::conformance::{self, sample_record};
use keyward::store::{Conflict, SecretsManagerConfig, SecretsManagerStore, Store, StoreError};

/// A store configuration for `endpoint` (moto, or a proxy in front of it).
fn config(moto: &Moto, endpoint: &str, prefix: &str) -> SecretsManagerConfig {
    SecretsManagerConfig {
        region: "us-east-1".into(),
        endpoint: Some(endpoint.to_owned()),
        prefix: prefix.into(),
        access_key_id_file: moto.secret_file("akid", "AKIAKEYWARDTEST\n"),
        secret_access_key_file: moto.secret_file("secret", "keyward-test-secret-key\n"),
        ca_file: None,
        timeout: Duration::from_secs(5),
    }
}

fn store(moto: &Moto, endpoint: &str, prefix: &str) -> Arc<dyn Store> {
    Arc::new(SecretsManagerStore::open(&config(moto, endpoint, prefix)).unwrap())
}

/// The SDK straight to moto, to look at and edit what the store wrote (what
/// a customer does in the console).
fn raw_client(url: &str) -> sm::Client {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .build_https();
    let config = sm::Config::builder()
        .behavior_version(sm::config::BehaviorVersion::latest())
        .region(sm::config::Region::new("us-east-1"))
        .credentials_provider(sm::config::Credentials::new("test", "test", None, None, "test"))
        .http_client(http)
        .endpoint_url(url)
        .build();
    sm::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secretsmanager_store_conforms() {
    let Some(moto) = Moto::start() else { return };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcome = conformance::run_all(|| {
        // A fresh, empty store per check: its own prefix on the same server.
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let store = store(&moto, &moto.url(), &format!("conformance/{n}"));
        async move { Ok(store) }
    })
    .await;
    let failures = outcome.err().unwrap_or_default();
    let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "secretsmanager fails {} check(s):\n{}\nmoto log tail: {}",
        failures.len(),
        lines.join("\n"),
        moto.log()
            .chars()
            .rev()
            .take(2000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_lie_in_secrets_manager_as_documented_and_console_edits_are_seen() {
    let Some(moto) = Moto::start() else { return };
    let store = store(&moto, &moto.url(), "kms/prod");
    let raw = raw_client(&moto.url());
    let record = sample_record("uid-a", 1);
    store.create(&record).await.unwrap();
    let mut changed = record.clone();
    changed.state = 2;
    assert_eq!(store.update(&changed, 1).await.unwrap(), 2);

    // One secret named <prefix>/<uid>, described, its JSON at AWSCURRENT.
    let listed = raw.list_secrets().send().await.unwrap();
    let names: Vec<&str> = listed.secret_list().iter().filter_map(|s| s.name()).collect();
    assert_eq!(names, ["kms/prod/uid-a"]);
    let described = raw
        .describe_secret()
        .secret_id("kms/prod/uid-a")
        .send()
        .await
        .unwrap();
    assert_eq!(described.description(), Some("keyward KMIP object uid-a"));
    let stages = described.version_ids_to_stages().unwrap();
    let current: Vec<&String> = stages
        .iter()
        .filter(|(_, s)| s.iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(current.len(), 1, "AWSCURRENT on one version: {stages:?}");
    let value = raw
        .get_secret_value()
        .secret_id("kms/prod/uid-a")
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(json["keyward_record"], 1);
    assert_eq!(json["uid"], "uid-a");
    assert_eq!(json["state"], 2);
    assert_eq!(json["version"], 2);
    assert_eq!(
        json["sealed"],
        base64_of(&record.sealed),
        "sealed is base64 of the blob"
    );

    // moto's quirk, which the store works around by always naming the stage:
    // after a stage move, a read without a stage still answers the old version.
    let unstaged = raw
        .get_secret_value()
        .secret_id("kms/prod/uid-a")
        .send()
        .await
        .unwrap();
    let unstaged: serde_json::Value = serde_json::from_str(unstaged.secret_string().unwrap()).unwrap();
    assert_eq!(
        unstaged["version"], 1,
        "moto 5.2.5 answers the pre-move version to a read without VersionStage \
         (if a newer moto fixed this, update docs/store-secretsmanager.md)"
    );
    assert_eq!(store.get("uid-a").await.unwrap().unwrap().version, 2);

    // A secret edited in the console is refused, not misread.
    console_edit(&raw, "kms/prod/uid-a", r#"{"password":"hunter2"}"#).await;
    let err = store.get("uid-a").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if !m.contains("hunter2")),
        "{err}"
    );

    // A secret the customer deleted with a recovery window reads as absent,
    // is not listed, and its uid cannot be written until it is gone for good.
    store.create(&sample_record("uid-b", 2)).await.unwrap();
    raw.delete_secret()
        .secret_id("kms/prod/uid-b")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(store.get("uid-b").await.unwrap(), None);
    assert!(
        store
            .list_page(None, 10)
            .await
            .map(|page| page.iter().all(|r| r.uid != "uid-b"))
            .unwrap_or(true),
        "a secret scheduled for deletion is listed"
    );
    // (Other content than the first create: moto answers a create repeating
    // the first one's token with success even then, see the docs.)
    let err = store.create(&sample_record("uid-b", 3)).await.unwrap_err();
    assert!(err.to_string().contains("scheduled for deletion"), "{err}");
    assert!(!store.delete("uid-b", None).await.unwrap());

    // A store delete removes the secret for good: the uid is free at once.
    console_edit(&raw, "kms/prod/uid-a", value.secret_string().unwrap()).await;
    assert_eq!(store.get("uid-a").await.unwrap().unwrap().version, 2);
    assert!(store.delete("uid-a", Some(2)).await.unwrap());
    let gone = raw.describe_secret().secret_id("kms/prod/uid-a").send().await;
    assert!(gone.is_err(), "the secret is still there after a forced delete");
    store.create(&record).await.unwrap();
}

/// What the console does when a customer edits a secret's value: a new
/// version that becomes `AWSCURRENT`. Done in two steps, because moto's
/// `PutSecretValue` with `AWSCURRENT` relabels its stale default version
/// after a stage move (the quirk) and would leave `AWSCURRENT` on two versions.
async fn console_edit(raw: &sm::Client, name: &str, text: &str) {
    let put = raw
        .put_secret_value()
        .secret_id(name)
        .secret_string(text)
        .version_stages("CONSOLE_EDIT")
        .send()
        .await
        .unwrap();
    let described = raw.describe_secret().secret_id(name).send().await.unwrap();
    let current = described
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
        .unwrap();
    raw.update_secret_version_stage()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(put.version_id().unwrap())
        .remove_from_version_id(current)
        .send()
        .await
        .unwrap();
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_never_answers_fails_at_the_deadline() {
    let Some(moto) = Moto::start() else { return };
    // Accepts connections and never answers on them.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let mut slow = config(&moto, &format!("http://{addr}"), "deadline");
    slow.timeout = Duration::from_secs(1);
    let store = SecretsManagerStore::open(&slow).unwrap();
    let within_deadline = |what: &str, err: StoreError, took: Duration| {
        assert!(matches!(err, StoreError::Timeout(_)), "{what}: {err}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "{what}: the deadline is 1 s; the call took {took:?}"
        );
    };
    let started = Instant::now();
    let err = store.get("uid-a").await.unwrap_err();
    within_deadline("get", err, started.elapsed());
    let started = Instant::now();
    let err = store.create(&sample_record("uid-a", 1)).await.unwrap_err();
    within_deadline("create", err, started.elapsed());
    let started = Instant::now();
    let err = store.update(&sample_record("uid-a", 1), 1).await.unwrap_err();
    within_deadline("update", err, started.elapsed());
    let started = Instant::now();
    let err = store.health().await.unwrap_err();
    within_deadline("health", err, started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_honouring_retry_after_until_the_deadline() {
    let Some(moto) = Moto::start() else { return };
    let proxy = FaultProxy::start_for_url(&moto.url());
    let store = store(&moto, &proxy.url(), "throttled");
    store.create(&sample_record("uid-a", 1)).await.unwrap();

    // Two 429s, each asking for a second: the read succeeds after both waits.
    proxy.answer_next(2, 429, Some(1));
    let started = Instant::now();
    let got = store.get("uid-a").await.unwrap().unwrap();
    assert_eq!(got.version, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(proxy.pending(), 0);

    // A 503 on a create: retried (after reading that it did not land).
    proxy.answer_next(1, 503, Some(1));
    store.create(&sample_record("uid-b", 2)).await.unwrap();
    assert_eq!(
        store.get("uid-b").await.unwrap().unwrap().attributes,
        2u32.to_be_bytes()
    );

    // A wait beyond the deadline is not waited: Unavailable with the hint, at once.
    proxy.answer_next(10, 503, Some(30));
    let started = Instant::now();
    let err = store.get("uid-a").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)), "{err}");
    assert!(err.is_transient(), "{err}");
    proxy.pass();

    // Recovery without reopening.
    assert_eq!(store.get("uid-a").await.unwrap().unwrap().version, 1);
}

/// Runs `op` and injects `fault` on its `k`-th request (1-based): requests
/// are slowed by the proxy so that the fault is queued after request `k - 1`
/// is read and before request `k` is sent.
async fn with_fault_on_request<T>(
    proxy: &Arc<FaultProxy>,
    k: usize,
    fault: Fault,
    op: impl std::future::Future<Output = T>,
) -> T {
    proxy.clear_seen();
    proxy.delay(Duration::from_millis(150));
    let watcher = {
        let proxy = Arc::clone(proxy);
        tokio::spawn(async move {
            let started = Instant::now();
            while proxy.seen().len() < k - 1 {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "request {k} never came"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            proxy.fault_next(1, fault);
        })
    };
    let outcome = op.await;
    watcher.await.unwrap();
    proxy.pass();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_whose_answer_is_lost_are_reconciled_not_repeated_blindly() {
    let Some(moto) = Moto::start() else { return };
    let proxy = Arc::new(FaultProxy::start_for_url(&moto.url()));
    let store = store(&moto, &proxy.url(), "reset");
    let outcomes =
        |proxy: &FaultProxy| -> Vec<String> { proxy.seen().into_iter().map(|s| s.outcome).collect() };

    // CreateSecret processed, its answer lost: a read finds our record.
    let record = sample_record("uid-a", 1);
    with_fault_on_request(&proxy, 1, Fault::ResetAfterForward, store.create(&record))
        .await
        .unwrap();
    let seen = outcomes(&proxy);
    assert_eq!(seen[0], "reset after forward", "{seen:?}");
    assert_eq!(seen.len(), 2, "create, then one read to reconcile: {seen:?}");
    assert_eq!(store.get("uid-a").await.unwrap().unwrap().version, 1);

    // An update is GetSecretValue, PutSecretValue, UpdateSecretVersionStage.
    // PutSecretValue's answer lost: sent again with the same token.
    let mut next = record.clone();
    next.state = 2;
    let version = with_fault_on_request(&proxy, 2, Fault::ResetAfterForward, store.update(&next, 1))
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(outcomes(&proxy)[1], "reset after forward");
    // The stage move processed, its answer lost: a read shows it was ours.
    next.state = 3;
    let version = with_fault_on_request(&proxy, 3, Fault::ResetAfterForward, store.update(&next, 2))
        .await
        .unwrap();
    assert_eq!(version, 3);
    let seen = outcomes(&proxy);
    assert_eq!(seen[2], "reset after forward", "{seen:?}");
    assert_eq!(seen.len(), 4, "get, put, move, one read to reconcile: {seen:?}");
    let got = store.get("uid-a").await.unwrap().unwrap();
    assert_eq!((got.version, got.state), (3, 3));
    // The stage move reset before it was forwarded: moved again, once.
    next.state = 4;
    let version = with_fault_on_request(&proxy, 3, Fault::ResetBeforeForward, store.update(&next, 3))
        .await
        .unwrap();
    assert_eq!(version, 4);
    let got = store.get("uid-a").await.unwrap().unwrap();
    assert_eq!((got.version, got.state), (4, 4));
    // Nothing was duplicated: one secret.
    let raw = raw_client(&moto.url());
    assert_eq!(raw.list_secrets().send().await.unwrap().secret_list().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_updating_one_record_have_exactly_one_winner() {
    let Some(moto) = Moto::start() else { return };
    // Two stores = two keyward nodes, each with its own client and connections.
    let a = store(&moto, &moto.url(), "race");
    let b = store(&moto, &moto.url(), "race");
    a.create(&sample_record("uid-a", 1)).await.unwrap();
    for round in 0..10u32 {
        let version = b.get("uid-a").await.unwrap().unwrap().version;
        let mut mine = sample_record("uid-a", 1);
        mine.state = 100 + round;
        let mut theirs = mine.clone();
        theirs.state = 200 + round;
        let (x, y) = tokio::join!(a.update(&mine, version), b.update(&theirs, version));
        let winner = match (x, y) {
            (Ok(v), Err(StoreError::Conflict(Conflict::Version))) => (v, mine.state),
            (Err(StoreError::Conflict(Conflict::Version)), Ok(v)) => (v, theirs.state),
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        assert_eq!(winner.0, version + 1);
        for node in [&a, &b] {
            let got = node.get("uid-a").await.unwrap().unwrap();
            assert_eq!((got.version, got.state), (version + 1, winner.1), "round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_is_an_auth_error() {
    // moto checks signatures once this many requests have been served: the
    // three that make the IAM user, its access key and its policy.
    let Some(moto) = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]) else {
        return;
    };
    let setup = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="keyward")
key = iam.create_access_key(UserName="keyward")["AccessKey"]
iam.put_user_policy(UserName="keyward", PolicyName="keyward-store", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}))
print(key["AccessKeyId"])
print(key["SecretAccessKey"])
"#;
    let out = std::process::Command::new(moto.python())
        .args(["-c", setup, &moto.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let (akid, secret) = (lines.next().unwrap().to_owned(), lines.next().unwrap().to_owned());

    let mut good = config(&moto, &moto.url(), "auth");
    good.access_key_id_file = moto.secret_file("good-akid", &akid);
    good.secret_access_key_file = moto.secret_file("good-secret", &secret);
    let store = SecretsManagerStore::open(&good).unwrap();
    store.health().await.unwrap();
    store.create(&sample_record("uid-a", 1)).await.unwrap();
    assert!(store.get("uid-a").await.unwrap().is_some());

    let wrong_secret = format!("{}x", &secret[..secret.len() - 1]);
    let mut bad = good.clone();
    bad.secret_access_key_file = moto.secret_file("bad-secret", &wrong_secret);
    let store = SecretsManagerStore::open(&bad).unwrap();
    for (what, outcome) in [
        ("health", store.health().await),
        ("get", store.get("uid-a").await.map(|_| ())),
        ("create", store.create(&sample_record("uid-b", 2)).await),
        (
            "update",
            store.update(&sample_record("uid-a", 3), 1).await.map(|_| ()),
        ),
    ] {
        let err = outcome.unwrap_err();
        assert!(matches!(err, StoreError::Auth(_)), "{what}: {err}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(&secret) && !shown.contains(&wrong_secret),
            "{shown}"
        );
    }
    let mut unknown = good.clone();
    unknown.access_key_id_file = moto.secret_file("unknown-akid", "AKIAUNKNOWNKEY000000");
    let store = SecretsManagerStore::open(&unknown).unwrap();
    let err = store.health().await.unwrap_err();
    assert!(matches!(err, StoreError::Auth(_)), "{err}");
}

/// Replaces the `[store]` section of a dev-env keyward.toml with one on moto.
fn with_secretsmanager_store(text: &mut String, url: &str, akid: &std::path::Path, secret: &std::path::Path) {
    let start = text.find("[store]").unwrap();
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 2 + i);
    let section = format!(
        "[store]\nkind = \"secretsmanager\"\nregion = \"us-east-1\"\nendpoint = \"{url}\"\nprefix = \"serve\"\n\
         access_key_id_file = \"{}\"\nsecret_access_key_file = \"{}\"\ntimeout = 3\n\n[cluster]\nindex = \"index.db\"\n\n",
        akid.display(),
        secret.display()
    );
    text.replace_range(start..end, &section);
}

#[test]
fn keyward_serves_create_and_get_from_secrets_manager() {
    let Some(moto) = Moto::start() else { return };
    let akid = moto.secret_file("serve-akid", "AKIAKEYWARDSERVE");
    let secret = moto.secret_file("serve-secret", "serve-secret-key");
    let server =
        common::TestServer::start_with(|text| with_secretsmanager_store(text, &moto.url(), &akid, &secret));
    let rt = common::admin::runtime();
    let uid = rt.block_on(async {
        let mut client = server.client().await;
        let uid = common::load::create(&mut client).await;
        let key = common::load::get(&mut client, &uid).await;
        assert_eq!(key.len(), 32);
        client.close().await;
        uid
    });
    // The record is a secret under the configured prefix, at AWSCURRENT.
    let raw = raw_client(&moto.url());
    let value = rt
        .block_on(
            raw.get_secret_value()
                .secret_id(format!("serve/{uid}"))
                .version_stage("AWSCURRENT")
                .send(),
        )
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(json["uid"], uid.as_str());

    // check-config reaches the store, and refuses a key file others can read.
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
    assert!(check(true).contains("secretsmanager, usable"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let shown = check(false);
    assert!(
        shown.contains("world-readable") && !shown.contains("serve-secret-key"),
        "{shown}"
    );
}
