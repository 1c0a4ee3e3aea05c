use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use super::*;
use crate::system::child::run_in_child;

fn is_root() -> bool {
    getuid().is_root() || geteuid().is_root()
}

/// CAP_IPC_LOCK (bit 14) in this thread's effective set (capabilities are per thread),
/// read independently of the code under test.
fn cap_ipc_lock_in_status() -> bool {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap() & (1 << 14) != 0
}

/// Drops CAP_IPC_LOCK from the effective set (tests run as root on CI machines), so the
/// memlock limit binds as it does for the `keyward` service user.
fn drop_cap_ipc_lock() {
    use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
    let mut sets = capabilities(None).unwrap();
    sets.effective.remove(CapabilitySet::IPC_LOCK);
    set_capabilities(None, sets).unwrap();
    assert!(!cap_ipc_lock_in_status());
}

fn allow_root() -> HardeningOptions {
    HardeningOptions {
        allow_root: true,
        ..HardeningOptions::default()
    }
}

fn set_soft_memlock(bytes: u64) {
    let hard = getrlimit(Resource::Memlock).maximum;
    setrlimit(
        Resource::Memlock,
        Rlimit {
            current: Some(bytes),
            maximum: hard,
        },
    )
    .unwrap();
}

#[test]
fn apply_makes_the_process_undumpable_with_no_core_limit() {
    run_in_child(&[], || {
        assert!(is_dumpable().unwrap(), "a fresh process starts dumpable");
        let report = apply(&allow_root()).unwrap();
        assert_eq!(report.not_dumpable, Measure::Applied);
        assert_eq!(report.core_limit_zero, Measure::Applied);
        assert!(report.core_dumps_prevented());
        assert!(!is_dumpable().unwrap());
        let core = getrlimit(Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
        assert_eq!(report.running_as_root, is_root());
    });
}

#[test]
fn root_is_refused_unless_allowed() {
    run_in_child(&[], || {
        let result = apply(&HardeningOptions::default());
        if is_root() {
            assert_eq!(result, Err(HardeningError::RunningAsRoot));
            // Nothing was changed before the refusal.
            assert!(is_dumpable().unwrap());
        } else {
            assert!(!result.unwrap().running_as_root);
        }
    });
}

#[test]
fn memory_lock_is_skipped_under_a_low_memlock_limit() {
    run_in_child(&[], || {
        drop_cap_ipc_lock();
        set_soft_memlock(64 * 1024);
        let report = apply(&allow_root()).unwrap();
        assert_eq!(
            report.memory_locked,
            Measure::Skipped(SkipReason::MemlockLimitTooLow {
                limit: 64 * 1024,
                wanted: DEFAULT_MIN_MEMLOCK_BYTES
            })
        );
        // The other measures do not depend on it.
        assert!(report.core_dumps_prevented());
        assert!(report.to_string().contains("LimitMEMLOCK"));
    });
}

#[test]
fn memory_lock_refusal_is_reported_with_its_errno() {
    run_in_child(&[], || {
        // Forced past the safety check: the kernel must refuse to lock this process's
        // mappings (several MiB) within 64 KiB.
        drop_cap_ipc_lock();
        set_soft_memlock(64 * 1024);
        let options = HardeningOptions {
            min_memlock_bytes: 0,
            ..allow_root()
        };
        let report = apply(&options).unwrap();
        let enomem = OsRefusal {
            errno: rustix::io::Errno::NOMEM.raw_os_error(),
        };
        assert_eq!(report.memory_locked, Measure::Refused(enomem));
        assert!(report.to_string().contains("refused by the OS"));
    });
}

#[test]
fn memory_is_locked_when_the_limit_allows() {
    run_in_child(&[], || {
        let hard = getrlimit(Resource::Memlock).maximum;
        setrlimit(
            Resource::Memlock,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        )
        .unwrap();
        let report = apply(&allow_root()).unwrap();
        let enough = hard.is_none_or(|h| h >= DEFAULT_MIN_MEMLOCK_BYTES);
        if !enough && !cap_ipc_lock_in_status() {
            assert!(matches!(report.memory_locked, Measure::Skipped(_)));
            return;
        }
        assert_eq!(report.memory_locked, Measure::Applied);
        // A page touched after the call is locked too (MCL_FUTURE | MCL_ONFAULT).
        let buffer = vec![7u8; 4 << 20];
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let locked_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        assert!(locked_kb >= 4096, "VmLck {locked_kb} kB");
        drop(buffer);
    });
}

#[test]
fn lock_memory_can_be_disabled() {
    run_in_child(&[], || {
        let options = HardeningOptions {
            lock_memory: false,
            ..allow_root()
        };
        let report = apply(&options).unwrap();
        assert_eq!(report.memory_locked, Measure::Skipped(SkipReason::Disabled));
    });
}
