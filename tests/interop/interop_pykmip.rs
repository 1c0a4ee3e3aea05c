//! PyKMIP's client (written elsewhere) drives a key's whole life against the
//! running server over mutual TLS, in each protocol version it speaks.

use crate::common;

use std::process::Command;

#[test]
fn pykmip_client_lifecycle_in_every_version() {
    let server = common::TestServer::start();
    let (cert, key, ca) = server.client_files();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/pykmip_lifecycle.py");
    for version in ["1.0", "1.1", "1.2", "1.3", "1.4", "2.0"] {
        let out = Command::new(common::python())
            .arg(&script)
            .args(["127.0.0.1", &server.addr.port().to_string()])
            .args([&cert, &key, &ca])
            .arg(version)
            .output()
            .expect("python runs (scripts/pyvenv makes .venv with PyKMIP)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("KMIP {version}:\n{stdout}");
        assert!(
            out.status.success() && stdout.contains("all steps passed"),
            "PyKMIP lifecycle failed in KMIP {version}:\n{stdout}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log()
        );
    }
}
