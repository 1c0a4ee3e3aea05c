//! [`Hsm`] for async code: every call on tokio's blocking pool, with a timeout.
//!
//! PKCS#11 calls block (a network HSM may take seconds or hang), so they must
//! never run on an async worker thread. A call that times out keeps running on
//! its blocking thread until the module returns; it still holds its pooled
//! session, so later calls wait for a free one and time out in turn — the
//! service reports "HSM unavailable" instead of piling up work.

use std::sync::Arc;
use std::time::Duration;

use crate::secret::SecretBytes;

use super::{CrkVersion, Hsm, HsmError, HsmStatus};

/// A cheaply clonable async handle to an [`Hsm`].
#[derive(Clone)]
pub struct AsyncHsm {
    inner: Arc<dyn Hsm>,
    timeout: Duration,
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
    pub fn new(hsm: Arc<dyn Hsm>, timeout: Duration) -> Self {
        AsyncHsm { inner: hsm, timeout }
    }

    /// The blocking implementation underneath (for code already on a blocking thread).
    pub fn blocking(&self) -> &Arc<dyn Hsm> {
        &self.inner
    }

    async fn call<T, F>(&self, f: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Hsm) -> Result<T, HsmError> + Send + 'static,
    {
        let hsm = Arc::clone(&self.inner);
        let task = tokio::task::spawn_blocking(move || f(hsm.as_ref()));
        match tokio::time::timeout(self.timeout, task).await {
            Err(_elapsed) => Err(HsmError::Timeout),
            Ok(Err(join)) if join.is_panic() => Err(HsmError::Other("HSM call panicked".into())),
            Ok(Err(_cancelled)) => Err(HsmError::Unavailable("HSM call cancelled".into())),
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
        self.call(move |h| h.seal(crk, &aad, plaintext.expose())).await
    }

    /// See [`Hsm::unseal`].
    pub async fn unseal(
        &self,
        crk: CrkVersion,
        aad: Vec<u8>,
        blob: Vec<u8>,
    ) -> Result<SecretBytes, HsmError> {
        self.call(move |h| h.unseal(crk, &aad, &blob)).await
    }

    /// See [`Hsm::random`].
    pub async fn random(&self, len: usize) -> Result<SecretBytes, HsmError> {
        self.call(move |h| h.random(len)).await
    }

    /// See [`Hsm::crk_versions`].
    pub async fn crk_versions(&self) -> Result<Vec<CrkVersion>, HsmError> {
        self.call(|h| h.crk_versions()).await
    }

    /// See [`Hsm::create_crk`].
    pub async fn create_crk(&self, version: CrkVersion) -> Result<(), HsmError> {
        self.call(move |h| h.create_crk(version)).await
    }

    /// See [`Hsm::destroy_crk`].
    pub async fn destroy_crk(&self, version: CrkVersion) -> Result<(), HsmError> {
        self.call(move |h| h.destroy_crk(version)).await
    }

    /// See [`Hsm::health`].
    pub async fn health(&self) -> Result<HsmStatus, HsmError> {
        self.call(|h| h.health()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HSM that hangs on every call, to check the timeout path.
    struct Stuck;

    impl Hsm for Stuck {
        fn seal(&self, _: CrkVersion, _: &[u8], _: &[u8]) -> Result<Vec<u8>, HsmError> {
            std::thread::sleep(Duration::from_millis(300));
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
        let hsm = AsyncHsm::new(Arc::new(Stuck), Duration::from_millis(50));
        let sealed = hsm
            .seal(CrkVersion(1), vec![], SecretBytes::new(vec![1; 32]))
            .await;
        assert_eq!(sealed, Err(HsmError::Timeout));
        assert_eq!(hsm.random(7).await.unwrap().len(), 7);
        assert_eq!(
            hsm.unseal(CrkVersion(1), vec![], vec![]).await.err(),
            Some(HsmError::BadBlob)
        );
    }
}
