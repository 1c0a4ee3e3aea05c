//! Several keyward nodes on 127.0.0.1 sharing one OpenBao store (a
//! [`BaoCluster`]), each through its own [`FaultProxy`] so that a test can cut
//! one node from the store, slow it down or make it fail.
//!
//! One root key across nodes (issue 9 item 6): in production every node logs
//! in to the same network HSM. **Test-only:** here `scripts/dev-env` makes one
//! SoftHSM token (with the root key), one development PKI and one client trust
//! folder; the environment is copied to every node before any of them starts,
//! so every node presents the same server certificate and trusts the same
//! clients, and every node opens the same root key. Two ways to give the
//! nodes the token ([`Token`]):
//!
//! - [`Token::Shared`] (the default, [`KeywardCluster::start`]): one token
//!   directory (moved out of the first node's environment into the cluster's
//!   own folder) that every node's `softhsm2.conf` names, the closest local
//!   stand-in for a network HSM every node logs in to. SoftHSM2 (2.6.1 here)
//!   lets several processes use one token directory: a running process finds
//!   an object another process created at its next search, as SoftHSM keeps
//!   track of changes to the token's files. `tests/cluster/rotation.rs` shows
//!   it: the running nodes find the root key `keyward root rotate` (another
//!   process) created and seal under it.
//! - [`Token::Copies`] ([`KeywardCluster::start_with_token`]): each node its
//!   own copy. The nodes share CRK 1 but nothing made later: a root key that
//!   `keyward root rotate` creates on one node exists in that node's copy only,
//!   so the other nodes never follow a rotation.
//!
//! Neither a copied nor a shared SoftHSM token is a way to run keyward in
//! production.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::bao_cluster::BaoCluster;
use super::fault_proxy::FaultProxy;
use super::kmip_client::ClientTls;
use super::vcenter::Vcenter;
use super::{TestServer, keyward_bin, repo};

/// One keyward node and the proxy between it and the store.
pub(crate) struct KeywardNode {
    pub server: TestServer,
    pub proxy: FaultProxy,
}

/// How the nodes get the SoftHSM token (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// One token directory every node uses (a network HSM's stand-in).
    Shared,
    /// Each node a copy of the first node's token.
    Copies,
}

pub(crate) struct KeywardCluster {
    pub nodes: Vec<KeywardNode>,
    /// The store prefix (folder under the `secret` mount) of these nodes.
    pub prefix: String,
    /// The shared token's folder ([`Token::Shared`]); declared after `nodes`
    /// so that it outlives every node process.
    shared_token: Option<tempfile::TempDir>,
}

/// Runs `scripts/dev-env` into `env` (token, root key, PKI, trust, config).
fn dev_env(env: &Path) {
    let status = Command::new(repo().join("scripts/dev-env"))
        .arg(env)
        .args(["--listen", "127.0.0.1:0"])
        .env("KEYWARD_BIN", keyward_bin())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/dev-env failed");
}

/// Copies a folder, files keeping their permissions (PIN files stay 0600).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Makes a node's `softhsm2.conf` name `tokens` as its token directory
/// (`made_in` is the one `scripts/dev-env` wrote into it).
fn point_at_token(conf: &Path, made_in: &Path, tokens: &Path) {
    let text = std::fs::read_to_string(conf).unwrap();
    let line = |dir: &Path| format!("directories.tokendir = {}\n", dir.display());
    assert!(text.contains(&line(made_in)), "{text}");
    std::fs::write(conf, text.replace(&line(made_in), &line(tokens))).unwrap();
}

/// Replaces the `[store]` section of a dev-env configuration.
pub(crate) fn set_store_section(text: &mut String, section: &str) {
    let start = text.find("[store]").unwrap();
    let end = text[start + 1..]
        .find("\n[")
        .map_or(text.len(), |i| start + 2 + i);
    text.replace_range(start..end, &format!("{section}\n"));
}

impl KeywardCluster {
    /// Starts `n` nodes over `bao`, records under `prefix` (must start with
    /// `cluster`: keyward's token policy covers those). Each node has its own
    /// index (`[cluster] index = "index.db"` beside its configuration), to
    /// which `cluster_settings` adds lines (e.g. `"sync_interval = 2\n"`), an
    /// audit file (`audit.log`) and a proxy routing to OpenBao's active node.
    /// Every node logs in to one SoftHSM token ([`Token::Shared`]).
    pub(crate) fn start(bao: &BaoCluster, n: usize, prefix: &str, cluster_settings: &str) -> KeywardCluster {
        Self::start_with_token(bao, n, prefix, cluster_settings, Token::Shared)
    }

    /// Like [`KeywardCluster::start`], choosing how the nodes get the SoftHSM
    /// token ([`Token::Copies`]: a root key made later is on one node only).
    pub(crate) fn start_with_token(
        bao: &BaoCluster,
        n: usize,
        prefix: &str,
        cluster_settings: &str,
        token: Token,
    ) -> KeywardCluster {
        assert!(
            prefix.starts_with("cluster"),
            "the token policy covers cluster* only"
        );
        let first = tempfile::tempdir().unwrap();
        dev_env(&first.path().join("env"));
        let made_in = first.path().join("env/softhsm/tokens");
        let shared_token = (token == Token::Shared).then(|| {
            // Test-only: the token leaves the first node's environment for a
            // folder of the cluster's own, which every node's conf names.
            let shared = tempfile::tempdir().unwrap();
            std::fs::rename(&made_in, shared.path().join("tokens")).unwrap();
            shared
        });
        let mut dirs = vec![first];
        for _ in 1..n {
            let dir = tempfile::tempdir().unwrap();
            // Test-only: the same SoftHSM token (same root key) on every node.
            copy_dir(&dirs[0].path().join("env"), &dir.path().join("env"));
            dirs.push(dir);
        }
        for dir in &dirs {
            let tokens = match &shared_token {
                Some(shared) => shared.path().join("tokens"),
                None => dir.path().join("env/softhsm/tokens"),
            };
            point_at_token(&dir.path().join("env/softhsm/softhsm2.conf"), &made_in, &tokens);
        }
        let nodes = dirs
            .into_iter()
            .map(|dir| {
                let env = dir.path().join("env");
                let proxy = FaultProxy::start(bao.address(0));
                proxy.route_by_health(bao.addresses(), "/v1/sys/health");
                bao.keyward_token_file(&env.join("bao.token"));
                let config = env.join("keyward.toml");
                let mut text = std::fs::read_to_string(&config).unwrap();
                set_store_section(
                    &mut text,
                    &format!(
                        "[store]\nkind = \"openbao\"\naddress = \"{}\"\nprefix = \"{prefix}\"\n\
                         token_file = \"bao.token\"\ntimeout = 5\n",
                        proxy.url()
                    ),
                );
                super::admin::with_audit_file(&mut text);
                text.push_str(&format!("\n[cluster]\nindex = \"index.db\"\n{cluster_settings}"));
                std::fs::write(&config, text).unwrap();
                let mut server = TestServer {
                    dir,
                    addr: "127.0.0.1:0".parse().unwrap(),
                    metrics_addr: None,
                    child: None,
                    stderr_log: PathBuf::new(),
                };
                server.spawn();
                KeywardNode { server, proxy }
            })
            .collect();
        KeywardCluster {
            nodes,
            prefix: prefix.to_owned(),
            shared_token,
        }
    }

    /// How the nodes got the SoftHSM token.
    pub(crate) fn token(&self) -> Token {
        match self.shared_token {
            Some(_) => Token::Shared,
            None => Token::Copies,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn server(&self, i: usize) -> &TestServer {
        &self.nodes[i].server
    }

    pub(crate) fn proxy(&self, i: usize) -> &FaultProxy {
        &self.nodes[i].proxy
    }

    /// The development client's TLS settings (trusted by every node).
    pub(crate) fn tls(&self) -> ClientTls {
        self.nodes[0].server.client_tls()
    }

    /// A vCenter talking to node `i`.
    pub(crate) fn vcenter(&self, i: usize) -> Vcenter {
        Vcenter::new(self.nodes[i].server.addr, self.tls())
    }

    /// `keyward clients issue NAME --group GROUP` on node 0, its trust file
    /// copied into every other node's `clients_dir` (the trust folder is per
    /// node); returns the client's TLS settings once every node trusts it.
    pub(crate) fn issue_client(&self, name: &str, group: &str) -> ClientTls {
        let tls = super::admin::issue_client(&self.nodes[0].server, name, group, &[]);
        let from = self.nodes[0].server.path("clients");
        for node in &self.nodes[1..] {
            copy_dir(&from, &node.server.path("clients"));
            super::admin::wait_trusted(node.server.addr, &tls);
        }
        tls
    }

    /// `kill -9` of node `i` (by its PID).
    pub(crate) fn kill9(&mut self, i: usize) {
        self.nodes[i].server.kill9();
    }

    /// Starts node `i` again (same configuration, same token); its KMIP
    /// address changes (127.0.0.1:0).
    pub(crate) fn restart(&mut self, i: usize) {
        self.nodes[i].server.spawn();
    }

    /// Node `i`'s audit file once it satisfies `wanted` (polled, 10 s).
    pub(crate) fn audit_once(&self, i: usize, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        super::admin::audit_file_once(&self.nodes[i].server, what, wanted)
    }

    /// The store path of a record (`<prefix>/<uid>` under the mount).
    pub(crate) fn record_path(&self, uid: &str) -> String {
        format!("{}/{uid}", self.prefix)
    }
}

/// How long a step may take on a loaded 2-core machine before a test calls it hung.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);
