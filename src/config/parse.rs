//! Raw serde structs (unknown keys refused) and their validation into [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{
    AuditConfig, Config, ConfigError, HsmConfig, IssuingCa, MetricsConfig, ProcessConfig, ServerConfig,
    StoreConfig, TlsConfig, TlsVersion,
};
use crate::limits;

const DEFAULT_LISTEN: &str = "127.0.0.1:5696";
const DEFAULT_PIN_CREDENTIAL: &str = "keyward-hsm-pin";
/// Bounds on operator-chosen numbers: wide enough for any real deployment, narrow
/// enough that a typo (an extra zero, a negative) is caught at start-up.
const MAX_LISTEN_ADDRESSES: usize = 16;
const MAX_CONNECTIONS: (i64, i64, i64) = (1, 1024, 100_000);
const HANDSHAKE_TIMEOUT_S: (i64, i64, i64) = (1, 10, 300);
const FIRST_BYTE_TIMEOUT_S: (i64, i64, i64) = (1, limits::FIRST_BYTE_TIMEOUT.as_secs() as i64, 60);
const READ_TIMEOUT_S: (i64, i64, i64) = (1, 30, 3600);
const IDLE_TIMEOUT_S: (i64, i64, i64) = (1, 300, 86_400);
const HSM_CALL_TIMEOUT_S: (i64, i64, i64) = (1, 5, 300);
const STORE_TIMEOUT_S: (i64, i64, i64) = (1, 5, 300);
/// Key Protect: a cloud API across the internet, 10 s unless configured.
const KEYPROTECT_TIMEOUT_S: (i64, i64, i64) = (1, 10, 300);
const MIN_MESSAGE_BYTES: i64 = 1024;
const MAX_TRUST_ENTRIES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<RawServer>,
    tls: RawTls,
    hsm: RawHsm,
    store: RawStore,
    cluster: Option<RawCluster>,
    audit: Option<RawAudit>,
    metrics: Option<RawMetrics>,
    process: Option<RawProcess>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Vec<String>>,
    max_connections: Option<i64>,
    max_handshakes: Option<i64>,
    max_handshakes_per_source: Option<i64>,
    first_byte_timeout: Option<i64>,
    handshake_timeout: Option<i64>,
    read_timeout: Option<i64>,
    idle_timeout: Option<i64>,
    max_message_bytes: Option<i64>,
    max_request_bytes_in_flight: Option<i64>,
    max_objects_per_group: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
    #[serde(default)]
    client_ca: Vec<String>,
    #[serde(default)]
    client_pins: Vec<String>,
    clients_dir: Option<String>,
    send_ca_names: Option<bool>,
    tls_versions: Option<Vec<String>>,
    issuing_ca_cert: Option<String>,
    issuing_ca_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHsm {
    module: String,
    token_label: Option<String>,
    /// An RFC 7512 PKCS#11 URI, instead of `token_label` and `slot`.
    token_uri: Option<String>,
    slot: Option<i64>,
    pin_file: Option<String>,
    pin_credential: Option<String>,
    call_timeout: Option<i64>,
}

/// `[store]`: the keys of every backend; each backend's arm in [`store`]
/// refuses the keys of the others.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    kind: Option<String>,
    // kind = "sqlite"
    path: Option<String>,
    // kind = "openbao"
    address: Option<String>,
    mount: Option<String>,
    prefix: Option<String>,
    token_file: Option<String>,
    role_id_file: Option<String>,
    secret_id_file: Option<String>,
    approle_mount: Option<String>,
    ca_file: Option<String>,
    timeout: Option<i64>,
    // kind = "secretsmanager" (also prefix, ca_file, timeout)
    region: Option<String>,
    endpoint: Option<String>,
    access_key_id_file: Option<String>,
    secret_access_key_file: Option<String>,
    // kind = "keyprotect" (also address, ca_file, timeout)
    iam_address: Option<String>,
    instance_id: Option<String>,
    api_key_file: Option<String>,
    key_ring: Option<String>,
}

/// `[cluster]`: this node's index of a remote store.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    index: Option<String>,
    sync_interval: Option<i64>,
    read_grace: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    allow_root: Option<bool>,
    lock_memory: Option<bool>,
}

pub(super) fn parse(text: &str, source: &Path, base: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, source, &e))?;
    let store_config = store(raw.store, base)?;
    Ok(Config {
        source: source.to_path_buf(),
        server: server(raw.server.unwrap_or_default())?,
        tls: tls(raw.tls, base)?,
        hsm: hsm(raw.hsm, base)?,
        cluster: cluster(raw.cluster, &store_config, base)?,
        store: store_config,
        audit: audit(raw.audit.unwrap_or_default(), base)?,
        metrics: metrics(raw.metrics.unwrap_or_default())?,
        process: process(raw.process.unwrap_or_default()),
    })
}

/// Seconds between two syncs of a node's index with the remote store.
const SYNC_INTERVAL_S: (i64, i64, i64) = (1, 10, 300);
/// Seconds a node serves reads from its copies while the store is out of reach.
const READ_GRACE_S: (i64, i64, i64) = (0, 300, 86_400);

/// `[cluster]`: required with a remote store (every node keeps its own index of
/// it), refused with the embedded one (which is its own index).
fn cluster(
    raw: Option<RawCluster>,
    store: &StoreConfig,
    base: &Path,
) -> Result<Option<crate::store::IndexSettings>, ConfigError> {
    let remote = store.local_file().is_none();
    let raw = match (raw, remote) {
        (None, false) => return Ok(None),
        (Some(_), false) => {
            return Err(ConfigError::invalid(
                "cluster",
                "is for a remote store (store.kind other than \"sqlite\"); the embedded store needs no index",
            ));
        }
        (None, true) => {
            return Err(ConfigError::invalid(
                "cluster.index",
                format!(
                    "is required with store.kind = {:?}: each node keeps a local index of the store, \
                     e.g. [cluster] index = \"/var/lib/keyward/index.db\"",
                    store.kind()
                ),
            ));
        }
        (Some(raw), true) => raw,
    };
    let index = raw.index.ok_or_else(|| {
        ConfigError::invalid(
            "cluster.index",
            "is required: the local index file, e.g. \"/var/lib/keyward/index.db\"",
        )
    })?;
    Ok(Some(crate::store::IndexSettings {
        path: path("cluster.index", &index, base)?,
        sync_interval: seconds("cluster.sync_interval", raw.sync_interval, SYNC_INTERVAL_S)?,
        read_grace: seconds("cluster.read_grace", raw.read_grace, READ_GRACE_S)?,
    }))
}

fn process(raw: RawProcess) -> ProcessConfig {
    let default = ProcessConfig::default();
    ProcessConfig {
        allow_root: raw.allow_root.unwrap_or(default.allow_root),
        lock_memory: raw.lock_memory.unwrap_or(default.lock_memory),
    }
}

fn server(raw: RawServer) -> Result<ServerConfig, ConfigError> {
    let listen_raw = raw.listen.unwrap_or_else(|| vec![DEFAULT_LISTEN.to_string()]);
    if listen_raw.is_empty() || listen_raw.len() > MAX_LISTEN_ADDRESSES {
        return Err(ConfigError::invalid(
            "server.listen",
            format!("must list 1 to {MAX_LISTEN_ADDRESSES} addresses"),
        ));
    }
    let mut listen = Vec::with_capacity(listen_raw.len());
    for text in &listen_raw {
        let addr: SocketAddr = text.parse().map_err(|_| {
            ConfigError::invalid(
                "server.listen",
                format!("{text:?} is not an address:port (IPv6 as \"[::1]:5696\")"),
            )
        })?;
        // Port 0 (any free port) is allowed: tests and scripts read the bound
        // address from `keyward serve`'s "listening on" line.
        if listen.contains(&addr) {
            return Err(ConfigError::invalid(
                "server.listen",
                format!("{text:?} listed twice"),
            ));
        }
        listen.push(addr);
    }
    let max_message_bytes = in_range(
        "server.max_message_bytes",
        raw.max_message_bytes,
        (
            MIN_MESSAGE_BYTES,
            limits::MAX_MESSAGE_BYTES as i64,
            limits::MAX_MESSAGE_BYTES_CEILING as i64,
        ),
    )?;
    let max_connections = in_range("server.max_connections", raw.max_connections, MAX_CONNECTIONS)?;
    // Parts of the connection cap: by default as large as the cap allows, and
    // never larger when set.
    let max_handshakes = in_range(
        "server.max_handshakes",
        raw.max_handshakes,
        (
            1,
            (limits::MAX_HANDSHAKES as i64).min(max_connections),
            max_connections,
        ),
    )?;
    let max_handshakes_per_source = in_range(
        "server.max_handshakes_per_source",
        raw.max_handshakes_per_source,
        (
            1,
            (limits::MAX_HANDSHAKES_PER_SOURCE as i64).min(max_handshakes),
            max_handshakes,
        ),
    )?;
    // Every connection may have a largest message in flight; the budget must
    // let at least one through, and is bounded like the message size.
    let max_request_bytes_in_flight = in_range(
        "server.max_request_bytes_in_flight",
        raw.max_request_bytes_in_flight,
        (
            max_message_bytes,
            (limits::MAX_REQUEST_BYTES_IN_FLIGHT as i64).max(max_message_bytes),
            (limits::MAX_MESSAGE_BYTES_CEILING as i64).saturating_mul(16),
        ),
    )?;
    Ok(ServerConfig {
        listen,
        max_connections: max_connections as usize,
        max_handshakes: max_handshakes as usize,
        max_handshakes_per_source: max_handshakes_per_source as usize,
        first_byte_timeout: seconds(
            "server.first_byte_timeout",
            raw.first_byte_timeout,
            FIRST_BYTE_TIMEOUT_S,
        )?,
        handshake_timeout: seconds(
            "server.handshake_timeout",
            raw.handshake_timeout,
            HANDSHAKE_TIMEOUT_S,
        )?,
        read_timeout: seconds("server.read_timeout", raw.read_timeout, READ_TIMEOUT_S)?,
        idle_timeout: seconds("server.idle_timeout", raw.idle_timeout, IDLE_TIMEOUT_S)?,
        max_message_bytes: max_message_bytes as usize,
        max_request_bytes_in_flight: max_request_bytes_in_flight as usize,
        max_objects_per_group: in_range(
            "server.max_objects_per_group",
            raw.max_objects_per_group,
            (1, limits::MAX_OBJECTS_PER_GROUP as i64, i64::from(u32::MAX)),
        )? as usize,
    })
}

fn tls(raw: RawTls, base: &Path) -> Result<TlsConfig, ConfigError> {
    if raw.client_ca.len() > MAX_TRUST_ENTRIES || raw.client_pins.len() > MAX_TRUST_ENTRIES {
        return Err(ConfigError::invalid(
            "tls",
            format!("at most {MAX_TRUST_ENTRIES} client_ca / client_pins entries"),
        ));
    }
    let client_ca = raw
        .client_ca
        .iter()
        .map(|p| path("tls.client_ca", p, base))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client_pins = Vec::with_capacity(raw.client_pins.len());
    for text in &raw.client_pins {
        let pin = parse_fingerprint(text).ok_or_else(|| {
            ConfigError::invalid(
                "tls.client_pins",
                format!("{text:?} is not a SHA-256 fingerprint (64 hex digits, colons optional)"),
            )
        })?;
        if !client_pins.contains(&pin) {
            client_pins.push(pin);
        }
    }
    let tls_versions = match raw.tls_versions {
        None => vec![TlsVersion::Tls12, TlsVersion::Tls13],
        Some(list) => {
            let mut versions = Vec::new();
            for v in &list {
                let version = match v.as_str() {
                    "1.2" => TlsVersion::Tls12,
                    "1.3" => TlsVersion::Tls13,
                    other => {
                        return Err(ConfigError::invalid(
                            "tls.tls_versions",
                            format!("{other:?} is not supported; use \"1.2\" and/or \"1.3\""),
                        ));
                    }
                };
                if !versions.contains(&version) {
                    versions.push(version);
                }
            }
            if versions.is_empty() {
                return Err(ConfigError::invalid("tls.tls_versions", "must not be empty"));
            }
            versions.sort();
            versions
        }
    };
    let issuing_ca = match (&raw.issuing_ca_cert, &raw.issuing_ca_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(IssuingCa {
            cert: path("tls.issuing_ca_cert", cert, base)?,
            key: path("tls.issuing_ca_key", key, base)?,
        }),
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                "tls.issuing_ca_key",
                "must be set together with tls.issuing_ca_cert",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                "tls.issuing_ca_cert",
                "must be set together with tls.issuing_ca_key",
            ));
        }
    };
    Ok(TlsConfig {
        cert: path("tls.cert", &raw.cert, base)?,
        key: path("tls.key", &raw.key, base)?,
        client_ca,
        client_pins,
        clients_dir: raw
            .clients_dir
            .map(|p| path("tls.clients_dir", &p, base))
            .transpose()?,
        send_ca_names: raw.send_ca_names.unwrap_or(true),
        tls_versions,
        issuing_ca,
    })
}

fn hsm(raw: RawHsm, base: &Path) -> Result<HsmConfig, ConfigError> {
    let slot = match raw.slot {
        None => None,
        Some(n) if n >= 0 => Some(n as u64),
        Some(n) => {
            return Err(ConfigError::invalid(
                "hsm.slot",
                format!("must be >= 0 (got {n})"),
            ));
        }
    };
    let token = match (raw.token_label, raw.token_uri) {
        (Some(label), None) => {
            if label.is_empty() || label.len() > 32 {
                // PKCS#11 token labels are a 32-byte, blank-padded field.
                return Err(ConfigError::invalid("hsm.token_label", "must be 1 to 32 bytes"));
            }
            crate::hsm::TokenSelector {
                slot_id: slot,
                ..crate::hsm::TokenSelector::by_label(label)
            }
        }
        (None, Some(uri)) => {
            if slot.is_some() {
                return Err(ConfigError::invalid(
                    "hsm.slot",
                    "not with token_uri: give the slot as the URI's slot-id",
                ));
            }
            crate::hsm::TokenSelector::from_uri(&uri)
                .map_err(|e| ConfigError::invalid("hsm.token_uri", e.to_string()))?
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "hsm.token_uri",
                "give token_label or token_uri, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::invalid(
                "hsm.token_label",
                "missing: name the token by token_label, or by token_uri (an RFC 7512 PKCS#11 URI)",
            ));
        }
    };
    let pin_credential = raw
        .pin_credential
        .unwrap_or_else(|| DEFAULT_PIN_CREDENTIAL.to_string());
    if !is_plain_file_name(&pin_credential) {
        return Err(ConfigError::invalid(
            "hsm.pin_credential",
            "must be a credential name (letters, digits, '.', '_', '-'), not a path or a PIN",
        ));
    }
    Ok(HsmConfig {
        module: path("hsm.module", &raw.module, base)?,
        token,
        pin_file: raw.pin_file.map(|p| path("hsm.pin_file", &p, base)).transpose()?,
        pin_credential,
        call_timeout: seconds("hsm.call_timeout", raw.call_timeout, HSM_CALL_TIMEOUT_S)?,
    })
}

fn store(raw: RawStore, base: &Path) -> Result<StoreConfig, ConfigError> {
    // One arm per backend; a backend's own keys are checked in its arm, and
    // the keys of another backend are refused (a typo in `kind` must not
    // quietly fall back to another store).
    match raw.kind.as_deref() {
        None | Some("sqlite") => {
            only_keys(&raw, "sqlite", &["path"])?;
            let text = raw
                .path
                .as_deref()
                .ok_or_else(|| ConfigError::invalid("store.path", "is required for kind \"sqlite\""))?;
            Ok(StoreConfig::Sqlite {
                path: path("store.path", text, base)?,
            })
        }
        Some("openbao") => openbao(raw, base).map(StoreConfig::OpenBao),
        Some("secretsmanager") => secretsmanager(raw, base).map(StoreConfig::SecretsManager),
        Some("keyprotect") => keyprotect(raw, base).map(StoreConfig::KeyProtect),
        Some(other) => Err(ConfigError::invalid(
            "store.kind",
            format!(
                "{other:?} is not supported; use \"sqlite\", \"openbao\", \"keyprotect\" or \"secretsmanager\""
            ),
        )),
    }
}

/// The keys set in `[store]`, by name.
fn store_keys_set(raw: &RawStore) -> Vec<&'static str> {
    let keys: [(&'static str, bool); 18] = [
        ("path", raw.path.is_some()),
        ("address", raw.address.is_some()),
        ("mount", raw.mount.is_some()),
        ("prefix", raw.prefix.is_some()),
        ("token_file", raw.token_file.is_some()),
        ("role_id_file", raw.role_id_file.is_some()),
        ("secret_id_file", raw.secret_id_file.is_some()),
        ("approle_mount", raw.approle_mount.is_some()),
        ("ca_file", raw.ca_file.is_some()),
        ("timeout", raw.timeout.is_some()),
        ("region", raw.region.is_some()),
        ("endpoint", raw.endpoint.is_some()),
        ("access_key_id_file", raw.access_key_id_file.is_some()),
        ("secret_access_key_file", raw.secret_access_key_file.is_some()),
        ("iam_address", raw.iam_address.is_some()),
        ("instance_id", raw.instance_id.is_some()),
        ("api_key_file", raw.api_key_file.is_some()),
        ("key_ring", raw.key_ring.is_some()),
    ];
    keys.iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect()
}

fn only_keys(raw: &RawStore, kind: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    match store_keys_set(raw).into_iter().find(|key| !allowed.contains(key)) {
        Some(key) => Err(ConfigError::invalid(
            format!("store.{key}"),
            format!("is not a setting of kind {kind:?}"),
        )),
        None => Ok(()),
    }
}

/// `[store] kind = "keyprotect"`: IBM Key Protect / HPCS keys API v2 (see
/// docs/store-keyprotect.md).
fn keyprotect(raw: RawStore, base: &Path) -> Result<crate::store::KeyProtectConfig, ConfigError> {
    use crate::store::KeyProtectConfig;
    use crate::store::keyprotect::DEFAULT_IAM_ADDRESS;
    only_keys(
        &raw,
        "keyprotect",
        &[
            "address",
            "iam_address",
            "instance_id",
            "api_key_file",
            "ca_file",
            "key_ring",
            "timeout",
        ],
    )?;
    let address = raw.address.ok_or_else(|| {
        ConfigError::invalid(
            "store.address",
            "is required for kind \"keyprotect\" (https://<region>.kms.cloud.ibm.com)",
        )
    })?;
    let instance_id = raw.instance_id.ok_or_else(|| {
        ConfigError::invalid(
            "store.instance_id",
            "is required for kind \"keyprotect\" (the service instance GUID)",
        )
    })?;
    let api_key_file = raw.api_key_file.ok_or_else(|| {
        ConfigError::invalid(
            "store.api_key_file",
            "is required for kind \"keyprotect\" (a file holding the IAM API key)",
        )
    })?;
    let config = KeyProtectConfig {
        address,
        iam_address: raw.iam_address.unwrap_or_else(|| DEFAULT_IAM_ADDRESS.to_owned()),
        instance_id,
        api_key_file: path("store.api_key_file", &api_key_file, base)?,
        ca_file: raw.ca_file.map(|p| path("store.ca_file", &p, base)).transpose()?,
        key_ring: raw.key_ring,
        timeout: seconds("store.timeout", raw.timeout, KEYPROTECT_TIMEOUT_S)?,
    };
    config
        .check()
        .map_err(|(key, why)| ConfigError::invalid(format!("store.{key}"), why))?;
    Ok(config)
}

/// `[store] kind = "openbao"`: OpenBao / Vault KV v2 (see docs/store-openbao.md).
fn openbao(raw: RawStore, base: &Path) -> Result<crate::store::OpenBaoConfig, ConfigError> {
    use crate::store::{OpenBaoAuth, OpenBaoConfig};
    only_keys(
        &raw,
        "openbao",
        &[
            "address",
            "mount",
            "prefix",
            "token_file",
            "role_id_file",
            "secret_id_file",
            "approle_mount",
            "ca_file",
            "timeout",
        ],
    )?;
    let address = raw.address.ok_or_else(|| {
        ConfigError::invalid(
            "store.address",
            "is required for kind \"openbao\" (https://host:8200)",
        )
    })?;
    let auth = match (raw.token_file, raw.role_id_file, raw.secret_id_file) {
        (Some(token), None, None) => {
            if raw.approle_mount.is_some() {
                return Err(ConfigError::invalid(
                    "store.approle_mount",
                    "is only for AppRole login",
                ));
            }
            OpenBaoAuth::TokenFile(path("store.token_file", &token, base)?)
        }
        (None, Some(role), Some(secret)) => OpenBaoAuth::AppRole {
            role_id_file: path("store.role_id_file", &role, base)?,
            secret_id_file: path("store.secret_id_file", &secret, base)?,
            mount: raw.approle_mount.unwrap_or_else(|| "approle".to_owned()),
        },
        (None, None, None) => {
            return Err(ConfigError::invalid(
                "store.token_file",
                "kind \"openbao\" needs token_file, or role_id_file and secret_id_file (AppRole)",
            ));
        }
        (Some(_), _, _) => {
            return Err(ConfigError::invalid(
                "store.token_file",
                "set token_file or role_id_file + secret_id_file, not both",
            ));
        }
        (None, _, _) => {
            return Err(ConfigError::invalid(
                "store.role_id_file",
                "AppRole needs both role_id_file and secret_id_file",
            ));
        }
    };
    let config = OpenBaoConfig {
        address,
        mount: raw.mount.unwrap_or_else(|| "secret".to_owned()),
        prefix: raw.prefix.unwrap_or_else(|| "keyward".to_owned()),
        auth,
        ca_file: raw.ca_file.map(|p| path("store.ca_file", &p, base)).transpose()?,
        timeout: seconds("store.timeout", raw.timeout, STORE_TIMEOUT_S)?,
    };
    // The same checks `store::open` makes, so that check-config and the
    // server refuse a bad address, mount or prefix with the key's name.
    config
        .check()
        .map_err(|(key, why)| ConfigError::invalid(format!("store.{key}"), why))?;
    Ok(config)
}

/// `[store] kind = "secretsmanager"`: AWS Secrets Manager (see
/// docs/store-secretsmanager.md). The keys come from files only.
fn secretsmanager(raw: RawStore, base: &Path) -> Result<crate::store::SecretsManagerConfig, ConfigError> {
    only_keys(
        &raw,
        "secretsmanager",
        &[
            "region",
            "endpoint",
            "prefix",
            "access_key_id_file",
            "secret_access_key_file",
            "ca_file",
            "timeout",
        ],
    )?;
    let required = |key: &str, value: Option<String>| {
        value.ok_or_else(|| {
            ConfigError::invalid(format!("store.{key}"), "is required for kind \"secretsmanager\"")
        })
    };
    let region = required("region", raw.region)?;
    let access_key_id_file = required("access_key_id_file", raw.access_key_id_file)?;
    let secret_access_key_file = required("secret_access_key_file", raw.secret_access_key_file)?;
    let config = crate::store::SecretsManagerConfig {
        region,
        endpoint: raw.endpoint,
        prefix: raw.prefix.unwrap_or_else(|| "keyward".to_owned()),
        access_key_id_file: path("store.access_key_id_file", &access_key_id_file, base)?,
        secret_access_key_file: path("store.secret_access_key_file", &secret_access_key_file, base)?,
        ca_file: raw.ca_file.map(|p| path("store.ca_file", &p, base)).transpose()?,
        timeout: seconds("store.timeout", raw.timeout, STORE_TIMEOUT_S)?,
    };
    // The same checks `store::open` makes, with the key's name.
    config
        .check()
        .map_err(|(key, why)| ConfigError::invalid(format!("store.{key}"), why))?;
    Ok(config)
}

fn metrics(raw: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen = raw
        .listen
        .map(|a| {
            a.parse::<SocketAddr>()
                .map_err(|_| ConfigError::invalid("metrics.listen", format!("{a:?} is not an address:port")))
        })
        .transpose()?;
    Ok(MetricsConfig { listen })
}

fn audit(raw: RawAudit, base: &Path) -> Result<AuditConfig, ConfigError> {
    Ok(AuditConfig {
        path: raw.path.map(|p| path("audit.path", &p, base)).transpose()?,
    })
}

/// Parses a SHA-256 fingerprint written as 64 hex digits, with or without colons (as
/// vCenter and `openssl x509 -fingerprint` show it), in either case.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let digits: String = text.trim().chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// A non-empty path, resolved against the config file's folder when relative.
fn path(key: &str, text: &str, base: &Path) -> Result<PathBuf, ConfigError> {
    if text.is_empty() {
        return Err(ConfigError::invalid(key, "path must not be empty"));
    }
    if text.contains('\0') {
        return Err(ConfigError::invalid(key, "path contains a NUL byte"));
    }
    let p = Path::new(text);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    })
}

fn in_range(key: &str, value: Option<i64>, (min, default, max): (i64, i64, i64)) -> Result<i64, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError::invalid(
            key,
            format!("must be between {min} and {max} (got {v})"),
        ));
    }
    Ok(v)
}

fn seconds(key: &str, value: Option<i64>, bounds: (i64, i64, i64)) -> Result<Duration, ConfigError> {
    let v = in_range(key, value, bounds)?;
    Ok(Duration::from_secs(v as u64))
}

/// A name usable as a single file name: no separators, no leading dot, bounded.
pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn syntax_error(text: &str, source: &Path, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    // The innermost `[table]` header above the error tells the operator which section
    // an unknown key was found in; serde's message only names the key itself.
    let section = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    ConfigError::Syntax {
        path: source.to_path_buf(),
        line,
        section,
        message: err.message().to_string(),
    }
}
