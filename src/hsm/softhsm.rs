//! SoftHSM2 helpers: locate the module, write a private `softhsm2.conf`, and
//! run a test in a child process bound to a fresh token.
//!
//! SoftHSM reads its configuration from the `SOFTHSM2_CONF` environment
//! variable once per `C_Initialize`. Environment variables are process-wide
//! (and setting one is `unsafe` in Rust 2024, which this crate forbids), so
//! [`run_isolated`] re-runs the calling test in a child process with the
//! variable set: every test gets its own token directory and its own process,
//! and tests can run in parallel.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{HsmConfig, provision};
use crate::secret::SecretString;

/// Set in a child started by [`run_isolated`]: the token directory.
const CHILD_DIR_ENV: &str = "KEYWARD_SOFTHSM_TEST_DIR";

/// Overrides where the SoftHSM2 module is looked for.
pub const MODULE_ENV: &str = "KEYWARD_SOFTHSM_MODULE";

/// Label of tokens made by [`run_isolated`].
pub const TEST_TOKEN_LABEL: &str = "keyward-test";

const KNOWN_MODULE_PATHS: [&str; 5] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// The SoftHSM2 module: `$KEYWARD_SOFTHSM_MODULE`, else the first usual path that exists.
pub fn find_module() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(MODULE_ENV) {
        return Some(PathBuf::from(path));
    }
    KNOWN_MODULE_PATHS.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Write `<dir>/softhsm2.conf` with its token directory `<dir>/tokens`
/// (file object store). Returns the conf path.
pub fn write_conf(dir: &Path) -> std::io::Result<PathBuf> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    let text = format!(
        "# Written by keyward: a private SoftHSM2 configuration.\n\
         directories.tokendir = {}\n\
         objectstore.backend = file\n\
         log.level = ERROR\n\
         slots.removable = false\n",
        tokens.display()
    );
    std::fs::write(&conf, text)?;
    Ok(conf)
}

/// A fresh token made for one test (in the child process).
#[derive(Debug)]
pub struct TestToken {
    pub dir: PathBuf,
    pub module: PathBuf,
    pub label: String,
    pub so_pin: SecretString,
    pub user_pin: SecretString,
}

impl TestToken {
    /// An [`HsmConfig`] for this token with default pool size and timeout.
    pub fn config(&self) -> HsmConfig {
        HsmConfig::new(self.module.clone(), self.label.clone(), self.user_pin.clone())
    }
}

/// Run `body` against a fresh SoftHSM token in a child process.
///
/// Call it from a `#[test]` function (it finds the test by its thread name,
/// which libtest sets to the test's path). In the parent it writes a private
/// conf, re-runs this one test with `SOFTHSM2_CONF` pointing at it, and returns
/// `Err` with the child's output if the child failed — or if SoftHSM is
/// missing: tests must fail, not skip, when the HSM cannot be loaded.
pub fn run_isolated(body: impl FnOnce(&TestToken)) -> Result<(), String> {
    let module =
        find_module().ok_or("SoftHSM2 module not found (install softhsm2 or set KEYWARD_SOFTHSM_MODULE)")?;
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let token = TestToken {
            dir: PathBuf::from(dir),
            module,
            label: TEST_TOKEN_LABEL.to_string(),
            so_pin: SecretString::new(uuid::Uuid::new_v4().simple().to_string()),
            user_pin: SecretString::new(uuid::Uuid::new_v4().simple().to_string()),
        };
        provision::init_token(&token.module, &token.label, &token.so_pin, &token.user_pin)
            .map_err(|e| format!("cannot initialize the test token: {e}"))?;
        body(&token);
        return Ok(());
    }
    let current = std::thread::current();
    let test_name = current
        .name()
        .filter(|n| *n != "main")
        .ok_or("run_isolated must be called from a test thread")?;
    let dir = std::env::temp_dir().join(format!("keyward-softhsm-{}", uuid::Uuid::new_v4().simple()));
    let conf = write_conf(&dir).map_err(|e| format!("cannot write softhsm2.conf: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let output = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_DIR_ENV, &dir)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let output = output.map_err(|e| format!("cannot run the test in a child process: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stdout.contains("1 passed") {
        return Err(format!(
            "isolated test {test_name} failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ));
    }
    Ok(())
}
