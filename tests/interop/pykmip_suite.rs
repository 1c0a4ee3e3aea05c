//! PyKMIP 0.11's own integration suite (`kmip/tests/integration` from its
//! source distribution, fetched by `scripts/pyvenv`) run against the server
//! over mutual TLS, with a client identity of its own: the suite's teardown
//! destroys everything that identity can see.
//!
//! Every test passes except those listed, each with its reason, in
//! `pykmip_suite_expected.txt`; a listed test that passes fails this test too,
//! so the list stays true.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const SUITE_FILES: [&str; 2] = ["test_integration.py", "test_proxykmipclient.py"];

/// The unpacked sdist: `KEYWARD_PYKMIP_SDIST`, else beside the venv whose
/// python runs the interop clients.
fn sdist() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYWARD_PYKMIP_SDIST") {
        return PathBuf::from(p);
    }
    let python = common::python();
    let venv = python
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    venv.join("pykmip-sdist/pykmip-0.11.0")
}

/// `test id -> (kind, reason)` from the expectations file.
fn expected_failures() -> BTreeMap<String, (String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pykmip_suite_expected.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.splitn(3, " | ");
            let id = parts.next().unwrap().trim().to_owned();
            let kind = parts.next().expect("FILE::CLASS::TEST | kind | reason").trim();
            let reason = parts.next().expect("FILE::CLASS::TEST | kind | reason").trim();
            assert!(
                ["not-offered", "choice", "refused"].contains(&kind),
                "unknown kind {kind} in {l}"
            );
            (id, (kind.to_owned(), reason.to_owned()))
        })
        .collect()
}

/// `test id -> passed` from pytest's `-rA` summary lines.
fn outcomes(stdout: &str) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for line in stdout.lines() {
        let (passed, rest) = if let Some(rest) = line.strip_prefix("PASSED ") {
            (true, rest)
        } else if let Some(rest) = line
            .strip_prefix("FAILED ")
            .or_else(|| line.strip_prefix("ERROR "))
        {
            (false, rest)
        } else {
            continue;
        };
        let id = rest.split(" - ").next().unwrap_or(rest).trim();
        // Captured log lines also start with ERROR; results name a test.
        if !id.contains(".py::") {
            continue;
        }
        let id = id.rsplit('/').next().unwrap_or(id).to_owned();
        // A teardown error after a pass makes the test a failure.
        let entry = out.entry(id).or_insert(passed);
        *entry &= passed;
    }
    out
}

#[test]
fn pykmip_integration_suite() {
    let suite = sdist().join("kmip/tests/integration");
    assert!(
        suite.join("conftest.py").is_file(),
        "PyKMIP's integration suite is not at {} (scripts/pyvenv fetches it)",
        suite.display()
    );
    let server = common::TestServer::start();
    // Issued into env/issued/, trusted once the server answers it.
    common::admin::issue_client(&server, "pykmip-suite", "pykmip-suite", &[]);
    let tls_dir = server.path("issued");

    // PyKMIP reads its client settings from ~/.pykmip/pykmip.conf.
    let home = server.path("pykmip-home");
    std::fs::create_dir_all(home.join(".pykmip")).unwrap();
    std::fs::write(
        home.join(".pykmip/pykmip.conf"),
        format!(
            "[client]\nhost=127.0.0.1\nport={}\ncertfile={}\nkeyfile={}\nca_certs={}\n\
             cert_reqs=CERT_REQUIRED\nssl_version=PROTOCOL_SSLv23\n\
             do_handshake_on_connect=True\nsuppress_ragged_eofs=True\n",
            server.addr.port(),
            tls_dir.join("pykmip-suite.pem").display(),
            tls_dir.join("pykmip-suite.key").display(),
            server.path("pki/ca.pem").display(),
        ),
    )
    .unwrap();
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let files: Vec<String> = SUITE_FILES
        .iter()
        .map(|f| suite.join("services").join(f).display().to_string())
        .collect();
    // pykmip_compat makes PyKMIP run on Python 3.12+ (ssl.wrap_socket).
    let runner = format!(
        "import sys; sys.path.insert(0, {interop:?}); import pykmip_compat; import pytest; \
         sys.exit(pytest.main({files:?} + ['-p', 'no:cacheprovider', '-q', '-rA', '--color=no']))",
        interop = interop.display().to_string(),
    );
    let out = Command::new(common::python())
        .args(["-c", &runner])
        .env("HOME", &home)
        .current_dir(sdist())
        .output()
        .expect("python runs (scripts/pyvenv makes .venv with PyKMIP and pytest)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got = outcomes(&stdout);
    let expected = expected_failures();

    let mut table = String::new();
    let mut wrong = Vec::new();
    for (id, passed) in &got {
        let listed = expected.get(id);
        let line = match (passed, listed) {
            (true, None) => format!("pass          {id}"),
            (false, Some((kind, _))) => format!("fail ({kind:<11}) {id}"),
            (false, None) => {
                wrong.push(format!("{id} failed and is not in pykmip_suite_expected.txt"));
                format!("FAIL          {id}")
            }
            (true, Some(_)) => {
                wrong.push(format!("{id} passes: remove it from pykmip_suite_expected.txt"));
                format!("PASS (listed) {id}")
            }
        };
        table.push_str(&line);
        table.push('\n');
    }
    for id in expected.keys().filter(|id| !got.contains_key(*id)) {
        wrong.push(format!("{id} is listed but did not run"));
    }
    let passed = got.values().filter(|p| **p).count();
    println!(
        "PyKMIP integration suite: {passed} of {} passed\n{table}",
        got.len()
    );
    assert!(
        got.len() >= 37,
        "the suite ran {} tests, expected 37:\n{stdout}\n{}",
        got.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wrong.is_empty(),
        "{}\n\n{table}\npytest output:\n{stdout}\nserver log:\n{}",
        wrong.join("\n"),
        server.log()
    );
}
