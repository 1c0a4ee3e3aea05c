//! moto's server (`moto[server]` from PyPI, installed into `.venv/` by
//! `scripts/pyvenv`) on 127.0.0.1 as a local AWS Secrets Manager, killed by
//! its PID when dropped.
//!
//! Found beside the Python of `KEYWARD_PYTHON` (set by `scripts/test`), else in
//! the checkout's `.venv/`. When it is missing, [`Moto::start`] answers `None`
//! so that a developer's run skips with a message — except under `CI=true`,
//! where a missing tool is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server`.
pub(crate) struct Moto {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

/// The venv's `moto_server`, if installed.
fn moto_server() -> Option<PathBuf> {
    let python = std::env::var_os("KEYWARD_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let server = python.parent()?.join("moto_server");
    server.is_file().then_some(server)
}

/// True under CI (`CI=true`): a missing tool fails the test there.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

impl Moto {
    /// Starts a server with authentication off (any key is accepted), or
    /// `None` (after saying why) when moto is not installed outside CI.
    pub(crate) fn start() -> Option<Moto> {
        Self::start_with(&[])
    }

    /// Starts a server with extra environment (`INITIAL_NO_AUTH_ACTION_COUNT`
    /// turns signature checks on after that many requests).
    pub(crate) fn start_with(env: &[(&str, &str)]) -> Option<Moto> {
        let Some(server) = moto_server() else {
            let why = "moto's server (`moto_server`) was not found beside KEYWARD_PYTHON or in .venv/; \
                       install it with scripts/pyvenv (moto[server] from tests/backends/requirements.txt), \
                       or run ./scripts/test, which does";
            if in_ci() {
                panic!("{why}");
            }
            eprintln!("SKIPPED (not under CI): {why}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let mut command = Command::new(server);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut moto = Moto {
            child: Some(command.spawn().unwrap()),
            dir,
            port,
        };
        moto.wait_until_it_answers();
        Some(moto)
    }

    fn wait_until_it_answers(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("moto_server exited ({status}) before answering: {}", self.log());
            }
            if self.get_status("/moto-api/") == 200 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not answer within 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// The status of a plain `GET path` (0 when nothing answers).
    fn get_status(&self, path: &str) -> u16 {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return 0;
        };
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return 0;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The venv's Python (beside `moto_server`), for setup scripts.
    pub(crate) fn python(&self) -> PathBuf {
        moto_server().unwrap().with_file_name("python")
    }

    /// Writes `text` to a file in this server's directory, readable by its
    /// owner only (keyward refuses a world-readable key file).
    pub(crate) fn secret_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        write_secret(&path, text);
        path
    }

    /// Kills the server by its PID and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free on 127.0.0.1 a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A file readable by its owner only.
pub(crate) fn write_secret(path: &Path, text: &str) {
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
