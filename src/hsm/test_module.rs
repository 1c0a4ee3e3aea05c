//! A fresh token of the PKCS#11 implementation under test, each test in a
//! child process of its own, so that the HSM suite (`tests/backends/hsm_module.rs`)
//! runs unchanged against every module keyward is checked with.
//!
//! `$KEYWARD_TEST_PKCS11` chooses the implementation:
//! - `softhsm` (the default): SoftHSM2, a token directory per test;
//! - `kryoptic`: Kryoptic (a PKCS#11 token written in Rust on OpenSSL), its
//!   module at `$KEYWARD_TEST_KRYOPTIC_MODULE`, a SQLite token file per test
//!   named by `KRYOPTIC_CONF`;
//! - `opencryptoki`: openCryptoki's soft token (`pkcsslotd` running), the
//!   token in slot `$KEYWARD_TEST_OCK_SLOT` (3 by default) initialized afresh
//!   for each test with the SO PIN `$KEYWARD_TEST_OCK_SO_PIN` (a new token's
//!   `87654321` by default). There is one such token, so its tests run one at
//!   a time (`--test-threads=1`), and it is selected by slot id: its token
//!   description cannot be parsed (see `description`).
//!
//! A module that cannot be loaded fails the test, never skips it.

use std::path::PathBuf;
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::{HsmConfig, TokenSelector, provision, softhsm};
use crate::secret::SecretString;

/// Names the implementation under test.
pub const IMPLEMENTATION_ENV: &str = "KEYWARD_TEST_PKCS11";
/// Kryoptic's module.
pub const KRYOPTIC_MODULE_ENV: &str = "KEYWARD_TEST_KRYOPTIC_MODULE";
const OCK_SLOT_ENV: &str = "KEYWARD_TEST_OCK_SLOT";
const OCK_SO_PIN_ENV: &str = "KEYWARD_TEST_OCK_SO_PIN";
const OCK_MODULE_PATHS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so.0",
    "/usr/lib/x86_64-linux-gnu/libopencryptoki.so.0",
    "/usr/lib64/opencryptoki/libopencryptoki.so",
];
/// Set in a child: the test's own directory.
const CHILD_DIR_ENV: &str = "KEYWARD_TEST_TOKEN_DIR";

/// Label of tokens made for a test.
pub const TEST_TOKEN_LABEL: &str = "keyward-test";

/// The PKCS#11 implementations the HSM suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    SoftHsm2,
    Kryoptic,
    OpenCryptoki,
}

impl Implementation {
    /// The one `$KEYWARD_TEST_PKCS11` names (SoftHSM2 when unset).
    pub fn under_test() -> Result<Implementation, String> {
        match std::env::var(IMPLEMENTATION_ENV).as_deref() {
            Err(_) | Ok("softhsm") => Ok(Implementation::SoftHsm2),
            Ok("kryoptic") => Ok(Implementation::Kryoptic),
            Ok("opencryptoki") => Ok(Implementation::OpenCryptoki),
            Ok(other) => Err(format!(
                "{IMPLEMENTATION_ENV}={other:?}: expected softhsm, kryoptic or opencryptoki"
            )),
        }
    }

    fn module(self) -> Result<PathBuf, String> {
        match self {
            Implementation::SoftHsm2 => softhsm::find_module().ok_or_else(|| {
                "SoftHSM2 module not found (install softhsm2 or set KEYWARD_SOFTHSM_MODULE)".into()
            }),
            Implementation::Kryoptic => std::env::var_os(KRYOPTIC_MODULE_ENV)
                .map(PathBuf::from)
                .ok_or_else(|| format!("{KRYOPTIC_MODULE_ENV} must name Kryoptic's libkryoptic_pkcs11.so")),
            Implementation::OpenCryptoki => OCK_MODULE_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or_else(|| "openCryptoki not found (install opencryptoki)".into()),
        }
    }

    /// Whether the module's tokens are files this harness made for the test
    /// (so tests may run side by side).
    pub fn has_private_tokens(self) -> bool {
        self != Implementation::OpenCryptoki
    }
}

/// A fresh token made for one test (in the child process).
#[derive(Debug)]
pub struct TestToken {
    pub implementation: Implementation,
    pub dir: PathBuf,
    pub module: PathBuf,
    pub label: String,
    /// How the configuration selects it.
    pub selector: TokenSelector,
    pub so_pin: SecretString,
    pub user_pin: SecretString,
}

impl TestToken {
    /// An [`HsmConfig`] for this token with default pool size and timeout.
    pub fn config(&self) -> HsmConfig {
        let mut config = HsmConfig::new(self.module.clone(), self.label.clone(), self.user_pin.clone());
        config.token = self.selector.clone();
        config
    }
}

/// Run `body` against a fresh token of the implementation under test, in a
/// child process. Call it from a `#[test]` function (the child re-runs that
/// one test, found by the thread name libtest gives it). `Err` carries the
/// child's output when it failed, or why the module cannot be used.
pub fn run_isolated(body: impl FnOnce(&TestToken)) -> Result<(), String> {
    run_isolated_on(Implementation::under_test()?, body)
}

/// [`run_isolated`] on a given implementation.
pub fn run_isolated_on(implementation: Implementation, body: impl FnOnce(&TestToken)) -> Result<(), String> {
    let module = implementation.module()?;
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let token = make_token(implementation, PathBuf::from(dir), module)?;
        body(&token);
        return Ok(());
    }
    let current = std::thread::current();
    let test_name = current
        .name()
        .filter(|n| *n != "main")
        .ok_or("run_isolated must be called from a test thread")?;
    let dir = std::env::temp_dir().join(format!("keyward-token-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut child = Command::new(exe);
    child
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, &dir);
    match implementation {
        Implementation::SoftHsm2 => {
            let conf = softhsm::write_conf(&dir).map_err(|e| format!("cannot write softhsm2.conf: {e}"))?;
            child.env("SOFTHSM2_CONF", conf);
        }
        Implementation::Kryoptic => {
            let conf = dir.join("kryoptic.conf");
            let text = format!(
                "# Written by keyward's test harness: one SQLite token.\n\
                 [[slots]]\nslot = 1\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
                dir.join("token.sql").display()
            );
            std::fs::write(&conf, text).map_err(|e| format!("cannot write kryoptic.conf: {e}"))?;
            child.env("KRYOPTIC_CONF", conf);
        }
        Implementation::OpenCryptoki => {}
    }
    let output = child.output();
    let _ = std::fs::remove_dir_all(&dir);
    let output = output.map_err(|e| format!("cannot run the test in a child process: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stdout.contains("1 passed") {
        return Err(format!(
            "isolated test {test_name} ({implementation:?}) failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ));
    }
    Ok(())
}

/// Fresh PINs: 8 characters, which every module here accepts (openCryptoki's
/// soft token takes at most 8).
fn fresh_pin() -> SecretString {
    let mut pin = uuid::Uuid::new_v4().simple().to_string();
    pin.truncate(8);
    SecretString::new(pin)
}

fn make_token(implementation: Implementation, dir: PathBuf, module: PathBuf) -> Result<TestToken, String> {
    let label = TEST_TOKEN_LABEL.to_string();
    let user_pin = fresh_pin();
    let (so_pin, selector) = match implementation {
        Implementation::SoftHsm2 | Implementation::Kryoptic => {
            let so_pin = fresh_pin();
            provision::init_token(&module, &label, &so_pin, &user_pin)
                .map_err(|e| format!("cannot initialize the test token: {e}"))?;
            (so_pin, TokenSelector::by_label(label.clone()))
        }
        Implementation::OpenCryptoki => {
            let slot: u64 = match std::env::var(OCK_SLOT_ENV) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| format!("{OCK_SLOT_ENV}={v:?} is not a slot id"))?,
                Err(_) => 3,
            };
            let so_pin =
                SecretString::new(std::env::var(OCK_SO_PIN_ENV).unwrap_or_else(|_| "87654321".into()));
            reinitialize_slot(&module, slot, &label, &so_pin, &user_pin)?;
            let selector = TokenSelector {
                slot_id: Some(slot),
                ..TokenSelector::default()
            };
            (so_pin, selector)
        }
    };
    Ok(TestToken {
        implementation,
        dir,
        module,
        label,
        selector,
        so_pin,
        user_pin,
    })
}

/// `C_InitToken` on the token in `slot`, whatever it holds (it erases every
/// object), then a new user PIN. Test tokens only: keyward's own
/// `hsm init-token` never initializes a token it cannot see is empty.
fn reinitialize_slot(
    module: &std::path::Path,
    slot: u64,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<(), String> {
    refuse_a_token_in_use(slot, label)?;
    let err = |what: &str, e: cryptoki::error::Error| format!("openCryptoki test token, {what}: {e}");
    let ctx = Pkcs11::new(module).map_err(|e| err("load", e))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| err("C_Initialize", e))?;
    let slot = ctx
        .get_slots_with_token()
        .map_err(|e| err("C_GetSlotList", e))?
        .into_iter()
        .find(|s| s.id() == slot)
        .ok_or_else(|| format!("openCryptoki has no token in slot {slot} (is pkcsslotd running?)"))?;
    let result = init_in(&ctx, slot, label, so_pin, user_pin).map_err(|e| err("initialize", e));
    let _ = ctx.finalize();
    result
}

/// There is one openCryptoki soft token per machine: erase it only while it
/// is new or a test token. Its label and flags come from `pkcsconf`, which,
/// unlike cryptoki, prints a description with a malformed clock.
fn refuse_a_token_in_use(slot: u64, label: &str) -> Result<(), String> {
    let out = Command::new("pkcsconf")
        .args(["-t", "-c", &slot.to_string()])
        .output()
        .map_err(|e| format!("cannot run pkcsconf (openCryptoki's tool): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let (Some(found), Some(flags)) = (field("Label:"), field("Flags:")) else {
        return Err(format!("pkcsconf -t -c {slot} did not describe a token:\n{text}"));
    };
    if flags.contains("TOKEN_INITIALIZED") && found != label {
        return Err(format!(
            "the openCryptoki token in slot {slot} is in use (label {found:?}); the tests erase their token, \
             so they only use one that is new or labelled {label:?} (set {OCK_SLOT_ENV} to another slot)"
        ));
    }
    Ok(())
}

fn init_in(
    ctx: &Pkcs11,
    slot: Slot,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<(), cryptoki::error::Error> {
    let so = AuthPin::from(so_pin.expose());
    ctx.init_token(slot, &so, label)?;
    let session = ctx.open_rw_session(slot)?;
    session.login(UserType::So, Some(&so))?;
    session.init_pin(&AuthPin::from(user_pin.expose()))?;
    session.logout()
}
