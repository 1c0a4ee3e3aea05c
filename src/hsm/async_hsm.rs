//! [`Hsm`] for async code: every call on a small fixed pool of HSM threads,
//! with a timeout.
//!
//! PKCS#11 calls block (a network HSM may take seconds or hang), so they must
//! never run on an async worker thread. They run on [`WorkerPool`] threads, one
//! per HSM session by default: SoftHSM's calls take microseconds, and tokio's
//! blocking pool spent more on waking a thread per call than on the call
//! (see `crate::workers`). A call that times out keeps running on its thread
//! until the module returns; calls queued behind it time out in turn and are
//! then skipped — the service reports "HSM unavailable" instead of piling up
//! work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::HsmInstruments;
use crate::secret::SecretBytes;
use crate::workers::{PoolError, WorkerPool};

use super::{CrkVersion, DEFAULT_SESSION_POOL_SIZE, Hsm, HsmError, HsmStatus};

/// Most HSM calls waiting for a thread.
///
/// Stops: unbounded memory when the HSM hangs under load; beyond this a call
/// fails at once (each waiting call also times out on its own).
const MAX_QUEUED_CALLS: usize = 16 * 1024;

/// A cheaply clonable async handle to an [`Hsm`].
#[derive(Clone)]
pub struct AsyncHsm {
    inner: Arc<dyn Hsm>,
    timeout: Duration,
    threads: Arc<WorkerPool<()>>,
    /// Where call latency and HSM availability are recorded, when set.
    instruments: Option<HsmInstruments>,
}

impl std::fmt::Debug for AsyncHsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncHsm")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AsyncHsm {
    /// Wrap `hsm`; each call fails with [`HsmError::Timeout`] after `timeout`.
    /// Calls run on [`DEFAULT_SESSION_POOL_SIZE`] threads.
    pub fn new(hsm: Arc<dyn Hsm>, timeout: Duration) -> Self {
        Self::with_threads(hsm, timeout, DEFAULT_SESSION_POOL_SIZE)
    }

    /// Like [`AsyncHsm::new`] with `threads` HSM threads (match the session
    /// pool: more threads than sessions only wait for a session).
    pub fn with_threads(hsm: Arc<dyn Hsm>, timeout: Duration, threads: usize) -> Self {
        // Inline when idle: a SoftHSM call takes microseconds, less than the
        // wake-up of an HSM thread (see `crate::workers` for the bounds).
        let threads =
            WorkerPool::new("keyward-hsm", vec![(); threads.max(1)], MAX_QUEUED_CALLS).with_inline_calls();
        AsyncHsm {
            inner: hsm,
            timeout,
            threads: Arc::new(threads),
            instruments: None,
        }
    }

    /// Records every call's latency (queueing included: what the caller waits)
    /// and whether the HSM answered into `instruments`.
    pub fn with_instruments(mut self, instruments: HsmInstruments) -> Self {
        self.instruments = Some(instruments);
        self
    }

    /// The blocking implementation underneath (for code already on a blocking thread).
    pub fn blocking(&self) -> &Arc<dyn Hsm> {
        &self.inner
    }

    async fn call<T, F>(&self, name: &'static str, f: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Hsm) -> Result<T, HsmError> + Send + 'static,
    {
        let Some(instruments) = &self.instruments else {
            return self.run(f).await;
        };
        let started = Instant::now();
        let result = self.run(f).await;
        let available = !matches!(&result, Err(e) if e.is_transient() || matches!(e, HsmError::Login(_)));
        instruments.observe_call(name, started.elapsed(), available);
        result
    }

    async fn run<T, F>(&self, f: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Hsm) -> Result<T, HsmError> + Send + 'static,
    {
        let hsm = Arc::clone(&self.inner);
        let task = self.threads.run(move |_: &mut ()| f(hsm.as_ref()));
        match tokio::time::timeout(self.timeout, task).await {
            Err(_elapsed) => Err(HsmError::Timeout),
            Ok(Err(PoolError::Panicked)) => Err(HsmError::Other("HSM call panicked".into())),
            Ok(Err(PoolError::Full)) => Err(HsmError::Unavailable("too many HSM calls waiting".into())),
            Ok(Err(PoolError::Stopped)) => Err(HsmError::Unavailable("HSM threads stopped".into())),
            Ok(Ok(result)) => result,
        }
    }

    /// See [`Hsm::seal`]. Takes ownership so the plaintext can move to the
    /// blocking thread; it is wiped when the call ends.
    pub async fn seal(
        &self,
        crk: CrkVersion,
        aad: Vec<u8>,
        plaintext: SecretBytes,
    ) -> Result<Vec<u8>, HsmError> {
        self.call("seal", move |h| h.seal(crk, &aad, plaintext.expose()))
            .await
    }

    /// See [`Hsm::unseal`].
    pub async fn unseal(
        &self,
        crk: CrkVersion,
        aad: Vec<u8>,
        blob: Vec<u8>,
    ) -> Result<SecretBytes, HsmError> {
        self.call("unseal", move |h| h.unseal(crk, &aad, &blob)).await
    }

    /// See [`Hsm::random`].
    pub async fn random(&self, len: usize) -> Result<SecretBytes, HsmError> {
        self.call("random", move |h| h.random(len)).await
    }

    /// See [`Hsm::crk_versions`].
    pub async fn crk_versions(&self) -> Result<Vec<CrkVersion>, HsmError> {
        self.call("crk_versions", |h| h.crk_versions()).await
    }

    /// See [`Hsm::create_crk`].
    pub async fn create_crk(&self, version: CrkVersion) -> Result<(), HsmError> {
        self.call("create_crk", move |h| h.create_crk(version)).await
    }

    /// See [`Hsm::destroy_crk`].
    pub async fn destroy_crk(&self, version: CrkVersion) -> Result<(), HsmError> {
        self.call("destroy_crk", move |h| h.destroy_crk(version)).await
    }

    /// See [`Hsm::health`].
    pub async fn health(&self) -> Result<HsmStatus, HsmError> {
        self.call("health", |h| h.health()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HSM whose seal hangs until the test lets it go, to check the timeout
    /// path (an event, not a race between two sleeps).
    #[derive(Default)]
    struct Stuck {
        released: std::sync::Mutex<bool>,
        release: std::sync::Condvar,
    }

    impl Stuck {
        fn let_go(&self) {
            *self.released.lock().unwrap() = true;
            self.release.notify_all();
        }
    }

    impl Hsm for Stuck {
        fn seal(&self, _: CrkVersion, _: &[u8], _: &[u8]) -> Result<Vec<u8>, HsmError> {
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.release.wait(released).unwrap();
            }
            Ok(vec![])
        }
        fn unseal(&self, _: CrkVersion, _: &[u8], _: &[u8]) -> Result<SecretBytes, HsmError> {
            Err(HsmError::BadBlob)
        }
        fn random(&self, len: usize) -> Result<SecretBytes, HsmError> {
            Ok(SecretBytes::new(vec![0; len]))
        }
        fn crk_versions(&self) -> Result<Vec<CrkVersion>, HsmError> {
            Ok(vec![])
        }
        fn create_crk(&self, _: CrkVersion) -> Result<(), HsmError> {
            Ok(())
        }
        fn destroy_crk(&self, _: CrkVersion) -> Result<(), HsmError> {
            Ok(())
        }
        fn health(&self) -> Result<HsmStatus, HsmError> {
            Err(HsmError::Unavailable("stub".into()))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn slow_call_times_out_and_fast_call_passes() {
        let stuck = Arc::new(Stuck::default());
        let hsm = AsyncHsm::new(Arc::clone(&stuck) as Arc<dyn Hsm>, Duration::from_millis(50));
        let sealed = hsm
            .seal(CrkVersion(1), vec![], SecretBytes::new(vec![1; 32]))
            .await;
        assert_eq!(sealed, Err(HsmError::Timeout));
        stuck.let_go();
        assert_eq!(hsm.random(7).await.unwrap().len(), 7);
        assert_eq!(
            hsm.unseal(CrkVersion(1), vec![], vec![]).await.err(),
            Some(HsmError::BadBlob)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn instruments_record_latency_and_availability() {
        let metrics = crate::metrics::Metrics::new();
        let stuck = Arc::new(Stuck::default());
        let hsm = AsyncHsm::new(Arc::clone(&stuck) as Arc<dyn Hsm>, Duration::from_millis(50))
            .with_instruments(metrics.hsm_instruments());
        hsm.random(3).await.unwrap();
        assert!(metrics.hsm_instruments().available());
        let sealed = hsm
            .seal(CrkVersion(1), vec![], SecretBytes::new(vec![1; 32]))
            .await;
        assert_eq!(sealed, Err(HsmError::Timeout));
        stuck.let_go();
        assert!(!metrics.hsm_instruments().available());
        // An answer that is an error still means the HSM is there.
        assert!(hsm.unseal(CrkVersion(1), vec![], vec![]).await.is_err());
        assert!(metrics.hsm_instruments().available());
        let text = metrics.encode();
        for call in ["random", "seal", "unseal"] {
            let series = format!("keyward_hsm_call_duration_seconds_count{{call=\"{call}\"}} 1");
            assert!(text.contains(&series), "{series}");
        }
    }
}
