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

/// Overrides where the SoftHSM2 module is looked for.
pub const MODULE_ENV: &str = "KEYWARD_SOFTHSM_MODULE";

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

pub use super::test_module::{TEST_TOKEN_LABEL, TestToken};

/// Run `body` against a fresh SoftHSM token in a child process: for tests of
/// SoftHSM's own behaviour. The HSM suite that every module must pass uses
/// [`super::test_module::run_isolated`].
///
/// Call it from a `#[test]` function (it finds the test by its thread name,
/// which libtest sets to the test's path). SoftHSM missing is a failure: tests
/// must fail, not skip, when the HSM cannot be loaded.
pub fn run_isolated(body: impl FnOnce(&TestToken)) -> Result<(), String> {
    super::test_module::run_isolated_on(super::test_module::Implementation::SoftHsm2, body)
}
