//! Test helper: run a test body in a fresh child process.
//!
//! Hardening changes the whole process (dumpable flag, resource limits, locked memory)
//! and notify tests need their own environment; neither may leak into the test binary
//! that runs every other test. The test re-runs itself by name in a child with a marker
//! variable set; only the child runs the body.

use std::process::Command;

const CHILD_ENV: &str = "KEYWARD_SYSTEM_TEST_CHILD";

/// True in the child process started by [`run_in_child`].
pub(crate) fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs `body` in a child process (the same test, re-run by name) with `env` added, and
/// fails the calling test if the child's body fails.
pub(crate) fn run_in_child(env: &[(&str, &std::ffi::OsStr)], body: impl FnOnce()) {
    if is_child() {
        body();
        return;
    }
    let current = std::thread::current();
    let name = current.name().expect("a test thread has the test's name");
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = Command::new(exe);
    command
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        // The child sees only the systemd variables a test hands it.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run the test in a child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child run of {name} failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}
