//! Token set-up: `C_InitToken` + `C_InitPIN` with PINs passed in memory.
//!
//! `softhsm2-util --init-token` takes PINs on its command line (visible in
//! `ps` and shell history) or from a terminal prompt only, so keyward
//! initializes tokens itself through PKCS#11. This is what `softhsm/init-token`
//! and tests call; an admin `keyward hsm init-token` subcommand should too.

use std::path::Path;

use cryptoki::context::Pkcs11;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use super::HsmError;
use super::error::{ck_name, to_hsm_error};
use crate::secret::SecretString;

/// What [`init_token`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitializedToken {
    /// Slot id at the time of initialization (SoftHSM renumbers later: find
    /// the token by label).
    pub slot_id: u64,
    pub serial: String,
}

/// Initialize the first free token of `module` with `label`, set its SO PIN
/// and user PIN. Refuses ([`HsmError::AlreadyExists`]) if a token with that
/// label exists. Initializes and finalizes the module itself, so call it when
/// no [`super::Pkcs11Hsm`] of the same module lives in this process.
pub fn init_token(
    module: &Path,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<InitializedToken, HsmError> {
    let ctx = Pkcs11::new(module)
        .map_err(|e| HsmError::Unavailable(format!("{} ({})", ck_name(&e), module.display())))?;
    ctx.initialize(cryptoki::context::CInitializeArgs::new(
        cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
    ))
    .map_err(|e| to_hsm_error(&e))?;
    let result = init_with(&ctx, label, so_pin, user_pin);
    let _ = ctx.finalize();
    result
}

fn init_with(
    ctx: &Pkcs11,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<InitializedToken, HsmError> {
    let ck = |e: cryptoki::error::Error| to_hsm_error(&e);
    if label.is_empty() || label.len() > 32 {
        return Err(HsmError::InvalidRequest("token label must be 1 to 32 bytes"));
    }
    for slot in ctx.get_slots_with_initialized_token().map_err(ck)? {
        if ctx.get_token_info(slot).map_err(ck)?.label().trim_end() == label {
            return Err(HsmError::AlreadyExists);
        }
    }
    let mut free = None;
    for slot in ctx.get_slots_with_token().map_err(ck)? {
        if !ctx.get_token_info(slot).map_err(ck)?.token_initialized() {
            free = Some(slot);
            break;
        }
    }
    let slot = free.ok_or_else(|| HsmError::Other("no slot with an uninitialized token".into()))?;
    let so = AuthPin::from(so_pin.expose());
    let user = AuthPin::from(user_pin.expose());
    ctx.init_token(slot, &so, label).map_err(ck)?;
    let session = ctx.open_rw_session(slot).map_err(ck)?;
    session.login(UserType::So, Some(&so)).map_err(ck)?;
    session.init_pin(&user).map_err(ck)?;
    session.logout().map_err(ck)?;
    drop(session);
    let serial = ctx
        .get_token_info(slot)
        .map_err(ck)?
        .serial_number()
        .trim_end()
        .to_string();
    Ok(InitializedToken {
        slot_id: slot.id(),
        serial,
    })
}
