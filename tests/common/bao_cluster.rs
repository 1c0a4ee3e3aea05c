//! A 3-node OpenBao cluster on integrated storage (Raft) on 127.0.0.1, for the
//! cluster tests: each node its own data folder, API port and cluster port;
//! node 1 initialised (one key share) and unsealed, nodes 2 and 3 joined and
//! unsealed; a KV v2 mount `secret` with `cas_required`, and a token holding
//! keyward's policy (docs/store-openbao.md). Nodes can be killed (`kill -9`,
//! by PID) and restarted (unsealed again). Every wait is on an event (an HTTP
//! answer, a leader elected, a voter promoted) with a deadline.
//!
//! What OpenBao 2.7 does with a standby (seen while writing this harness):
//! writes sent to a standby are forwarded to the active node, but reads are
//! answered from the standby's own copy, which lags the active node (a secret
//! written on the leader is 404 on a standby for tens of milliseconds, and for
//! longer on a node that was just restarted). `X-Vault-Forward: active-node`
//! is not honoured. So keyward nodes must reach the *active* node, as
//! docs/store-openbao.md says: the tests put a [`FaultProxy`] per keyward node
//! in front of the cluster, routing to the node whose `/v1/sys/health`
//! answers 200 (what a load balancer does), re-probing when it fails.
//!
//! [`FaultProxy`]: super::fault_proxy::FaultProxy
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `bao` binary: `KEYWARD_BAO`, else `bao` on PATH, else the one
/// `scripts/openbao` installs under `target/tools/`. `None` (the caller skips,
/// saying so) when there is none and `CI` is not `true`; under CI a missing
/// binary fails the test.
pub(crate) fn bao_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KEYWARD_BAO").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "KEYWARD_BAO={} is not a file", path.display());
        return Some(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("bao"))
            .find(|p| p.is_file())
    });
    let installed = super::repo().join("target/tools/openbao-2.7.2/bin/bao");
    let found = on_path.or_else(|| installed.is_file().then_some(installed));
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the OpenBao server binary `bao` was not found (KEYWARD_BAO unset, none on PATH); \
             under CI it must be installed: export KEYWARD_BAO=\"$(scripts/openbao)\""
        );
        eprintln!("SKIPPED: no `bao` binary (set KEYWARD_BAO, or export KEYWARD_BAO=\"$(scripts/openbao)\")");
    }
    found
}

/// `n` distinct free ports on 127.0.0.1 (all held until every one is picked,
/// then released; the servers bind them next).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// One plain HTTP/1.0 exchange with an OpenBao API (test set-up only):
/// (status, JSON body); status 0 when nothing answered.
pub(crate) fn http(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, serde_json::Value::Null);
    };
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let body = body.map(ToString::to_string).unwrap_or_default();
    let token = token
        .map(|t| format!("X-Vault-Token: {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{token}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, serde_json::Value::Null);
    }
    let mut answer = String::new();
    if stream.read_to_string(&mut answer).is_err() {
        return (0, serde_json::Value::Null);
    }
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// Polls `probe` until it gives `Some`, at most `timeout`; then fails naming `what`.
pub(crate) fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Node {
    dir: PathBuf,
    api: SocketAddr,
    child: Option<Child>,
}

/// The cluster; every node process is killed when it is dropped.
pub(crate) struct BaoCluster {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    nodes: Vec<Node>,
    unseal_key: String,
    root_token: String,
}

/// keyward's policy (docs/store-openbao.md) over every prefix that starts
/// with `cluster`: the tests share the cluster, each under its own prefix.
const KEYWARD_POLICY: &str = r#"
path "secret/data/cluster*"     { capabilities = ["create", "read", "update"] }
path "secret/metadata/cluster*" { capabilities = ["read", "list", "delete"] }
"#;

impl BaoCluster {
    /// Starts, initialises, unseals and joins three nodes; `None` when the
    /// `bao` binary is missing outside CI (see [`bao_binary`]).
    pub(crate) fn start() -> Option<BaoCluster> {
        let bin = bao_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(6);
        let nodes = (1..=3)
            .map(|n| {
                let node_dir = dir.path().join(format!("bao-{n}"));
                std::fs::create_dir_all(node_dir.join("raft")).unwrap();
                let (api_port, cluster_port) = (ports[2 * n - 2], ports[2 * n - 1]);
                // performance_multiplier = 1: the tight Raft timings (about 1 s
                // heartbeat and election) instead of the default 5x, so a
                // leader lost is replaced within seconds.
                let config = format!(
                    r#"storage "raft" {{
  path = "{raft}"
  node_id = "node-{n}"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{api_port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{api_port}"
cluster_addr = "http://127.0.0.1:{cluster_port}"
disable_mlock = true
ui = false
log_level = "info"
"#,
                    raft = node_dir.join("raft").display()
                );
                std::fs::write(node_dir.join("config.hcl"), config).unwrap();
                Node {
                    dir: node_dir,
                    api: SocketAddr::from(([127, 0, 0, 1], api_port)),
                    child: None,
                }
            })
            .collect();
        let mut cluster = BaoCluster {
            _dir: dir,
            bin,
            nodes,
            unseal_key: String::new(),
            root_token: String::new(),
        };
        for n in 0..3 {
            cluster.spawn(n);
        }
        // Node 1: init with one key share, unseal, wait until it is active.
        let (status, init) = cluster.call(
            0,
            None,
            "PUT",
            "/v1/sys/init",
            Some(&serde_json::json!({ "secret_shares": 1, "secret_threshold": 1 })),
        );
        assert_eq!(status, 200, "init: {init}");
        cluster.unseal_key = init["keys"][0].as_str().unwrap().to_owned();
        cluster.root_token = init["root_token"].as_str().unwrap().to_owned();
        cluster.unseal(0);
        wait_for("node 1 active", Duration::from_secs(60), || {
            (cluster.health(0) == 200).then_some(())
        });
        // Joined nodes become voters once stable: 1 s instead of 10 s.
        let (status, body) = cluster.root(
            0,
            "POST",
            "/v1/sys/storage/raft/autopilot/configuration",
            Some(serde_json::json!({ "server_stabilization_time": "1s" })),
        );
        assert!(status == 200 || status == 204, "autopilot: {status} {body}");
        let leader = format!("http://{}", cluster.nodes[0].api);
        for n in 1..3 {
            let (status, body) = cluster.call(
                n,
                None,
                "POST",
                "/v1/sys/storage/raft/join",
                Some(&serde_json::json!({ "leader_api_addr": leader })),
            );
            assert_eq!(status, 200, "join node {}: {body}", n + 1);
            cluster.unseal(n);
        }
        for n in 1..3 {
            cluster.wait_unsealed(n);
        }
        wait_for("three Raft voters", Duration::from_secs(60), || {
            let (status, body) = cluster.root(0, "GET", "/v1/sys/storage/raft/configuration", None);
            let servers = body["data"]["config"]["servers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (status == 200 && servers.len() == 3 && servers.iter().all(|s| s["voter"] == true)).then_some(())
        });

        // The KV v2 mount, with compare-and-swap required on every write.
        let (status, body) = cluster.root(
            0,
            "POST",
            "/v1/sys/mounts/secret",
            Some(serde_json::json!({ "type": "kv", "options": { "version": "2" } })),
        );
        assert!(status == 200 || status == 204, "mount: {status} {body}");
        // A new KV v2 mount refuses requests until it has set itself up.
        wait_for("KV v2 mount ready", Duration::from_secs(30), || {
            let (status, _) = cluster.root(
                0,
                "POST",
                "/v1/secret/config",
                Some(serde_json::json!({ "cas_required": true, "max_versions": 5 })),
            );
            (status == 204 || status == 200).then_some(())
        });
        let (status, body) = cluster.root(
            0,
            "POST",
            "/v1/sys/policies/acl/keyward",
            Some(serde_json::json!({ "policy": KEYWARD_POLICY })),
        );
        assert!(status == 200 || status == 204, "policy: {status} {body}");
        Some(cluster)
    }

    fn spawn(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        assert!(node.child.is_none(), "node {} already running", n + 1);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("bao.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("server")
            .arg(format!("-config={}", node.dir.join("config.hcl").display()))
            .env("HOME", &node.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
        let api = node.api;
        wait_for(
            &format!("bao node {} answering", n + 1),
            Duration::from_secs(60),
            || {
                if let Some(status) = self.nodes[n].child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("bao node {} exited ({status}): {}", n + 1, self.log(n));
                }
                (http(api, None, "GET", "/v1/sys/seal-status", None).0 == 200).then_some(())
            },
        );
    }

    fn unseal(&self, n: usize) {
        let (status, body) = self.call(
            n,
            None,
            "PUT",
            "/v1/sys/unseal",
            Some(&serde_json::json!({ "key": self.unseal_key })),
        );
        assert_eq!(status, 200, "unseal node {}: {body}", n + 1);
    }

    /// Waits until node `n` is unsealed and knows the active node (a joined
    /// or restarted node unseals asynchronously). The key is sent again when
    /// the node still shows no unseal progress 3 s after the last send (a
    /// node still joining may drop it).
    fn wait_unsealed(&self, n: usize) {
        let mut sent = Instant::now();
        wait_for(
            &format!("bao node {} unsealed and following a leader", n + 1),
            Duration::from_secs(90),
            || {
                let (_, seal) = self.call(n, None, "GET", "/v1/sys/seal-status", None);
                let (_, leader) = self.call(n, None, "GET", "/v1/sys/leader", None);
                let knows = leader["leader_address"].as_str().is_some_and(|a| !a.is_empty());
                if seal["sealed"] == true && sent.elapsed() > Duration::from_secs(3) {
                    let body = serde_json::json!({ "key": self.unseal_key });
                    let _ = self.call(n, None, "PUT", "/v1/sys/unseal", Some(&body));
                    sent = Instant::now();
                }
                (seal["sealed"] == false && knows).then_some(())
            },
        );
    }

    /// `/v1/sys/health` of node `n`: 200 active, 429 standby, 503 sealed, 0 down.
    pub(crate) fn health(&self, n: usize) -> u16 {
        self.call(n, None, "GET", "/v1/sys/health", None).0
    }

    /// The API address of each node.
    pub(crate) fn addresses(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.api).collect()
    }

    pub(crate) fn address(&self, n: usize) -> SocketAddr {
        self.nodes[n].api
    }

    pub(crate) fn root_token(&self) -> &str {
        &self.root_token
    }

    /// One API call to node `n`.
    pub(crate) fn call(
        &self,
        n: usize,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        http(self.nodes[n].api, token, method, path, body)
    }

    /// One API call to node `n` with the root token.
    pub(crate) fn root(
        &self,
        n: usize,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.call(n, Some(&self.root_token), method, path, body.as_ref())
    }

    /// One API call to the active node with the root token (waits for one).
    pub(crate) fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let leader = self.wait_leader(Duration::from_secs(60));
        self.root(leader, method, path, body)
    }

    /// The node whose health says active, if any.
    pub(crate) fn leader(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&n| self.nodes[n].child.is_some() && self.health(n) == 200)
    }

    /// Waits for an active node (an election after a leader was lost).
    pub(crate) fn wait_leader(&self, timeout: Duration) -> usize {
        wait_for("an active OpenBao node", timeout, || self.leader())
    }

    /// A new token with keyward's policy, written to `path` (mode 0600).
    pub(crate) fn keyward_token_file(&self, path: &Path) {
        let (status, body) = self.admin(
            "POST",
            "/v1/auth/token/create",
            Some(serde_json::json!({ "policies": ["keyward"], "period": "24h" })),
        );
        assert_eq!(status, 200, "token create: {body}");
        let token = body["auth"]["client_token"].as_str().unwrap();
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        file.write_all(format!("{token}\n").as_bytes()).unwrap();
    }

    /// The PID of node `n`'s process.
    pub(crate) fn pid(&self, n: usize) -> u32 {
        self.nodes[n].child.as_ref().unwrap().id()
    }

    /// `kill -9` of node `n` (by its PID), waited for.
    pub(crate) fn kill9(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts node `n` again on its data, unseals it, and waits until it
    /// follows a leader again.
    pub(crate) fn restart(&mut self, n: usize) {
        self.spawn(n);
        self.unseal(n);
        self.wait_unsealed(n);
    }

    /// Node `n`'s log (for failure messages).
    pub(crate) fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.nodes[n].dir.join("bao.log")).unwrap_or_default()
    }

    /// The data of `secret/<path>` (latest version) and its KV version, read
    /// on the active node.
    pub(crate) fn kv_read(&self, path: &str) -> Option<(serde_json::Value, u64)> {
        let (status, body) = self.admin("GET", &format!("/v1/secret/data/{path}"), None);
        match status {
            200 => Some((
                body["data"]["data"].clone(),
                body["data"]["metadata"]["version"].as_u64().unwrap(),
            )),
            404 => None,
            _ => panic!("read {path}: {status} {body}"),
        }
    }

    /// Writes `data` as the next version of `secret/<path>` (with `cas`).
    pub(crate) fn kv_write(&self, path: &str, data: &serde_json::Value, cas: u64) {
        let (status, body) = self.admin(
            "POST",
            &format!("/v1/secret/data/{path}"),
            Some(serde_json::json!({ "options": { "cas": cas }, "data": data })),
        );
        assert_eq!(status, 200, "write {path}: {body}");
    }

    /// `bao kv patch`: one field of the latest version changed.
    pub(crate) fn kv_patch(&self, path: &str, field: &str, value: serde_json::Value) {
        let (mut data, version) = self.kv_read(path).unwrap_or_else(|| panic!("no {path}"));
        data[field] = value;
        self.kv_write(path, &data, version);
    }

    /// `bao kv metadata delete`: every version and the metadata gone.
    pub(crate) fn kv_metadata_delete(&self, path: &str) {
        let (status, body) = self.admin("DELETE", &format!("/v1/secret/metadata/{path}"), None);
        assert_eq!(status, 204, "delete {path}: {body}");
    }

    /// Runs the `bao` command line against the active node, as root.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        let leader = self.wait_leader(Duration::from_secs(60));
        Command::new(&self.bin)
            .args(args)
            .env("BAO_ADDR", format!("http://{}", self.nodes[leader].api))
            .env("BAO_TOKEN", &self.root_token)
            .env("HOME", &self.nodes[leader].dir)
            .output()
            .unwrap()
    }
}

impl Drop for BaoCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
