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
//! A job whose caller stopped waiting (timed out, cancelled) is skipped, so a
//! queue that built up behind a hung HSM does not replay stale work.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

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

/// A job: runs on a worker with that worker's own state.
type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

struct Queue<S> {
    jobs: VecDeque<Job<S>>,
    /// Workers waiting for a job.
    idle: usize,
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
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Queue<S>> {
        // Jobs run outside the lock; a poisoned lock still holds a valid queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
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
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
                alive: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            exited: Condvar::new(),
            capacity: capacity.max(1),
        });
        let mut threads = Vec::new();
        for state in states {
            let worker = Arc::clone(&shared);
            shared.lock().alive += 1;
            match std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || work(&worker, state))
            {
                Ok(thread) => threads.push(thread),
                Err(_) => shared.lock().alive -= 1,
            }
        }
        WorkerPool { shared, threads }
    }

    /// Runs `job` on a worker and returns its result.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> T + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Box::new(move |state: &mut S| {
            if reply.is_closed() {
                return; // nobody waits for this any more
            }
            let result = catch_unwind(AssertUnwindSafe(|| job(state)));
            let _ = reply.send(result.map_err(|_| PoolError::Panicked));
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
        // Wake a worker only if one sleeps; busy workers will find the job.
        let wake = queue.idle > 0;
        drop(queue);
        if wake {
            self.shared.ready.notify_one();
        }
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

fn work<S>(shared: &Shared<S>, mut state: S) {
    loop {
        let job = {
            let mut queue = shared.lock();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    queue.alive -= 1;
                    shared.exited.notify_all();
                    return;
                }
                queue.idle += 1;
                queue = shared.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
                queue.idle -= 1;
            }
        };
        job(&mut state);
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
