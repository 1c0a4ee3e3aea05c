//! The one place that opens the HSM from its settings.

use std::sync::Arc;

use super::{AsyncHsm, Hsm, HsmConfig, HsmError, Pkcs11Hsm};

/// Opens the token `config` names and logs in. Blocks (loads the PKCS#11
/// module, opens sessions): async callers run it on the blocking pool.
pub fn open(config: &HsmConfig) -> Result<Arc<dyn Hsm>, HsmError> {
    Ok(Arc::new(Pkcs11Hsm::connect(config)?))
}

/// [`open`], wrapped for async callers: one HSM thread per pooled session and
/// `config.call_timeout` on every call.
pub fn open_async(config: &HsmConfig) -> Result<AsyncHsm, HsmError> {
    let hsm = open(config)?;
    Ok(AsyncHsm::with_threads(
        hsm,
        config.call_timeout,
        config.session_pool_size,
    ))
}
