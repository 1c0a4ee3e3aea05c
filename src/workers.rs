//! A fixed set of threads that run short blocking jobs (PKCS#11 calls, SQLite
//! reads) for async code (layer 0: no KMIP, no I/O of its own).
//!
//! Why not `tokio::task::spawn_blocking`: its pool grows to hundreds of threads
//! and wakes an idle one for every job, so each short job (a 20 µs HSM decrypt,
//! a SQLite point read) pays for a wake-up, a sleep and a migration. Measured on
//! the 2-core appliance: about 7 context switches per KMIP Get at 64
//! connections, and most of the server's CPU in the scheduler. Here a fixed
//! number of workers drain one queue: a job wakes a worker only when one is
//! idle, and under load a busy worker takes the next job without sleeping.
//!
//! Even one wake-up per job is most of a job's cost when the server is nearly
//! idle (one client, one request at a time: 8 context switches per Get, see
//! bench/NOTES.md). So a pool may run a job on the caller's own thread instead
//! ([`WorkerPool::with_inline_calls`]), when all of these hold:
//! - nothing waits in the queue (a job never overtakes queued ones) and one of
//!   the pool's states (session, connection) is free, so the pool's bound on
//!   concurrent jobs still holds;
//! - the pool's last [`FAST_STREAK`] jobs each finished within
//!   [`INLINE_MAX_JOB`]: jobs that may block for long (a network HSM, a cold
//!   disk) stay on the workers, and one slow job sends the next
//!   [`FAST_STREAK`] back to them;
//! - no other job runs inline in the process ([`INLINE_LIMIT`]): the caller is an
//!   async worker thread, and if a job that used to be fast hangs (the HSM
//!   stops answering), it holds one async thread, never all of them. Such a
//!   call cannot be timed out, as a queued one can; it is the price of the
//!   fast path, bounded to one thread.
//!
//! Under load, a queued job wakes a sleeping worker only when the workers
//! already awake are behind: when the queue would take them more than
//! [`WAKE_WHEN_BEHIND`] to drain at the pool's recent pace per job. Short CPU
//! jobs (SoftHSM's ~20 µs calls) then stay with one or two awake workers, which
//! take job after job without sleeping, instead of four threads contending for
//! two cores and for the module's locks (Get at 64 connections: 11% less server
//! CPU per Get, bench/NOTES.md). Jobs that wait on a device or a network (a
//! network HSM's millisecond calls) are behind at once and wake every idle
//! worker they need, as before. A worker stuck in one job for long stops
//! counting as awake ([`STALLED_AFTER_JOBS`]), so the next job queued (or the
//! next state given back) wakes another. What this gives up: a job queued just
//! before the awake worker's call hung waits for that next event, or for its
//! caller's timeout, although a worker sleeps. That needs a call that hangs
//! in a pool whose calls usually take microseconds, and no other job queued
//! after it.
//!
//! A job whose caller stopped waiting (timed out, cancelled) is skipped, so a
//! queue that built up behind a hung HSM does not replay stale work.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Longest a job may take and still count as fast (see the module comment).
pub const INLINE_MAX_JOB: Duration = Duration::from_millis(1);

/// How many fast jobs in a row a pool needs before it runs one inline.
pub const FAST_STREAK: u32 = 64;

/// How far behind the awake workers may fall (queued jobs times the recent
/// time per job, shared among them) before a sleeping worker is woken.
pub const WAKE_WHEN_BEHIND: Duration = Duration::from_micros(400);

/// A worker on one job for longer than this many times the recent time per
/// job (and at least [`WAKE_WHEN_BEHIND`]) no longer counts as awake: a job
/// that hangs does not hold back the ones queued after it.
const STALLED_AFTER_JOBS: u32 = 8;

/// Whether `queued` jobs need another worker, with `awake` workers running
/// and jobs recently taking `job_ns` each (see the module comment).
fn behind(queued: usize, awake: usize, job_ns: u64) -> bool {
    if queued == 0 {
        return false;
    }
    let Some(awake) = u64::try_from(awake).ok().filter(|&n| n > 0) else {
        return true; // nobody would take the job
    };
    let queued = u64::try_from(queued).unwrap_or(u64::MAX);
    job_ns.saturating_mul(queued) / awake > duration_ns(WAKE_WHEN_BEHIND)
}

/// Most jobs running inline at once, process-wide (the async runtime has at
/// least two worker threads: one stays free).
pub const INLINE_LIMIT: usize = 1;

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Jobs running inline now, in every pool.
static INLINE_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Why a job did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// The queue is at its bound: the workers are stuck or far behind.
    Full,
    /// The pool has no running worker (it is closing, or threads could not start).
    Stopped,
    /// The job panicked.
    Panicked,
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolError::Full => "worker queue full",
            PoolError::Stopped => "worker pool stopped",
            PoolError::Panicked => "worker job panicked",
        })
    }
}

impl std::error::Error for PoolError {}

/// A job: runs on a worker with a state of the pool; false when it was
/// skipped (its caller stopped waiting), so that it is not timed.
type Job<S> = Box<dyn FnOnce(&mut S) -> bool + Send>;

struct Queue<S> {
    jobs: VecDeque<Job<S>>,
    /// States no job is using: a job (on a worker or inline) takes one.
    free: Vec<S>,
    /// Workers waiting for a job.
    idle: usize,
    /// Idle workers signalled but not yet running (counted as awake).
    waking: usize,
    /// Wake-ups sent so far (what the tests look at: a worker's own return
    /// from its wait can be spurious, this count cannot).
    wakes_sent: u64,
    /// When each worker (by index) took the job it runs now.
    busy_since: Vec<Option<Instant>>,
    /// Workers still running.
    alive: usize,
    closed: bool,
}

struct Shared<S> {
    queue: Mutex<Queue<S>>,
    ready: Condvar,
    /// Signalled by each worker as it stops.
    exited: Condvar,
    capacity: usize,
    /// Whether jobs may run on the caller's thread at all.
    inline: AtomicBool,
    /// The count of inline jobs this pool's [`INLINE_LIMIT`] applies to.
    inline_running: &'static AtomicUsize,
    /// Jobs in a row that took at most `fast_job_ns`.
    fast_streak: AtomicU32,
    /// The longest a job may take and count as fast, in nanoseconds.
    fast_job_ns: AtomicU64,
    /// Recent time per job (a moving average), in nanoseconds.
    job_ns: AtomicU64,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Queue<S>> {
        // Jobs run outside the lock; a poisoned lock still holds a valid queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a finished job towards (or against) the fast streak.
    fn timed(&self, took: Duration) {
        let took_ns = duration_ns(took);
        let average = self.job_ns.load(Ordering::Relaxed);
        let average = average - average / 8 + took_ns / 8;
        self.job_ns.store(average, Ordering::Relaxed);
        if took.as_nanos() <= u128::from(self.fast_job_ns.load(Ordering::Relaxed)) {
            let streak = self.fast_streak.load(Ordering::Relaxed);
            if streak < FAST_STREAK {
                self.fast_streak.store(streak + 1, Ordering::Relaxed);
            }
        } else {
            self.fast_streak.store(0, Ordering::Relaxed);
        }
    }

    /// Puts a state back (from `worker`, or from an inline caller) and wakes
    /// a worker if the queue needs one.
    fn give_back(&self, state: S, worker: Option<usize>) {
        let mut queue = self.lock();
        if let Some(since) = worker.and_then(|i| queue.busy_since.get_mut(i)) {
            *since = None;
        }
        queue.free.push(state);
        self.wake_if_behind(queue);
    }

    /// Wakes one sleeping worker if a state is free for it and the awake
    /// workers are behind with the queue; releases the lock either way.
    fn wake_if_behind(&self, mut queue: MutexGuard<'_, Queue<S>>) {
        let asleep = queue.idle.saturating_sub(queue.waking);
        let wake = asleep > 0 && !queue.free.is_empty() && !queue.jobs.is_empty() && {
            let job_ns = self.job_ns.load(Ordering::Relaxed);
            let stalled = Duration::from_nanos(job_ns)
                .saturating_mul(STALLED_AFTER_JOBS)
                .max(WAKE_WHEN_BEHIND);
            let now = Instant::now();
            let stuck = queue
                .busy_since
                .iter()
                .flatten()
                .filter(|since| now.saturating_duration_since(**since) > stalled)
                .count();
            let awake = queue.alive.saturating_sub(asleep).saturating_sub(stuck);
            behind(queue.jobs.len(), awake, job_ns)
        };
        if wake {
            queue.waking += 1;
            queue.wakes_sent += 1;
        }
        drop(queue);
        if wake {
            self.ready.notify_one();
        }
    }
}

/// The permission to run one job inline; released on drop.
struct InlinePermit(&'static AtomicUsize);

impl InlinePermit {
    fn take(running: &'static AtomicUsize) -> Option<InlinePermit> {
        running
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < INLINE_LIMIT).then_some(n + 1)
            })
            .ok()
            .map(|_| InlinePermit(running))
    }
}

impl Drop for InlinePermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Longest a dropped pool waits for its workers to stop.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// A fixed pool of worker threads, each owning a state `S` (a database
/// connection, or `()`). Dropping the pool lets the workers finish the queued
/// jobs and waits for them to stop, at most [`STOP_WAIT`] (one may be stuck in
/// a hung HSM: it is left behind). The wait matters at the end of a command:
/// a process that exits while a worker is still leaving a PKCS#11 module (its
/// thread-local state torn down) can crash inside the module's own exit code.
pub struct WorkerPool<S: Send + 'static> {
    shared: Arc<Shared<S>>,
    threads: Vec<JoinHandle<()>>,
}

impl<S: Send + 'static> WorkerPool<S> {
    /// Starts one thread per state, named `name`. At most `capacity` jobs wait.
    /// A thread that cannot start is left out; with none, every job fails
    /// with [`PoolError::Stopped`].
    pub fn new(name: &str, states: Vec<S>, capacity: usize) -> Self {
        Self::counting_inline_in(name, states, capacity, &INLINE_RUNNING)
    }

    /// [`WorkerPool::new`] whose inline jobs count in `inline_running` (tests
    /// give each pool its own, as they run side by side in one process).
    fn counting_inline_in(
        name: &str,
        states: Vec<S>,
        capacity: usize,
        inline_running: &'static AtomicUsize,
    ) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                free: Vec::new(),
                idle: 0,
                waking: 0,
                wakes_sent: 0,
                busy_since: Vec::new(),
                alive: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            exited: Condvar::new(),
            capacity: capacity.max(1),
            inline: AtomicBool::new(false),
            inline_running,
            fast_streak: AtomicU32::new(0),
            fast_job_ns: AtomicU64::new(duration_ns(INLINE_MAX_JOB)),
            // Until jobs have been timed, assume slow ones: wake eagerly.
            job_ns: AtomicU64::new(duration_ns(INLINE_MAX_JOB)),
        });
        let mut threads = Vec::new();
        for (index, state) in states.into_iter().enumerate() {
            let worker = Arc::clone(&shared);
            {
                let mut queue = shared.lock();
                queue.alive += 1;
                queue.busy_since.push(None);
            }
            match std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || work(&worker, index))
            {
                Ok(thread) => {
                    threads.push(thread);
                    shared.lock().free.push(state);
                }
                Err(_) => shared.lock().alive -= 1,
            }
        }
        WorkerPool { shared, threads }
    }

    /// Whether the pool still has a worker and takes jobs.
    pub fn is_running(&self) -> bool {
        let queue = self.shared.lock();
        !queue.closed && queue.alive > 0
    }

    /// Lets short jobs run on the caller's thread when the pool is idle (see
    /// the module comment). For pools whose jobs are usually microseconds.
    pub fn with_inline_calls(self) -> Self {
        self.with_inline_calls_under(INLINE_MAX_JOB)
    }

    /// [`WorkerPool::with_inline_calls`] for jobs that count as fast up to
    /// `max_job` (a commit's fsync takes longer than an HSM call).
    pub fn with_inline_calls_under(self, max_job: Duration) -> Self {
        self.shared
            .fast_job_ns
            .store(duration_ns(max_job), Ordering::Relaxed);
        self.shared.inline.store(true, Ordering::Relaxed);
        self
    }

    /// A free state and the inline permit, when a job may run inline now.
    fn try_inline(&self) -> Option<(S, InlinePermit)> {
        if !self.shared.inline.load(Ordering::Relaxed)
            || self.shared.fast_streak.load(Ordering::Relaxed) < FAST_STREAK
        {
            return None;
        }
        let permit = InlinePermit::take(self.shared.inline_running)?;
        let mut queue = self.shared.lock();
        if queue.closed || !queue.jobs.is_empty() {
            return None;
        }
        let state = queue.free.pop()?;
        Some((state, permit))
    }

    /// Runs `job` on a worker and returns its result.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> T + Send + 'static,
    {
        self.run_inline_or_queued(job, true).await
    }

    /// Like [`WorkerPool::run`], never on the caller's thread.
    pub async fn run_queued<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> T + Send + 'static,
    {
        self.run_inline_or_queued(job, false).await
    }

    async fn run_inline_or_queued<T, F>(&self, job: F, inline: bool) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> T + Send + 'static,
    {
        if let Some((mut state, permit)) = inline.then(|| self.try_inline()).flatten() {
            let started = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| job(&mut state)));
            self.shared.timed(started.elapsed());
            drop(permit);
            self.shared.give_back(state, None);
            return result.map_err(|_| PoolError::Panicked);
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Box::new(move |state: &mut S| {
            if reply.is_closed() {
                return false; // nobody waits for this any more
            }
            let result = catch_unwind(AssertUnwindSafe(|| job(state)));
            let _ = reply.send(result.map_err(|_| PoolError::Panicked));
            true
        }))?;
        answer.await.map_err(|_| PoolError::Stopped)?
    }

    fn submit(&self, job: Job<S>) -> Result<(), PoolError> {
        let mut queue = self.shared.lock();
        if queue.closed || queue.alive == 0 {
            return Err(PoolError::Stopped);
        }
        if queue.jobs.len() >= self.shared.capacity {
            return Err(PoolError::Full);
        }
        queue.jobs.push_back(job);
        // Awake workers (and inline callers giving their state back) find the
        // job; a sleeping one is woken only if they are behind.
        self.shared.wake_if_behind(queue);
        Ok(())
    }
}

impl<S: Send + 'static> Drop for WorkerPool<S> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
        // Dropped by one of its own workers (the last owner let go inside a
        // job): that worker cannot wait for itself.
        let me = std::thread::current().id();
        if self.threads.iter().any(|t| t.thread().id() == me) {
            return;
        }
        let deadline = Instant::now() + STOP_WAIT;
        let mut queue = self.shared.lock();
        while queue.alive > 0 {
            let now = Instant::now();
            if now >= deadline {
                return; // a worker stuck in a call: leave it behind
            }
            queue = self
                .shared
                .exited
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(queue);
        // Every worker has left its loop; joining waits for its thread's exit
        // (thread-local destructors included), which is quick.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn work<S>(shared: &Shared<S>, index: usize) {
    loop {
        let (job, mut state, started) = {
            let mut queue = shared.lock();
            loop {
                if !queue.jobs.is_empty() {
                    if let Some(state) = queue.free.pop() {
                        if let Some(job) = queue.jobs.pop_front() {
                            let started = Instant::now();
                            if let Some(since) = queue.busy_since.get_mut(index) {
                                *since = Some(started);
                            }
                            break (job, state, started);
                        }
                        queue.free.push(state);
                    }
                } else if queue.closed {
                    queue.alive -= 1;
                    shared.exited.notify_all();
                    return;
                }
                queue.idle += 1;
                queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
                queue.idle -= 1;
                queue.waking = queue.waking.saturating_sub(1);
            }
        };
        if job(&mut state) {
            shared.timed(started.elapsed());
        }
        shared.give_back(state, Some(index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn runs_jobs_with_worker_state() {
        let pool = WorkerPool::new("test-worker", vec![10u32, 10], 16);
        let mut sums = Vec::new();
        for i in 0..20u32 {
            sums.push(pool.run(move |s: &mut u32| *s + i).await.unwrap());
        }
        assert_eq!(sums, (10..30).collect::<Vec<_>>());
    }

    /// A dropped pool has finished its queued work and its threads are gone.
    #[test]
    fn dropping_the_pool_waits_for_its_workers_to_stop() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::mpsc;

        let pool = WorkerPool::new("test-worker", vec![()], 4);
        let (release, released) = mpsc::channel::<()>();
        let (started, is_started) = mpsc::channel::<()>();
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        pool.submit(Box::new(move |_: &mut ()| {
            let _ = started.send(());
            let _ = released.recv();
            flag.store(true, Ordering::SeqCst);
            true
        }))
        .unwrap();
        is_started.recv().unwrap();
        release.send(()).unwrap();
        drop(pool);
        assert!(
            done.load(Ordering::SeqCst),
            "drop returned before the worker finished"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_job_is_an_error_and_the_worker_survives() {
        let pool = WorkerPool::new("test-worker", vec![()], 16);
        let failed = pool.run(|_: &mut ()| -> u8 { panic!("job failure") }).await;
        assert_eq!(failed, Err(PoolError::Panicked));
        assert_eq!(pool.run(|_: &mut ()| 7u8).await, Ok(7));
    }

    /// After a streak of fast jobs an idle pool runs the next one on the
    /// caller's thread; a slow job sends the following ones back to the
    /// workers until a new streak is made.
    #[tokio::test(flavor = "current_thread")]
    async fn an_idle_pool_runs_fast_jobs_inline_after_a_streak() {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        // "Fast" is generous here, so that a worker preempted in the middle of
        // a job on a loaded machine does not break the streak.
        let fast = Duration::from_millis(50);
        let pool =
            WorkerPool::counting_inline_in("test-worker", vec![()], 16, &RUNNING).with_inline_calls_under(fast);
        let caller = std::thread::current().id();
        let on_caller = || async {
            let inline = pool
                .run(move |_: &mut ()| std::thread::current().id() == caller)
                .await
                .unwrap();
            // A worker answers before it gives its state back: wait for the
            // state (an event), or the next job could find none free.
            while pool.shared.lock().free.is_empty() {
                std::thread::yield_now();
            }
            inline
        };
        for _ in 0..FAST_STREAK {
            assert!(!on_caller().await, "no streak yet: on a worker");
        }
        assert!(on_caller().await, "a streak of fast jobs: inline");
        // A slow job (inline, as the pool is idle) ends the streak.
        pool.run(move |_: &mut ()| std::thread::sleep(fast * 2))
            .await
            .unwrap();
        assert!(!on_caller().await, "after a slow job: on a worker again");
    }

    /// Inline jobs keep the pool's bounds: never more at once than
    /// [`INLINE_LIMIT`] in the process, never more than the pool's states.
    #[test]
    fn inline_jobs_are_bounded_by_the_permit_and_the_states() {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        let pool = WorkerPool::counting_inline_in("test-worker", vec![()], 16, &RUNNING).with_inline_calls();
        pool.shared.fast_streak.store(FAST_STREAK, Ordering::Relaxed);
        let (state, permit) = pool.try_inline().expect("idle pool, streak made: inline");
        assert!(pool.try_inline().is_none(), "the only state is taken");
        let other = WorkerPool::counting_inline_in("test-worker", vec![()], 16, &RUNNING).with_inline_calls();
        other.shared.fast_streak.store(FAST_STREAK, Ordering::Relaxed);
        if INLINE_LIMIT == 1 {
            assert!(other.try_inline().is_none(), "the process-wide permit is taken");
        }
        drop(permit);
        pool.shared.give_back(state, None);
        assert!(other.try_inline().is_some(), "permit back: inline again");
        let plain = WorkerPool::counting_inline_in("test-worker", vec![()], 16, &RUNNING);
        plain.shared.fast_streak.store(FAST_STREAK, Ordering::Relaxed);
        assert!(plain.try_inline().is_none(), "pools run inline only when told to");
    }

    #[test]
    fn a_sleeping_worker_is_woken_only_when_the_awake_ones_fall_behind() {
        let us = |n: u64| n * 1_000;
        assert!(!behind(0, 0, us(20)), "nothing queued");
        assert!(behind(1, 0, us(1)), "nobody awake takes the job");
        assert!(!behind(4, 1, us(20)), "80 µs of SoftHSM calls: the awake worker takes them");
        assert!(behind(40, 1, us(20)), "800 µs of work for one worker");
        assert!(!behind(40, 2, us(9)), "360 µs shared by two");
        assert!(behind(1, 4, us(2_000)), "a network HSM's call: wake at once");
        assert!(behind(usize::MAX, 1, u64::MAX), "no overflow");
    }

    /// A pool of two workers whose recent jobs took `job` each, both asleep,
    /// and a job that holds one worker until `release` is dropped or sent.
    fn pool_with_one_worker_held(
        job: Duration,
    ) -> (WorkerPool<()>, std::sync::mpsc::Sender<()>) {
        let pool = WorkerPool::new("test-worker", vec![(), ()], 16);
        pool.shared.job_ns.store(duration_ns(job), Ordering::Relaxed);
        // Both threads start and go to sleep (thread start-up, not time).
        while pool.shared.lock().idle < 2 {
            std::thread::yield_now();
        }
        let (started, is_started) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        pool.submit(Box::new(move |_: &mut ()| {
            let _ = started.send(());
            let _ = held.recv();
            true
        }))
        .unwrap();
        is_started.recv().unwrap();
        (pool, release)
    }

    /// A queued job that the awake worker will soon take does not wake the
    /// sleeping one; it runs after the job in front of it.
    #[test]
    fn a_short_job_waits_for_the_awake_worker() {
        let (pool, release) = pool_with_one_worker_held(Duration::from_micros(20));
        let (done, is_done) = std::sync::mpsc::channel::<()>();
        let sent_before = {
            let mut queue = pool.shared.lock();
            // The held job counts as just started however long this thread
            // took to get here on a loaded machine (past the stall bound, it
            // would count as stuck and a wake-up would be right).
            let later = Instant::now() + Duration::from_secs(3600);
            for since in queue.busy_since.iter_mut().flatten() {
                *since = later;
            }
            queue.wakes_sent
        };
        pool.submit(Box::new(move |_: &mut ()| {
            let _ = done.send(());
            true
        }))
        .unwrap();
        assert_eq!(pool.shared.lock().wakes_sent, sent_before, "no worker woken");
        release.send(()).unwrap();
        is_done.recv().unwrap();
    }

    /// Slow jobs, or an awake worker stuck in one, wake the sleeping worker:
    /// the queued job runs while the first is still held.
    #[test]
    fn slow_or_stuck_jobs_wake_another_worker() {
        for stuck in [false, true] {
            let job = if stuck { Duration::from_micros(20) } else { Duration::from_millis(2) };
            let (pool, release) = pool_with_one_worker_held(job);
            if stuck {
                // The held job started long ago, as a hung HSM call would have.
                let long_ago = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
                for since in pool.shared.lock().busy_since.iter_mut().flatten() {
                    *since = long_ago;
                }
            }
            let (done, is_done) = std::sync::mpsc::channel::<()>();
            pool.submit(Box::new(move |_: &mut ()| {
                let _ = done.send(());
                true
            }))
            .unwrap();
            // The held job is not released before the queued one ran (the
            // timeout only turns a hang into a failure).
            is_done
                .recv_timeout(Duration::from_secs(60))
                .expect("the queued job waited for the held one");
            drop(release);
        }
    }

    /// Waits on events only (job started, job left the queue), never on time:
    /// it must hold on a machine too busy to schedule the worker promptly.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_refuses_and_abandoned_jobs_are_skipped() {
        use std::future::Future;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::task::Poll;

        let pool = Arc::new(WorkerPool::new("test-worker", vec![()], 1));
        // Occupy the only worker until released, and know when it is occupied.
        let (started, is_started) = oneshot::channel::<()>();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move {
                pool.run(move |_: &mut ()| {
                    let _ = started.send(());
                    blocked.recv().is_ok()
                })
                .await
            }
        });
        is_started.await.unwrap();

        // One job may wait. Its caller submits it (first poll) and then gives up
        // (drops the future), so the worker must skip it. The job owns `gone`'s
        // sender: the receiver resolves when the job has left the queue.
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let (gone_tx, gone) = oneshot::channel::<()>();
        let mut waiting = Box::pin(pool.run(move |_: &mut ()| {
            drop(gone_tx);
            flag.store(true, Ordering::SeqCst);
        }));
        let first = std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "the job waits behind the busy worker");
        drop(waiting);

        // The queue (capacity 1) holds the abandoned job: a new one is refused.
        assert_eq!(pool.run(|_: &mut ()| 2u8).await, Err(PoolError::Full));

        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(true));
        assert!(gone.await.is_err(), "the abandoned job is dropped, not answered");
        assert!(!ran.load(Ordering::SeqCst), "the abandoned job did not run");
        assert_eq!(pool.run(|_: &mut ()| 1u8).await, Ok(1));
    }
}
