use std::path::Path;
use std::time::Duration;

use super::clients::{self, ClientEntry, ClientKind};
use super::*;

const MINIMAL: &str = r#"
[tls]
cert = "server.pem"
key = "server.key"

[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "keyward"
pin_file = "hsm.pin"

[store]
path = "data/keyward.db"
"#;

fn with(extra_server: &str, extra_tls: &str) -> String {
    MINIMAL.replace(
        "[tls]\n",
        &format!("[server]\n{extra_server}\n[tls]\n{extra_tls}\n"),
    )
}

fn invalid_key(text: &str) -> String {
    match Config::from_toml(text, Path::new("/etc/keyward")) {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn minimal_config_gets_safe_defaults() {
    let c = Config::from_toml(MINIMAL, Path::new("/etc/keyward")).unwrap();
    assert_eq!(c.server.listen, vec!["127.0.0.1:5696".parse().unwrap()]);
    assert_eq!(c.server.max_connections, 1024);
    assert_eq!(c.server.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.server.max_message_bytes, crate::limits::MAX_MESSAGE_BYTES);
    assert_eq!(c.tls.tls_versions, vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    assert_eq!(c.store.kind(), "sqlite");
    assert_eq!(c.metrics, MetricsConfig::default(), "metrics are off by default");
    assert_eq!(c.hsm.pin_credential, "keyward-hsm-pin");
    assert_eq!(c.audit.path, None);
    assert_eq!(c.process, ProcessConfig::default());
    assert!(!c.process.allow_root);
    assert!(c.process.lock_memory);
}

#[test]
fn process_section_sets_the_hardening_switches() {
    let text = format!("{MINIMAL}\n[process]\nallow_root = true\nlock_memory = false\n");
    let c = Config::from_toml(&text, Path::new("/etc/keyward")).unwrap();
    assert_eq!(
        c.process,
        ProcessConfig {
            allow_root: true,
            lock_memory: false
        }
    );
    let typo = format!("{MINIMAL}\n[process]\nallow_rot = true\n");
    assert!(Config::from_toml(&typo, Path::new("/etc/keyward")).is_err());
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyward.toml");
    let text = with(
        "",
        "client_ca = [\"ca/vmca.pem\", \"/abs/ca.pem\"]\nclients_dir = \"clients\"",
    );
    std::fs::write(&file, text).unwrap();
    // Load through a relative-looking path from elsewhere: results must not depend on cwd.
    let c = Config::load(&file).unwrap();
    assert_eq!(c.tls.cert, dir.path().join("server.pem"));
    assert_eq!(c.tls.key, dir.path().join("server.key"));
    assert_eq!(
        c.tls.client_ca,
        vec![dir.path().join("ca/vmca.pem"), "/abs/ca.pem".into()]
    );
    assert_eq!(c.tls.clients_dir, Some(dir.path().join("clients")));
    assert_eq!(c.hsm.pin_file, Some(dir.path().join("hsm.pin")));
    assert_eq!(c.hsm.module, Path::new("/usr/lib/softhsm/libsofthsm2.so"));
    assert_eq!(
        c.store,
        StoreConfig::Sqlite {
            path: dir.path().join("data/keyward.db")
        }
    );
}

#[test]
fn store_kind_sqlite_and_metrics_listen_parse() {
    let text = MINIMAL.replace("path = \"data", "kind = \"sqlite\"\npath = \"data")
        + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let c = Config::from_toml(&text, Path::new("/etc/keyward")).unwrap();
    assert_eq!(
        c.store,
        StoreConfig::Sqlite {
            path: "/etc/keyward/data/keyward.db".into()
        }
    );
    assert_eq!(c.metrics.listen, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(
        invalid_key(&(MINIMAL.to_owned() + "\n[metrics]\nlisten = \"localhost\"\n")),
        "metrics.listen"
    );
    for unknown in ["[metrics]\npath = \"/x\"\n", "[store]\n"] {
        let text = if unknown.starts_with("[store]") {
            MINIMAL.replace("path = \"data", "url = \"x\"\npath = \"data")
        } else {
            MINIMAL.to_owned() + "\n" + unknown
        };
        assert!(
            Config::from_toml(&text, Path::new("/etc/keyward")).is_err(),
            "{text}"
        );
    }
}

#[test]
fn unknown_key_is_refused_with_line_and_section() {
    let text = with("listn = [\"127.0.0.1:5696\"]", "");
    let err = Config::from_toml(&text, Path::new("/etc/keyward")).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("listn"), "{shown}");
    assert!(shown.contains("in [server]"), "{shown}");
    assert!(!shown.contains('\n'), "{shown}");
    let top = format!("{MINIMAL}\n[extra]\nx = 1\n");
    assert!(
        Config::from_toml(&top, Path::new("/"))
            .unwrap_err()
            .to_string()
            .contains("extra")
    );
}

#[test]
fn a_pin_value_in_the_config_is_refused() {
    let text = MINIMAL.replace("pin_file = \"hsm.pin\"", "pin = \"1234\"");
    let err = Config::from_toml(&text, Path::new("/")).unwrap_err().to_string();
    assert!(err.contains("unknown field `pin`"), "{err}");
    assert!(!err.contains("1234"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    assert_eq!(
        invalid_key(&with("max_connections = 0", "")),
        "server.max_connections"
    );
    assert_eq!(
        invalid_key(&with("handshake_timeout = -1", "")),
        "server.handshake_timeout"
    );
    assert_eq!(
        invalid_key(&with("idle_timeout = 1000000", "")),
        "server.idle_timeout"
    );
    assert_eq!(invalid_key(&with("read_timeout = 0", "")), "server.read_timeout");
    assert_eq!(
        invalid_key(&with("max_message_bytes = 10", "")),
        "server.max_message_bytes"
    );
    assert_eq!(
        invalid_key(&with("max_message_bytes = 1000000000", "")),
        "server.max_message_bytes"
    );
    assert_eq!(invalid_key(&with("listen = []", "")), "server.listen");
    assert_eq!(
        invalid_key(&with("listen = [\"localhost:5696\"]", "")),
        "server.listen"
    );
    assert_eq!(invalid_key(&with("listen = [\"::1:5696\"]", "")), "server.listen");
    assert_eq!(
        invalid_key(&with("", "tls_versions = [\"1.1\"]")),
        "tls.tls_versions"
    );
    assert_eq!(invalid_key(&with("", "tls_versions = []")), "tls.tls_versions");
    assert_eq!(
        invalid_key(&with("", "client_pins = [\"abcd\"]")),
        "tls.client_pins"
    );
    assert_eq!(
        invalid_key(&MINIMAL.replace("path = \"data", "kind = \"mysql\"\npath = \"data")),
        "store.kind"
    );
    assert_eq!(
        invalid_key(&MINIMAL.replace("token_label = \"keyward\"", "token_label = \"\"")),
        "hsm.token_label"
    );
    // The token by an RFC 7512 URI instead of its label: not both, no `slot`
    // beside it, nothing but token selection in it.
    let by_uri = MINIMAL.replace(
        "token_label = \"keyward\"",
        "token_uri = \"pkcs11:token=keyward;serial=7c1d9f0a5be4c2d1;slot-id=2\"",
    );
    let token = Config::from_toml(&by_uri, Path::new("/")).unwrap().hsm.token;
    assert_eq!(
        (token.label.as_deref(), token.serial.as_deref(), token.slot_id),
        (Some("keyward"), Some("7c1d9f0a5be4c2d1"), Some(2))
    );
    let both = MINIMAL.replace(
        "token_label = \"keyward\"",
        "token_label = \"keyward\"\ntoken_uri = \"pkcs11:token=keyward\"",
    );
    assert_eq!(invalid_key(&both), "hsm.token_uri");
    assert_eq!(
        invalid_key(&by_uri.replace("token_uri", "slot = 1\ntoken_uri")),
        "hsm.slot"
    );
    assert_eq!(
        invalid_key(&MINIMAL.replace("token_label = \"keyward\"", "")),
        "hsm.token_label"
    );
    let pin_inline = MINIMAL.replace(
        "token_label = \"keyward\"",
        "token_uri = \"pkcs11:token=keyward?pin-value=123456\"",
    );
    let err = Config::from_toml(&pin_inline, Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hsm.token_uri") && err.contains("pin_file") && !err.contains("123456"),
        "{err}"
    );
    assert_eq!(
        invalid_key(&MINIMAL.replace("pin_file = \"hsm.pin\"", "pin_credential = \"../pin\"")),
        "hsm.pin_credential"
    );
    let err = Config::from_toml(&with("max_connections = 0", ""), Path::new("/")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "server.max_connections: must be between 1 and 100000 (got 0)"
    );
}

#[test]
fn ipv6_listen_and_pins_with_or_without_colons() {
    let fp = "ab".repeat(32);
    let colons = vec!["AB"; 32].join(":");
    let text = with(
        "listen = [\"[::1]:5696\", \"127.0.0.1:15696\"]",
        &format!("client_pins = [\"{fp}\", \"{colons}\"]\ntls_versions = [\"1.3\"]"),
    );
    let c = Config::from_toml(&text, Path::new("/")).unwrap();
    assert_eq!(c.server.listen[0], "[::1]:5696".parse().unwrap());
    assert_eq!(c.tls.client_pins, vec![[0xab; 32]], "duplicates collapse");
    assert_eq!(c.tls.tls_versions, vec![TlsVersion::Tls13]);
}

#[test]
fn pin_prefers_systemd_credential_then_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let c = Config::from_toml(MINIMAL, dir.path()).unwrap();
    let pin_file = dir.path().join("hsm.pin");
    std::fs::write(&pin_file, "1234\n").unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(c.hsm.read_pin_from(Some(&creds)).unwrap().expose(), "1234");
    let cred = creds.join("keyward-hsm-pin");
    std::fs::write(&cred, "5678").unwrap();
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(c.hsm.read_pin_from(Some(&creds)).unwrap().expose(), "5678");

    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = c.hsm.read_pin_from(None).unwrap_err().to_string();
    assert!(err.contains("world-readable"), "{err}");
    assert!(!err.contains("1234"));

    // What is checked is the file opened: a private link to a world-readable
    // PIN is refused, and so is a folder in the PIN file's place.
    std::fs::remove_file(&pin_file).unwrap();
    let shared = dir.path().join("shared.pin");
    std::fs::write(&shared, "4321").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&shared, &pin_file).unwrap();
    let err = c.hsm.read_pin_from(None).unwrap_err().to_string();
    assert!(err.contains("world-readable") && !err.contains("4321"), "{err}");
    std::fs::remove_file(&pin_file).unwrap();
    std::fs::create_dir(&pin_file).unwrap();
    let err = c.hsm.read_pin_from(None).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn client_files_round_trip_and_bad_ones_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let pin = ClientEntry {
        name: "vcenter-prod".into(),
        kind: ClientKind::Pin,
        cert: None,
        fingerprint: Some([0x5a; 32]),
        group: Some("vsphere".into()),
        password: None,
    };
    let ca = ClientEntry {
        name: "vmca".into(),
        kind: ClientKind::Ca,
        cert: Some(dir.path().join("vmca.pem")),
        fingerprint: None,
        group: None,
        password: None,
    };
    clients::write_entry(dir.path(), &pin).unwrap();
    clients::write_entry(dir.path(), &ca).unwrap();
    std::fs::write(dir.path().join("vmca.pem"), "not toml, ignored").unwrap();
    let text = std::fs::read_to_string(dir.path().join("vmca.toml")).unwrap();
    assert!(text.contains("cert = \"vmca.pem\""), "{text}");
    assert_eq!(clients::load_dir(dir.path()).unwrap(), vec![pin.clone(), ca]);

    assert!(clients::remove_entry(dir.path(), "vcenter-prod").unwrap());
    assert!(!clients::remove_entry(dir.path(), "vcenter-prod").unwrap());
    assert!(clients::remove_entry(dir.path(), "../x").is_err());
    assert_eq!(clients::load_dir(&dir.path().join("missing")).unwrap(), vec![]);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\nkind = \"ca\"\n").unwrap();
    let err = clients::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.ends_with("bad.toml: cert: a \"ca\" entry needs the CA bundle path"),
        "{err}"
    );
    std::fs::write(&bad, "name = \"other\"\nkind = \"pin\"\nfingerprint = \"00\"\n").unwrap();
    assert!(
        clients::load_dir(dir.path())
            .unwrap_err()
            .to_string()
            .contains(": name:")
    );
    std::fs::write(&bad, "name = \"bad\"\nkind = \"pin\"\nextra = 1\n").unwrap();
    assert!(
        clients::load_dir(dir.path())
            .unwrap_err()
            .to_string()
            .contains("extra")
    );
}

#[test]
fn client_password_hash_round_trips_and_both_parts_are_required() {
    let dir = tempfile::tempdir().unwrap();
    let hash = crate::password::PasswordHash::new(b"pw-for-vcenter").unwrap();
    let entry = ClientEntry {
        name: "vc".into(),
        kind: ClientKind::Pin,
        cert: None,
        fingerprint: Some([1; 32]),
        group: None,
        password: Some(crate::password::ClientPassword {
            username: "vcenter-admin".into(),
            hash: hash.clone(),
        }),
    };
    let path = clients::write_entry(dir.path(), &entry).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("username = \"vcenter-admin\""), "{text}");
    assert!(text.contains("password_hash = \"pbkdf2-sha256$"), "{text}");
    assert!(!text.contains("pw-for-vcenter"));
    assert_eq!(clients::load_dir(dir.path()).unwrap(), vec![entry]);

    let base = format!(
        "name = \"vc\"\nkind = \"pin\"\nfingerprint = \"{}\"\n",
        "01".repeat(32)
    );
    for (extra, field) in [
        ("username = \"u\"\n".to_owned(), "password_hash"),
        (format!("password_hash = \"{}\"\n", hash.encode()), "username"),
        (
            "username = \"u\"\npassword_hash = \"hunter2\"\n".to_owned(),
            "password_hash",
        ),
        (
            format!("username = \"a b\"\npassword_hash = \"{}\"\n", hash.encode()),
            "username",
        ),
    ] {
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let err = clients::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("vc.toml: {field}:")), "{extra}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[test]
fn issuing_ca_needs_both_files() {
    let both = with(
        "",
        "issuing_ca_cert = \"pki/ca.pem\"\nissuing_ca_key = \"/abs/ca.key\"",
    );
    let c = Config::from_toml(&both, Path::new("/etc/keyward")).unwrap();
    let ca = c.tls.issuing_ca.unwrap();
    assert_eq!(ca.cert, Path::new("/etc/keyward/pki/ca.pem"));
    assert_eq!(ca.key, Path::new("/abs/ca.key"));
    assert_eq!(
        Config::from_toml(MINIMAL, Path::new("/")).unwrap().tls.issuing_ca,
        None
    );
    assert_eq!(
        invalid_key(&with("", "issuing_ca_cert = \"ca.pem\"")),
        "tls.issuing_ca_key"
    );
    assert_eq!(
        invalid_key(&with("", "issuing_ca_key = \"ca.key\"")),
        "tls.issuing_ca_cert"
    );
}

const OPENBAO: &str = r#"
[tls]
cert = "server.pem"
key = "server.key"

[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "keyward"
pin_file = "hsm.pin"

[store]
kind = "openbao"
address = "https://bao.example:8200"
ca_file = "bao-ca.pem"
token_file = "bao.token"

[cluster]
index = "/var/lib/keyward/index.db"
"#;

#[test]
fn store_kind_openbao_parses_with_defaults_and_relative_paths() {
    use crate::store::{OpenBaoAuth, OpenBaoConfig};
    let c = Config::from_toml(OPENBAO, Path::new("/etc/keyward")).unwrap();
    assert_eq!(c.store.kind(), "openbao");
    assert_eq!(c.store.local_file(), None);
    assert_eq!(
        c.store,
        StoreConfig::OpenBao(OpenBaoConfig {
            address: "https://bao.example:8200".into(),
            mount: "secret".into(),
            prefix: "keyward".into(),
            auth: OpenBaoAuth::TokenFile("/etc/keyward/bao.token".into()),
            ca_file: Some("/etc/keyward/bao-ca.pem".into()),
            timeout: Duration::from_secs(5),
        })
    );
    assert_eq!(c.store.location(), "https://bao.example:8200/v1/secret/keyward/");
    let cluster = c.cluster.clone().unwrap();
    assert_eq!(cluster.path, Path::new("/var/lib/keyward/index.db"));
    assert_eq!(cluster.sync_interval, Duration::from_secs(10));
    assert_eq!(cluster.read_grace, Duration::from_secs(300));

    let approle = OPENBAO.replace(
        "token_file = \"bao.token\"",
        "role_id_file = \"role\"\nsecret_id_file = \"/run/secret\"\nmount = \"kv/prod\"\nprefix = \"kmip\"\ntimeout = 2",
    );
    let c = Config::from_toml(&approle, Path::new("/etc/keyward")).unwrap();
    let StoreConfig::OpenBao(bao) = c.store else {
        panic!("not openbao: {:?}", c.store)
    };
    assert_eq!(
        bao.auth,
        OpenBaoAuth::AppRole {
            role_id_file: "/etc/keyward/role".into(),
            secret_id_file: "/run/secret".into(),
            mount: "approle".into(),
        }
    );
    assert_eq!((bao.mount.as_str(), bao.prefix.as_str()), ("kv/prod", "kmip"));
    assert_eq!(bao.timeout, Duration::from_secs(2));
}

#[test]
fn store_kind_openbao_refusals_name_their_key() {
    let with = |from: &str, to: &str| OPENBAO.replace(from, to);
    let cases = [
        // A secret is never inline, and unknown keys are refused.
        (with("token_file = \"bao.token\"", "token = \"s.abc\""), None),
        (with("token_file", "path = \"x\"\ntoken_file"), Some("store.path")),
        (
            with("address = \"https://bao.example:8200\"\n", ""),
            Some("store.address"),
        ),
        (with("token_file = \"bao.token\"", ""), Some("store.token_file")),
        (
            with(
                "token_file = \"bao.token\"",
                "token_file = \"t\"\nrole_id_file = \"r\"",
            ),
            Some("store.token_file"),
        ),
        (
            with("token_file = \"bao.token\"", "role_id_file = \"r\""),
            Some("store.role_id_file"),
        ),
        (
            with("https://bao.example", "http://bao.example"),
            Some("store.address"),
        ),
        (with("ca_file = \"bao-ca.pem\"\n", ""), Some("store.address")),
        (
            with("token_file", "mount = \"../sys\"\ntoken_file"),
            Some("store.mount"),
        ),
        (
            with("token_file", "prefix = \"a//b\"\ntoken_file"),
            Some("store.prefix"),
        ),
        (
            with("token_file", "timeout = 0\ntoken_file"),
            Some("store.timeout"),
        ),
        (with("kind = \"openbao\"", "kind = \"vault\""), Some("store.kind")),
    ];
    for (text, key) in cases {
        match key {
            Some(key) => assert_eq!(invalid_key(&text), key, "{text}"),
            None => {
                let err = Config::from_toml(&text, Path::new("/")).unwrap_err().to_string();
                assert!(
                    err.contains("unknown field `token`") && !err.contains("s.abc"),
                    "{err}"
                );
            }
        }
    }
    // Plain http is fine to a loopback dev server.
    let dev =
        with("https://bao.example:8200", "http://127.0.0.1:8200").replace("ca_file = \"bao-ca.pem\"\n", "");
    Config::from_toml(&dev, Path::new("/")).unwrap();
    // sqlite refuses openbao keys.
    assert_eq!(
        invalid_key(&MINIMAL.replace("path = \"data", "address = \"x\"\npath = \"data")),
        "store.address"
    );
}

const SECRETSMANAGER: &str = r#"
[tls]
cert = "server.pem"
key = "server.key"

[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "keyward"
pin_file = "hsm.pin"

[store]
kind = "secretsmanager"
region = "eu-central-1"
access_key_id_file = "aws/akid"
secret_access_key_file = "/run/credentials/keyward/aws-secret"

[cluster]
index = "/var/lib/keyward/index.db"
"#;

#[test]
fn store_kind_secretsmanager_parses_with_defaults_and_relative_paths() {
    use crate::store::SecretsManagerConfig;
    let c = Config::from_toml(SECRETSMANAGER, Path::new("/etc/keyward")).unwrap();
    assert_eq!(c.store.kind(), "secretsmanager");
    assert_eq!(c.store.local_file(), None);
    assert_eq!(
        c.store,
        StoreConfig::SecretsManager(SecretsManagerConfig {
            region: "eu-central-1".into(),
            endpoint: None,
            prefix: "keyward".into(),
            access_key_id_file: "/etc/keyward/aws/akid".into(),
            secret_access_key_file: "/run/credentials/keyward/aws-secret".into(),
            ca_file: None,
            timeout: Duration::from_secs(5),
        })
    );
    assert!(
        c.store.location().contains("eu-central-1"),
        "{}",
        c.store.location()
    );
    let local = SECRETSMANAGER.replace(
        "region = \"eu-central-1\"",
        "region = \"us-east-1\"\nendpoint = \"http://127.0.0.1:5000\"\nprefix = \"kms/prod\"\ntimeout = 2\nca_file = \"ca.pem\"",
    );
    let c = Config::from_toml(&local, Path::new("/etc/keyward")).unwrap();
    let StoreConfig::SecretsManager(aws) = c.store else {
        panic!("not secretsmanager: {:?}", c.store)
    };
    assert_eq!(aws.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(aws.prefix, "kms/prod");
    assert_eq!(aws.timeout, Duration::from_secs(2));
    assert_eq!(aws.ca_file, Some("/etc/keyward/ca.pem".into()));
}

#[test]
fn store_kind_secretsmanager_refusals_name_their_key() {
    let with = |from: &str, to: &str| SECRETSMANAGER.replace(from, to);
    let cases = [
        (with("region = \"eu-central-1\"\n", ""), Some("store.region")),
        (
            with("access_key_id_file = \"aws/akid\"\n", ""),
            Some("store.access_key_id_file"),
        ),
        (
            with(
                "secret_access_key_file = \"/run/credentials/keyward/aws-secret\"\n",
                "",
            ),
            Some("store.secret_access_key_file"),
        ),
        (with("eu-central-1", "EU Central"), Some("store.region")),
        (
            with("region", "endpoint = \"http://10.0.0.1:80\"\nregion"),
            Some("store.endpoint"),
        ),
        (
            with("region", "endpoint = \"http://localhost:5000\"\nregion"),
            Some("store.endpoint"),
        ),
        (with("region", "prefix = \"a//b\"\nregion"), Some("store.prefix")),
        (with("region", "timeout = 0\nregion"), Some("store.timeout")),
        // Another backend's keys are refused.
        (
            with("region", "token_file = \"t\"\nregion"),
            Some("store.token_file"),
        ),
        (with("region", "mount = \"kv\"\nregion"), Some("store.mount")),
        // A secret is never inline: unknown keys are refused by the parser.
        (with("region", "secret_access_key = \"wJalr\"\nregion"), None),
    ];
    for (text, key) in cases {
        match key {
            Some(key) => assert_eq!(invalid_key(&text), key, "{text}"),
            None => {
                let err = Config::from_toml(&text, Path::new("/")).unwrap_err().to_string();
                assert!(
                    err.contains("unknown field `secret_access_key`") && !err.contains("wJalr"),
                    "{err}"
                );
            }
        }
    }
    // openbao and sqlite refuse the Secrets Manager keys.
    assert_eq!(
        invalid_key(&OPENBAO.replace("token_file", "region = \"x\"\ntoken_file")),
        "store.region"
    );
}

#[test]
fn pre_authentication_bounds_default_validate_and_fit_the_connection_cap() {
    let root = Path::new("/etc/keyward");
    let c = Config::from_toml(MINIMAL, root).unwrap();
    assert_eq!(c.server.max_handshakes, crate::limits::MAX_HANDSHAKES);
    assert_eq!(
        c.server.max_handshakes_per_source,
        crate::limits::MAX_HANDSHAKES_PER_SOURCE
    );
    assert_eq!(c.server.first_byte_timeout, crate::limits::FIRST_BYTE_TIMEOUT);
    assert!(c.tls.send_ca_names, "today's CertificateRequest by default");
    assert_eq!(
        c.server.max_request_bytes_in_flight,
        crate::limits::MAX_REQUEST_BYTES_IN_FLIGHT
    );
    assert_eq!(
        invalid_key(&with(
            "max_message_bytes = 2097152
max_request_bytes_in_flight = 1048576",
            ""
        )),
        "server.max_request_bytes_in_flight",
        "the budget must let a largest message through"
    );

    // A small connection cap shrinks the defaults with it ...
    let c = Config::from_toml(&with("max_connections = 10", ""), root).unwrap();
    assert_eq!(
        (c.server.max_handshakes, c.server.max_handshakes_per_source),
        (10, 10)
    );
    // ... and explicit values above it are refused.
    assert_eq!(
        invalid_key(&with("max_connections = 10\nmax_handshakes = 11", "")),
        "server.max_handshakes"
    );
    assert_eq!(
        invalid_key(&with("max_handshakes = 4\nmax_handshakes_per_source = 5", "")),
        "server.max_handshakes_per_source"
    );
    assert_eq!(
        invalid_key(&with("first_byte_timeout = 0", "")),
        "server.first_byte_timeout"
    );
    let c = Config::from_toml(
        &with(
            "max_handshakes = 64\nmax_handshakes_per_source = 4\nfirst_byte_timeout = 2",
            "send_ca_names = false",
        ),
        root,
    )
    .unwrap();
    assert_eq!(c.server.max_handshakes, 64);
    assert_eq!(c.server.max_handshakes_per_source, 4);
    assert_eq!(c.server.first_byte_timeout, Duration::from_secs(2));
    assert!(!c.tls.send_ca_names);
    assert!(
        Config::from_toml(&with("max_handshake = 4", ""), root).is_err(),
        "unknown keys refused"
    );
}

#[test]
fn the_group_quota_defaults_to_its_limit_and_refuses_zero() {
    let root = Path::new("/etc/keyward");
    let c = Config::from_toml(MINIMAL, root).unwrap();
    assert_eq!(
        c.server.max_objects_per_group,
        crate::limits::MAX_OBJECTS_PER_GROUP
    );
    let set = MINIMAL.replacen("[tls]", "[server]\nmax_objects_per_group = 10\n\n[tls]", 1);
    assert_eq!(
        Config::from_toml(&set, root)
            .unwrap()
            .server
            .max_objects_per_group,
        10
    );
    let zero = MINIMAL.replacen("[tls]", "[server]\nmax_objects_per_group = 0\n\n[tls]", 1);
    assert_eq!(invalid_key(&zero), "server.max_objects_per_group");
}

const KEYPROTECT: &str = r#"
[tls]
cert = "server.pem"
key = "server.key"

[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "keyward"
pin_file = "hsm.pin"

[store]
kind = "keyprotect"
address = "https://us-south.kms.cloud.ibm.com"
instance_id = "8c1d2a10-0a4b-4a3c-9c1e-2f4b6a8d0e11"
api_key_file = "kp.apikey"
ca_file = "/etc/ssl/certs/ca-certificates.crt"

[cluster]
index = "/var/lib/keyward/index.db"
"#;

#[test]
fn store_kind_keyprotect_parses_with_defaults_and_relative_paths() {
    use crate::store::KeyProtectConfig;
    let c = Config::from_toml(KEYPROTECT, Path::new("/etc/keyward")).unwrap();
    assert_eq!(c.store.kind(), "keyprotect");
    assert_eq!(c.store.local_file(), None);
    assert_eq!(
        c.store,
        StoreConfig::KeyProtect(KeyProtectConfig {
            address: "https://us-south.kms.cloud.ibm.com".into(),
            iam_address: "https://iam.cloud.ibm.com/identity/token".into(),
            instance_id: "8c1d2a10-0a4b-4a3c-9c1e-2f4b6a8d0e11".into(),
            api_key_file: "/etc/keyward/kp.apikey".into(),
            ca_file: Some("/etc/ssl/certs/ca-certificates.crt".into()),
            key_ring: None,
            timeout: Duration::from_secs(10),
        })
    );
    assert!(
        c.store
            .location()
            .contains("us-south.kms.cloud.ibm.com/api/v2/keys")
    );
    let ring = KEYPROTECT.replace(
        "api_key_file",
        "key_ring = \"kmip-ring\"\niam_address = \"https://iam.test.cloud.ibm.com/identity/token\"\ntimeout = 3\napi_key_file",
    );
    let StoreConfig::KeyProtect(kp) = Config::from_toml(&ring, Path::new("/etc/keyward")).unwrap().store
    else {
        panic!("not keyprotect")
    };
    assert_eq!(kp.key_ring.as_deref(), Some("kmip-ring"));
    assert_eq!(kp.iam_address, "https://iam.test.cloud.ibm.com/identity/token");
    assert_eq!(kp.timeout, Duration::from_secs(3));
}

#[test]
fn store_kind_keyprotect_refusals_name_their_key() {
    let with = |from: &str, to: &str| KEYPROTECT.replace(from, to);
    let cases = [
        (
            with("api_key_file", "token_file = \"t\"\napi_key_file"),
            "store.token_file",
        ),
        (with("api_key_file = \"kp.apikey\"\n", ""), "store.api_key_file"),
        (
            with("instance_id = \"8c1d2a10-0a4b-4a3c-9c1e-2f4b6a8d0e11\"\n", ""),
            "store.instance_id",
        ),
        (
            with("8c1d2a10-0a4b-4a3c-9c1e-2f4b6a8d0e11", "my-instance"),
            "store.instance_id",
        ),
        (
            with("address = \"https://us-south.kms.cloud.ibm.com\"\n", ""),
            "store.address",
        ),
        (with("https://us-south", "http://us-south"), "store.address"),
        (
            with("ca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n", ""),
            "store.address",
        ),
        (
            with(
                "api_key_file",
                "iam_address = \"https://iam.cloud.ibm.com\"\napi_key_file",
            ),
            "store.iam_address",
        ),
        (
            with("api_key_file", "key_ring = \"a/b\"\napi_key_file"),
            "store.key_ring",
        ),
        (with("api_key_file", "timeout = 0\napi_key_file"), "store.timeout"),
        (
            with("api_key_file", "mount = \"secret\"\napi_key_file"),
            "store.mount",
        ),
    ];
    for (text, key) in cases {
        assert_eq!(invalid_key(&text), key, "{text}");
    }
    // The API key is never inline.
    let err = Config::from_toml(
        &with("api_key_file = \"kp.apikey\"", "api_key = \"abc123\""),
        Path::new("/"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unknown field `api_key`") && !err.contains("abc123"),
        "{err}"
    );
}

#[test]
fn cluster_section_goes_with_a_remote_store_only() {
    let without = OPENBAO.replace("[cluster]\nindex = \"/var/lib/keyward/index.db\"\n", "");
    let err = Config::from_toml(&without, Path::new("/etc/keyward")).unwrap_err();
    assert!(err.to_string().contains("cluster.index"), "{err}");
    let with_sqlite = format!("{MINIMAL}\n[cluster]\nindex = \"i.db\"\n");
    let err = Config::from_toml(&with_sqlite, Path::new("/etc/keyward")).unwrap_err();
    assert!(err.to_string().contains("cluster"), "{err}");
    let bad = OPENBAO.replace("[cluster]\n", "[cluster]\nsync_interval = 0\n");
    let err = Config::from_toml(&bad, Path::new("/etc/keyward")).unwrap_err();
    assert!(err.to_string().contains("cluster.sync_interval"), "{err}");
    let unknown = OPENBAO.replace("[cluster]\n", "[cluster]\ngrace = 5\n");
    assert!(Config::from_toml(&unknown, Path::new("/etc/keyward")).is_err());
}
