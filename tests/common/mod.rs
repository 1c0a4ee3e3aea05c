//! Test harness: a real keyward process on 127.0.0.1:0 with its own SoftHSM
//! token, root key, development PKI and SQLite store, made by the same
//! `scripts/dev-env` an administrator's quick start runs.
// Test support: a failure here is a failed test, so panicking is the point.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub(crate) mod admin;
pub(crate) mod bao_cluster;
pub(crate) mod cluster;
pub(crate) mod fault_proxy;
pub(crate) mod keyprotect_fake;
#[path = "../support/kmip_client.rs"]
pub(crate) mod kmip_client;
pub(crate) mod load;
pub(crate) mod moto;
pub(crate) mod vcenter;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kmip_client::{Client, ClientTls};

pub(crate) struct TestServer {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// The metrics and health listener (`[metrics] listen` in the dev config).
    pub metrics_addr: Option<SocketAddr>,
    child: Option<Child>,
    stderr_log: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn keyward_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keyward"))
}

impl TestServer {
    /// Prepares a fresh environment and starts the server.
    pub(crate) fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    /// Like [`TestServer::start`], letting the test edit `keyward.toml` (e.g. a short
    /// `read_timeout` under `[server]`) before the server first starts.
    pub(crate) fn start_with(edit_config: impl FnOnce(&mut String)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        let status = Command::new(repo().join("scripts/dev-env"))
            .arg(&env)
            .args(["--listen", "127.0.0.1:0"])
            .env("KEYWARD_BIN", keyward_bin())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/dev-env failed");
        let config = env.join("keyward.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        edit_config(&mut text);
        std::fs::write(&config, text).unwrap();
        let mut server = TestServer {
            dir,
            addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: None,
            child: None,
            stderr_log: PathBuf::new(),
        };
        server.spawn();
        server
    }

    pub(crate) fn env_dir(&self) -> PathBuf {
        self.dir.path().join("env")
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.env_dir().join(rel)
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.path("keyward.toml")
    }

    /// Runs a `keyward` subcommand against this environment (HSM env set).
    pub(crate) fn keyward(&self, args: &[&str]) -> std::process::Output {
        Command::new(keyward_bin())
            .args(args)
            .env("SOFTHSM2_CONF", self.path("softhsm/softhsm2.conf"))
            .output()
            .unwrap()
    }

    /// Starts (or restarts) the server process and waits for its address.
    pub(crate) fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.stderr_log = self
            .dir
            .path()
            .join(format!("serve-{}.log", Instant::now().elapsed().as_nanos()));
        let log = std::fs::File::create(&self.stderr_log).unwrap();
        let mut child = Command::new(keyward_bin())
            .args(["serve", "--config"])
            .arg(self.config())
            .env("SOFTHSM2_CONF", self.path("softhsm/softhsm2.conf"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The metrics line comes first when there is one.
                if let Some(url) = line.strip_prefix("keyward: metrics on http://") {
                    let _ = tx.send(("metrics", url.trim_end_matches("/metrics").to_owned()));
                }
                if let Some(addr) = line.strip_prefix("keyward: listening on ") {
                    let _ = tx.send(("kmip", addr.trim().to_owned()));
                }
            }
        });
        let mut metrics_addr = None;
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(("metrics", addr)) => metrics_addr = Some(addr.parse().unwrap()),
                Ok((_, addr)) => break Ok(addr),
                Err(e) => break Err(e),
            }
        };
        let addr = addr.unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "server did not start: {}",
                std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
            )
        });
        self.addr = addr.parse().unwrap();
        self.metrics_addr = metrics_addr;
        self.child = Some(child);
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `kill -9`: no drain, no flush.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        self.child = None;
        status
    }

    /// Waits for the process to exit by itself (after a signal sent with
    /// [`TestServer::signal`]); panics if it is still running after `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server still running after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
    }

    /// Whether the process is still alive.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// A field of `/proc/<pid>/status` (e.g. `VmRSS` in kB, `Threads`), as a number.
    pub(crate) fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Open sockets of the server process (listeners and connections).
    pub(crate) fn open_sockets(&self) -> usize {
        self.fd_targets()
            .iter()
            .filter(|t| t.starts_with("socket:"))
            .count()
    }

    /// What each open descriptor of the server points to (for failure messages).
    pub(crate) fn fd_targets(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .collect();
        out.sort();
        out
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// TLS settings of the development client certificate.
    pub(crate) fn client_tls(&self) -> ClientTls {
        ClientTls::from_pem_files(
            &self.path("pki/ca.pem"),
            &self.path("pki/client.pem"),
            &self.path("pki/client.key"),
        )
        .unwrap()
    }

    pub(crate) async fn client(&self) -> Client {
        Client::connect(self.addr, &self.client_tls()).await.unwrap()
    }

    pub(crate) fn client_files(&self) -> (PathBuf, PathBuf, PathBuf) {
        (
            self.path("pki/client.pem"),
            self.path("pki/client.key"),
            self.path("pki/ca.pem"),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Python that runs the interop clients: `KEYWARD_PYTHON` (set by
/// `scripts/test`), else the checkout's virtual environment `.venv/` made by
/// `scripts/pyvenv`, else `python3` from the PATH.
pub(crate) fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYWARD_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join(".venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Where the OASIS KMIP XML test cases are: `tests/data/kmip-test-cases` in the
/// repository, or wherever `KEYWARD_KMIP_TEST_CASES` points.
pub(crate) fn kmip_test_cases() -> PathBuf {
    if let Ok(p) = std::env::var("KEYWARD_KMIP_TEST_CASES") {
        return PathBuf::from(p);
    }
    let p = repo().join("tests/data/kmip-test-cases");
    assert!(
        p.is_dir(),
        "OASIS test cases not found at {} (set KEYWARD_KMIP_TEST_CASES)",
        p.display()
    );
    p
}
