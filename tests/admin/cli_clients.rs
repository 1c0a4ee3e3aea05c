//! `keyward clients`, `server-cert` and `check-config` end to end: a real server over
//! real mutual TLS, changed only through the CLI, never restarted or signalled.
//!
//! vCenter's four trust methods (its root CA, its own self-signed CA-flagged
//! certificate pinned, a certificate + key issued by keyward, its CSR signed by
//! keyward) each let a client run Discover Versions + Create; `clients remove` refuses
//! the next handshake within seconds; `clients list` shows last seen; `server-cert
//! renew` changes the served certificate while an open connection keeps working;
//! `check-config` passes on the dev environment and names each broken variant; bad
//! input is one error line, a non-zero exit and no change on disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use common::kmip_client::{Client, ClientTls, empty_payload};
use keyward::kmip::attribute::{Attribute, TemplateAttribute, attr};
use keyward::kmip::payload::Payload;
use keyward::kmip::payload::create;
use keyward::kmip::{ObjectType, Operation, ResultStatus};
use keyward::pki::{CertificateAuthority, Fingerprint, KeyKind, write_private_pem, write_public_pem};
use keyward::secret::SecretString;
use keyward::ttlv::Value;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// How long a change may take to reach the server: two watch intervals and slack.
const APPLY_WITHIN: Duration = Duration::from_secs(8);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `keyward ARGS --config <env>` and returns (success, stdout, stderr).
fn kw(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let config = server.config();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    let out = server.keyward(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kw_ok(server: &TestServer, args: &[&str]) -> String {
    let (ok, stdout, stderr) = kw(server, args);
    assert!(ok, "keyward {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Connects with `cert`/`key`, runs Discover Versions and a vCenter-style Create.
async fn discover_and_create(server: &TestServer, cert: &Path, key: &Path) -> Result<String, String> {
    let tls = ClientTls::from_pem_files(&server.path("pki/ca.pem"), cert, key).map_err(|e| e.to_string())?;
    let mut client = Client::connect(server.addr, &tls)
        .await
        .map_err(|e| e.to_string())?;
    let uid = run_discover_and_create(&mut client).await?;
    client.close().await;
    Ok(uid)
}

async fn run_discover_and_create(client: &mut Client) -> Result<String, String> {
    let discover = client
        .call(Operation::DISCOVER_VERSIONS, empty_payload())
        .await
        .map_err(|e| e.to_string())?;
    if discover.result_status != ResultStatus::SUCCESS {
        return Err(format!("Discover Versions: {discover:?}"));
    }
    let request = create::Request {
        object_type: ObjectType::SYMMETRIC_KEY,
        template_attribute: TemplateAttribute::new(vec![
            Attribute::new(attr::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(3)),
            Attribute::new(attr::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(12)),
            Attribute::new(attr::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
        ]),
        extra: vec![],
    };
    let created = client
        .call(Operation::CREATE, request.to_payload())
        .await
        .map_err(|e| e.to_string())?;
    if created.result_status != ResultStatus::SUCCESS {
        return Err(format!("Create: {created:?}"));
    }
    let response = create::Response::from_payload(created.payload.as_ref().ok_or("no payload")?)
        .map_err(|e| e.to_string())?;
    Ok(response.unique_identifier)
}

/// Retries until the client is accepted (or refused, per `want_ok`); returns how long
/// it took. Trust changes apply on the server's next look at the clients folder.
async fn wait_until(server: &TestServer, cert: &Path, key: &Path, want_ok: bool) -> Duration {
    let start = Instant::now();
    loop {
        let result = discover_and_create(server, cert, key).await;
        if result.is_ok() == want_ok {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < APPLY_WITHIN,
            "client {} still {} after {APPLY_WITHIN:?}: {result:?}\nserver log:\n{}",
            cert.display(),
            if want_ok { "refused" } else { "accepted" },
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// vCenter's own client certificate: self-signed, `basicConstraints CA:TRUE`, RSA.
fn vcenter_self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.not_before = now() - Duration::from_secs(86_400);
    params.not_after = now() + Duration::from_secs(86_400 * 365);
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    write_public_pem(&cert_path, &cert.pem()).unwrap();
    write_private_pem(&key_path, &SecretString::new(key.serialize_pem())).unwrap();
    (cert_path, key_path)
}

/// A VMCA-like root and a client certificate it issued.
fn vmca_and_client(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let vmca = CertificateAuthority::generate("VMCA root", 365).unwrap();
    let leaf = vmca.issue_client("vpxd-extension", KeyKind::Rsa2048, 30).unwrap();
    let paths = (dir.join("vmca.pem"), dir.join("vpxd.pem"), dir.join("vpxd.key"));
    write_public_pem(&paths.0, vmca.cert_pem()).unwrap();
    write_public_pem(&paths.1, &leaf.cert_pem).unwrap();
    write_private_pem(&paths.2, &leaf.key_pem).unwrap();
    paths
}

/// vCenter's CSR method: it keeps its key and sends a CSR.
fn vcenter_csr(dir: &Path) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let mut params = CertificateParams::new(vec!["vcenter.example.com".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "vcenter.example.com");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let (csr_path, key_path) = (dir.join("vcenter.csr"), dir.join("vcenter-csr.key"));
    std::fs::write(&csr_path, csr).unwrap();
    write_private_pem(&key_path, &SecretString::new(key.serialize_pem())).unwrap();
    (csr_path, key_path)
}

fn list_json(server: &TestServer) -> Vec<serde_json::Value> {
    serde_json::from_str(&kw_ok(server, &["clients", "list", "--json"])).unwrap()
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {rows:?}"))
}

#[test]
fn four_trust_methods_then_removal_without_restart() {
    let server = TestServer::start();
    let work = server.dir.path().join("vcenter");
    std::fs::create_dir(&work).unwrap();
    let rt = runtime();

    // 1. vCenter's root CA (VMCA): refused before, accepted after `clients add --ca`.
    let (vmca, vpxd_cert, vpxd_key) = vmca_and_client(&work);
    rt.block_on(async {
        assert!(discover_and_create(&server, &vpxd_cert, &vpxd_key).await.is_err());
    });
    kw_ok(
        &server,
        &[
            "clients",
            "add",
            "vc-vmca",
            "--ca",
            vmca.to_str().unwrap(),
            "--group",
            "site-a",
        ],
    );

    // 2. vCenter's own self-signed, CA-flagged certificate, pinned.
    let (self_cert, self_key) = vcenter_self_signed(&work, "vcenter-self");
    kw_ok(
        &server,
        &[
            "clients",
            "add",
            "vc-pinned",
            "--cert",
            self_cert.to_str().unwrap(),
        ],
    );

    // 3. Certificate + key issued by keyward.
    let out = work.join("issued");
    std::fs::create_dir(&out).unwrap();
    kw_ok(
        &server,
        &[
            "clients",
            "issue",
            "vc-issued",
            "--group",
            "site-a",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let (issued_cert, issued_key) = (out.join("vc-issued.pem"), out.join("vc-issued.key"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&issued_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "issued private key must be owner-only");

    // 4. vCenter's CSR, signed by keyward.
    let (csr, csr_key) = vcenter_csr(&work);
    let signed = work.join("vcenter-signed.pem");
    kw_ok(
        &server,
        &[
            "clients",
            "sign-csr",
            "vc-csr",
            csr.to_str().unwrap(),
            "--out",
            signed.to_str().unwrap(),
        ],
    );

    let methods: [(&str, &PathBuf, &PathBuf); 4] = [
        ("vc-vmca", &vpxd_cert, &vpxd_key),
        ("vc-pinned", &self_cert, &self_key),
        ("vc-issued", &issued_cert, &issued_key),
        ("vc-csr", &signed, &csr_key),
    ];
    rt.block_on(async {
        for (name, cert, key) in &methods {
            let took = wait_until(&server, cert, key, true).await;
            println!("{name}: accepted after {took:?}");
            discover_and_create(&server, cert, key)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    });

    // `clients list` names all of them with their kind, group and (soon) last seen.
    let start = Instant::now();
    let rows = loop {
        let rows = list_json(&server);
        if methods
            .iter()
            .all(|(name, ..)| !row(&rows, name)["last_seen"].is_null())
        {
            break rows;
        }
        assert!(
            start.elapsed() < APPLY_WITHIN,
            "last seen not recorded: {rows:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(row(&rows, "vc-vmca")["kind"], "ca");
    assert_eq!(row(&rows, "vc-vmca")["group"], "site-a");
    assert_eq!(row(&rows, "vc-pinned")["kind"], "pin");
    assert_eq!(row(&rows, "vc-pinned")["group"], "default");
    assert_eq!(row(&rows, "vc-pinned")["subject"], "CN=vcenter-self");
    assert_eq!(row(&rows, "vc-issued")["group"], "site-a");
    assert_eq!(row(&rows, "vc-csr")["subject"], "CN=vcenter.example.com");
    let vpxd_fp = Fingerprint::of_der(&CertificateDer::from_pem_file(&vpxd_cert).unwrap()).to_colon_hex();
    assert_eq!(row(&rows, "vc-vmca")["last_seen_fingerprint"], vpxd_fp.as_str());
    let table = kw_ok(&server, &["clients", "list"]);
    assert!(table.lines().next().unwrap().contains("LAST SEEN"), "{table}");
    assert!(table.contains("vc-csr") && table.contains("site-a"), "{table}");

    // Removal: each client's next handshake is refused within seconds, no SIGHUP.
    rt.block_on(async {
        for (name, cert, key) in &methods {
            let stdout = kw_ok(&server, &["clients", "remove", name]);
            assert!(stdout.contains("removed"), "{stdout}");
            let took = wait_until(&server, cert, key, false).await;
            println!("{name}: refused {took:?} after removal");
            assert!(took < APPLY_WITHIN);
        }
        // The development client, untouched, still works.
        let (cert, key, _) = server.client_files();
        discover_and_create(&server, &cert, &key).await.unwrap();
    });
    let rows = list_json(&server);
    assert_eq!(rows.len(), 1, "only kmip-client left: {rows:#?}");
    assert!(!server.log().contains("trust reload failed"), "{}", server.log());
}

/// Connects with the development client and returns the server certificate's SHA-256.
async fn served_fingerprint(server: &TestServer) -> Fingerprint {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(server.path("pki/ca.pem")).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_file(server.path("pki/client.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(server.path("pki/client.key")).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    Fingerprint::of_der(&der)
}

#[test]
fn server_cert_renew_is_served_without_restart() {
    let server = TestServer::start();
    let rt = runtime();
    let show = kw_ok(&server, &["server-cert", "show"]);
    assert!(show.contains("subject:     CN=localhost"), "{show}");
    assert!(show.contains("issuer:      CN=keyward development CA"), "{show}");
    let old_line = show.lines().find(|l| l.starts_with("SHA-256:")).unwrap();
    let old: Fingerprint = old_line.trim_start_matches("SHA-256:").trim().parse().unwrap();

    rt.block_on(async {
        assert_eq!(served_fingerprint(&server).await, old);
        // A connection opened before the renewal...
        let (cert, key, ca) = server.client_files();
        let tls = ClientTls::from_pem_files(&ca, &cert, &key).unwrap();
        let mut open = Client::connect(server.addr, &tls).await.unwrap();
        run_discover_and_create(&mut open).await.unwrap();

        let renewed = kw_ok(&server, &["server-cert", "renew", "--days", "30"]);
        let new: Fingerprint = renewed
            .lines()
            .find(|l| l.starts_with("new SHA-256:"))
            .unwrap()
            .trim_start_matches("new SHA-256:")
            .trim()
            .parse()
            .unwrap();
        assert_ne!(new, old);
        let show = kw_ok(&server, &["server-cert", "show"]);
        assert!(show.contains(&new.to_colon_hex()), "{show}");
        assert!(
            show.contains("names:       localhost, 127.0.0.1, ::1"),
            "names kept: {show}"
        );

        let start = Instant::now();
        while served_fingerprint(&server).await != new {
            assert!(
                start.elapsed() < APPLY_WITHIN,
                "old certificate still served:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("new certificate served after {:?}", start.elapsed());
        // ...keeps working, and new connections work with the new certificate.
        run_discover_and_create(&mut open).await.unwrap();
        open.close().await;
        discover_and_create(&server, &cert, &key).await.unwrap();
    });
    let check = kw(&server, &["check-config"]);
    assert!(check.0, "check-config after renew:\n{}\n{}", check.1, check.2);
}

/// A change to the text of the dev configuration.
type ConfigEdit = Box<dyn Fn(String) -> String>;

/// Writes a variant of the dev config beside it (so relative paths still resolve).
fn variant(server: &TestServer, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(server.config()).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "variant {name} changed nothing");
    let path = server.path(&format!("{name}.toml"));
    std::fs::write(&path, edited).unwrap();
    path
}

fn check_config(server: &TestServer, config: &Path) -> (bool, String, String) {
    let out = server.keyward(&["check-config", "--config", config.to_str().unwrap()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_passes_the_dev_env_and_names_each_problem() {
    let server = TestServer::start();
    let (ok, stdout, stderr) = check_config(&server, &server.config());
    assert!(ok, "{stdout}\n{stderr}");
    for expected in [
        "ok    tls.cert",
        "ok    tls.key",
        "ok    tls.clients_dir",
        "ok    hsm:",
        "ok    hsm root key",
        "ok    hsm seal",
        "ok    store",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");

    std::fs::write(
        server.path("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(server.path("junk.db"), vec![0x42u8; 4096]).unwrap();
    let bad_pin = server.path("softhsm/wrong.pin");
    std::fs::write(&bad_pin, "000000\n").unwrap();
    std::fs::set_permissions(&bad_pin, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::create_dir(server.path("clients-bad")).unwrap();
    std::fs::write(
        server.path("clients-bad/vc.toml"),
        "name = \"vc\"\nkind = \"sometimes\"\n",
    )
    .unwrap();

    let cases: Vec<(&str, ConfigEdit, &str)> = vec![
        (
            "unknown-key",
            Box::new(|t| t.replace("[store]", "[store]\ncolour = 1")),
            "FAIL  config: ",
        ),
        (
            "missing-cert",
            Box::new(|t| t.replace("pki/server.pem", "pki/nope.pem")),
            "FAIL  tls.cert: ",
        ),
        (
            "wrong-key",
            Box::new(|t| t.replace("key = \"pki/server.key\"", "key = \"pki/client.key\"")),
            "FAIL  tls.key: ",
        ),
        (
            "junk-client-ca",
            Box::new(|t| t.replace("[tls]", "[tls]\nclient_ca = [\"junk.pem\"]")),
            "FAIL  tls.client_ca: ",
        ),
        (
            "bad-client-entry",
            Box::new(|t| t.replace("clients_dir = \"clients\"", "clients_dir = \"clients-bad\"")),
            "FAIL  tls.clients_dir: ",
        ),
        (
            "wrong-ca-key",
            Box::new(|t| {
                t.replace(
                    "issuing_ca_key = \"pki/ca.key\"",
                    "issuing_ca_key = \"pki/server.key\"",
                )
            }),
            "FAIL  tls.issuing_ca: ",
        ),
        (
            "wrong-pin",
            Box::new(|t| t.replace("softhsm/user.pin", "softhsm/wrong.pin")),
            "FAIL  hsm: ",
        ),
        (
            "missing-token",
            Box::new(|t| t.replace("token_label = \"keyward\"", "token_label = \"no-such-token\"")),
            "FAIL  hsm: ",
        ),
        (
            "missing-module",
            Box::new(|t| t.replace("module = \"", "module = \"/nonexistent")),
            "FAIL  hsm.module: ",
        ),
        (
            "junk-store",
            Box::new(|t| t.replace("keyward.db", "junk.db")),
            "FAIL  store: ",
        ),
    ];
    for (name, edit, expected) in &cases {
        let path = variant(&server, name, edit);
        let (ok, stdout, stderr) = check_config(&server, &path);
        println!("--- {name}\n{stdout}{stderr}");
        assert!(!ok, "{name}: check-config passed:\n{stdout}");
        let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
        assert_eq!(fails.len(), 1, "{name}: one problem, one line: {fails:?}");
        assert!(fails[0].starts_with(expected), "{name}: {fails:?}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(!stdout.contains("000000"), "{name}: the PIN leaked");
    }
}

/// Every file under the folders the CLI writes, with its bytes.
fn snapshot(dirs: &[PathBuf]) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn bad_input_is_one_line_nonzero_and_changes_nothing() {
    let server = TestServer::start();
    let work = server.dir.path().join("input");
    std::fs::create_dir(&work).unwrap();
    let p = |name: &str| work.join(name).to_str().unwrap().to_owned();
    std::fs::write(
        work.join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(work.join("not-pem.pem"), "hello\n").unwrap();
    std::fs::write(
        work.join("junk.csr"),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    let (self_cert, _) = vcenter_self_signed(&work, "leaf");
    let leaf_not_ca = {
        let ca = CertificateAuthority::generate("other", 30).unwrap();
        let leaf = ca.issue_client("leaf", KeyKind::EcdsaP256, 30).unwrap();
        write_public_pem(&work.join("leaf-not-ca.pem"), &leaf.cert_pem).unwrap();
        p("leaf-not-ca.pem")
    };
    let (csr, _) = vcenter_csr(&work);
    let dev_client = server.path("pki/client.pem").to_str().unwrap().to_owned();
    let no_ca = variant(&server, "no-issuing-ca", |t| {
        t.lines()
            .filter(|l| !l.starts_with("issuing_ca"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let no_ca = no_ca.to_str().unwrap().to_owned();
    let watched = [
        server.path("clients"),
        server.path("pki"),
        work.clone(),
        server.env_dir(),
    ];
    let before = snapshot(&watched);

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "clients".into(),
                "add".into(),
                "x".into(),
                "--ca".into(),
                p("junk.pem"),
            ],
            "junk.pem",
        ),
        (
            vec![
                "clients".into(),
                "add".into(),
                "x".into(),
                "--ca".into(),
                p("not-pem.pem"),
            ],
            "no CERTIFICATE",
        ),
        (
            vec![
                "clients".into(),
                "add".into(),
                "x".into(),
                "--cert".into(),
                p("missing.pem"),
            ],
            "missing.pem",
        ),
        (
            vec![
                "clients".into(),
                "add".into(),
                "x".into(),
                "--ca".into(),
                leaf_not_ca,
            ],
            "not a CA",
        ),
        (
            vec![
                "clients".into(),
                "add".into(),
                "kmip-client".into(),
                "--cert".into(),
                self_cert.to_str().unwrap().into(),
            ],
            "exists",
        ),
        (
            vec![
                "clients".into(),
                "add".into(),
                "twin".into(),
                "--cert".into(),
                dev_client,
            ],
            "already trusted as client \"kmip-client\"",
        ),
        (
            vec![
                "clients".into(),
                "add".into(),
                "../evil".into(),
                "--fingerprint".into(),
                "ab".repeat(32),
            ],
            "client name",
        ),
        (
            vec![
                "clients".into(),
                "add".into(),
                "x".into(),
                "--fingerprint".into(),
                "abcd".into(),
            ],
            "64 hex digits",
        ),
        (
            vec![
                "clients".into(),
                "add".into(),
                "x".into(),
                "--fingerprint".into(),
                "ab".repeat(32),
                "--group".into(),
                "a/b".into(),
            ],
            "group",
        ),
        (
            vec!["clients".into(), "remove".into(), "nobody".into()],
            "no client named",
        ),
        (
            vec!["clients".into(), "sign-csr".into(), "x".into(), p("junk.csr")],
            "junk.csr",
        ),
        (
            vec!["clients".into(), "sign-csr".into(), "x".into(), p("missing.csr")],
            "missing.csr",
        ),
        (
            vec![
                "clients".into(),
                "issue".into(),
                "kmip-client".into(),
                "--out".into(),
                p(""),
            ],
            "exists",
        ),
        (
            vec![
                "clients".into(),
                "issue".into(),
                "x".into(),
                "--out".into(),
                p("no-such-dir"),
            ],
            "not a folder",
        ),
        (
            vec![
                "clients".into(),
                "issue".into(),
                "leaf".into(),
                "--out".into(),
                p(""),
            ],
            "exists",
        ),
        (
            vec![
                "clients".into(),
                "issue".into(),
                "y".into(),
                "--config".into(),
                no_ca.clone(),
            ],
            "no issuing CA",
        ),
        (
            vec![
                "clients".into(),
                "sign-csr".into(),
                "y".into(),
                csr.to_str().unwrap().into(),
                "--config".into(),
                no_ca.clone(),
            ],
            "no issuing CA",
        ),
        (
            vec![
                "server-cert".into(),
                "renew".into(),
                "--config".into(),
                no_ca.clone(),
            ],
            "no issuing CA",
        ),
        (
            vec!["server-cert".into(), "renew".into(), "--days".into(), "0".into()],
            "validity",
        ),
        (
            vec![
                "clients".into(),
                "list".into(),
                "--config".into(),
                p("missing.toml"),
            ],
            "missing.toml",
        ),
    ];
    for (args, expected) in &cases {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        let config = server.config();
        if !args.contains(&"--config") {
            args.extend(["--config", config.to_str().unwrap()]);
        }
        let out = server.keyward(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("keyward: error: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
        assert_eq!(snapshot(&watched), before, "{args:?} changed files");
    }
}
