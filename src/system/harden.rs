//! Process hardening applied once at start-up, before any key material exists.
//!
//! DESIGN §5: the process cannot dump core and its key pages are not swapped where the
//! OS allows. Three measures, each reported rather than logged (this module has no
//! logger; `keyward serve` logs the [`HardeningReport`]):
//!
//! - `prctl(PR_SET_DUMPABLE, 0)`: no core file and no `ptrace` attach by other processes
//!   of the same user, and `/proc/<pid>/mem` becomes root-only.
//! - `RLIMIT_CORE` soft and hard limits 0: a core dump is refused even if something later
//!   makes the process dumpable again (the hard limit cannot be raised back without
//!   privileges).
//! - `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`: every page, including the heap
//!   pages that will hold plaintext KEKs, stays in RAM. `MCL_ONFAULT` locks pages when
//!   they are first touched instead of populating every mapping up front, so reserved but
//!   unused thread stacks and allocator arenas cost no RAM.
//!
//! `mlockall` has a sharp edge: with `MCL_FUTURE`, every later `mmap` (thread stacks,
//! allocator arenas, large allocations) counts its *whole length* against
//! `RLIMIT_MEMLOCK`, and fails once the limit is reached — an allocation failure aborts
//! a Rust process. So memory is locked only when the soft limit is unlimited or at least
//! [`HardeningOptions::min_memlock_bytes`]; below that, locking is skipped and reported
//! (the systemd unit sets `LimitMEMLOCK=` accordingly).

use std::fmt;
use std::io;

use rustix::mm::{MlockAllFlags, mlockall};
use rustix::process::{
    DumpableBehavior, Resource, Rlimit, dumpable_behavior, geteuid, getrlimit, getuid, set_dumpable_behavior,
    setrlimit,
};
use rustix::thread::{CapabilitySet, capabilities};

/// Default least `RLIMIT_MEMLOCK` under which memory is locked (4 GiB).
///
/// The server maps about 2 GiB of address space (thread stacks, the C libraries' malloc
/// arenas, the binary and its libraries, and mimalloc, which reserves address space 1 GiB
/// at a time); every byte of it counts against the limit once `MCL_FUTURE` is set, and
/// the next reservation must fit too.
pub const DEFAULT_MIN_MEMLOCK_BYTES: u64 = 4 << 30;

/// What [`apply`] should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardeningOptions {
    /// Run even with user id 0. Off by default: the server needs no privilege, and a
    /// root process holding keys is one bug away from the whole machine.
    pub allow_root: bool,
    /// Try to lock all memory (`mlockall`).
    pub lock_memory: bool,
    /// Skip `mlockall` when the soft `RLIMIT_MEMLOCK` is below this many bytes (see the
    /// module documentation for why a low limit is worse than no lock).
    pub min_memlock_bytes: u64,
}

impl Default for HardeningOptions {
    fn default() -> Self {
        HardeningOptions {
            allow_root: false,
            lock_memory: true,
            min_memlock_bytes: DEFAULT_MIN_MEMLOCK_BYTES,
        }
    }
}

/// The result of one measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    /// In force.
    Applied,
    /// The OS refused; the `errno` name and number (e.g. `EPERM`, `ENOMEM`).
    Refused(OsRefusal),
    /// Deliberately not attempted, with the reason.
    Skipped(SkipReason),
}

impl Measure {
    pub fn is_applied(&self) -> bool {
        matches!(self, Measure::Applied)
    }
}

/// An OS error code, kept as a number so the report stays `Eq` and cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsRefusal {
    pub errno: i32,
}

impl OsRefusal {
    fn from_errno(e: rustix::io::Errno) -> Self {
        OsRefusal {
            errno: e.raw_os_error(),
        }
    }
}

impl fmt::Display for OsRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std knows the message text (e.g. "Operation not permitted (os error 1)").
        write!(f, "{}", io::Error::from_raw_os_error(self.errno))
    }
}

/// Why a measure was not attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// [`HardeningOptions::lock_memory`] is off.
    Disabled,
    /// The soft `RLIMIT_MEMLOCK` (bytes) is below [`HardeningOptions::min_memlock_bytes`].
    MemlockLimitTooLow { limit: u64, wanted: u64 },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Disabled => f.write_str("disabled by configuration"),
            SkipReason::MemlockLimitTooLow { limit, wanted } => write!(
                f,
                "RLIMIT_MEMLOCK is {limit} bytes, below the {wanted} bytes needed to lock \
                 future allocations safely (raise LimitMEMLOCK=)"
            ),
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measure::Applied => f.write_str("applied"),
            Measure::Refused(why) => write!(f, "refused by the OS: {why}"),
            Measure::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

/// What [`apply`] did, measure by measure. Safe to log (no secrets in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardeningReport {
    /// `prctl(PR_SET_DUMPABLE, 0)`.
    pub not_dumpable: Measure,
    /// `RLIMIT_CORE` = 0 (soft and hard).
    pub core_limit_zero: Measure,
    /// `mlockall`.
    pub memory_locked: Measure,
    /// The process runs with user id 0 (only possible with `allow_root`).
    pub running_as_root: bool,
}

impl HardeningReport {
    /// Core dumps are impossible: at least one of the two measures holds. A caller
    /// should refuse to serve keys when this is false.
    pub fn core_dumps_prevented(&self) -> bool {
        self.not_dumpable.is_applied() || self.core_limit_zero.is_applied()
    }
}

impl fmt::Display for HardeningReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not dumpable: {}; core limit 0: {}; memory locked: {}",
            self.not_dumpable, self.core_limit_zero, self.memory_locked
        )?;
        if self.running_as_root {
            f.write_str("; running as root (allowed by configuration)")?;
        }
        Ok(())
    }
}

/// Why the process must not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HardeningError {
    /// Real or effective user id is 0 and `allow_root` is off.
    RunningAsRoot,
}

impl fmt::Display for HardeningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HardeningError::RunningAsRoot => f.write_str(
                "refusing to run as root: start keyward as its own user (the systemd unit \
                 does), or set `allow_root = true` in the `[process]` section of the configuration",
            ),
        }
    }
}

impl std::error::Error for HardeningError {}

/// Applies every measure to the calling process and reports what held.
///
/// Call it first thing in `main`, before threads are started and before any key exists:
/// `MCL_CURRENT` locks what is already mapped, and no core dump can hold a key that was
/// not yet created. Returns an error only for the root check; OS refusals are in the
/// report for the caller to log (and to act on, see
/// [`HardeningReport::core_dumps_prevented`]).
pub fn apply(options: &HardeningOptions) -> Result<HardeningReport, HardeningError> {
    let running_as_root = getuid().is_root() || geteuid().is_root();
    if running_as_root && !options.allow_root {
        return Err(HardeningError::RunningAsRoot);
    }
    Ok(HardeningReport {
        not_dumpable: disable_dumpable(),
        core_limit_zero: zero_core_limit(),
        memory_locked: lock_memory(options),
        running_as_root,
    })
}

/// Whether the process is currently dumpable (`prctl(PR_GET_DUMPABLE)`).
pub fn is_dumpable() -> io::Result<bool> {
    let behavior = dumpable_behavior().map_err(io::Error::from)?;
    Ok(behavior != DumpableBehavior::NotDumpable)
}

fn disable_dumpable() -> Measure {
    match set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        Ok(()) => Measure::Applied,
        Err(e) => Measure::Refused(OsRefusal::from_errno(e)),
    }
}

fn zero_core_limit() -> Measure {
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    match setrlimit(Resource::Core, zero) {
        Ok(()) => Measure::Applied,
        Err(e) => Measure::Refused(OsRefusal::from_errno(e)),
    }
}

fn lock_memory(options: &HardeningOptions) -> Measure {
    if !options.lock_memory {
        return Measure::Skipped(SkipReason::Disabled);
    }
    // `None` is RLIM_INFINITY; with CAP_IPC_LOCK the limit does not apply.
    if let Some(limit) = getrlimit(Resource::Memlock).current
        && limit < options.min_memlock_bytes
        && !has_cap_ipc_lock()
    {
        return Measure::Skipped(SkipReason::MemlockLimitTooLow {
            limit,
            wanted: options.min_memlock_bytes,
        });
    }
    let flags = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT;
    match mlockall(flags) {
        Ok(()) => Measure::Applied,
        Err(e) => Measure::Refused(OsRefusal::from_errno(e)),
    }
}

/// Whether the effective capability set holds CAP_IPC_LOCK (unknown counts as no).
fn has_cap_ipc_lock() -> bool {
    capabilities(None).is_ok_and(|sets| sets.effective.contains(CapabilitySet::IPC_LOCK))
}

#[cfg(test)]
#[path = "harden_tests.rs"]
mod tests;
