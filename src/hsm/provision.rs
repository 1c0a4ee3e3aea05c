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
use super::description::{Description, describe, described_slots};
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
    // A module that stays loaded (one written in Rust cannot be unloaded) may
    // still be initialized by an earlier user in this process: only finalize
    // what this call initialized.
    let initialized_here = super::pool::initialize(&ctx)?;
    let result = init_with(&ctx, label, so_pin, user_pin);
    if initialized_here {
        let _ = ctx.finalize();
    }
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
    let slots = described_slots(ctx).map_err(ck)?;
    let mut free = None;
    let mut undescribed = Vec::new();
    for (slot, description) in &slots {
        match description {
            Description::Read(info) if info.token_initialized() => {
                if info.label().trim_end() == label {
                    return Err(HsmError::AlreadyExists);
                }
            }
            Description::Read(_) => {
                free = free.or(Some(*slot));
            }
            // Whether it is initialized is not known: C_InitToken on it could
            // erase another application's keys.
            Description::Malformed(why) => undescribed.push(format!("slot {}: {why}", slot.id())),
        }
    }
    let slot = free.ok_or_else(|| {
        let mut why = "no slot with an uninitialized token".to_owned();
        if !undescribed.is_empty() {
            why.push_str(&format!(
                " that describes itself ({}); initialize such a token with its vendor's tool and select it by slot id",
                undescribed.join("; ")
            ));
        }
        HsmError::Other(why)
    })?;
    let so = AuthPin::from(so_pin.expose());
    let user = AuthPin::from(user_pin.expose());
    ctx.init_token(slot, &so, label).map_err(ck)?;
    let session = ctx.open_rw_session(slot).map_err(ck)?;
    session.login(UserType::So, Some(&so)).map_err(ck)?;
    session.init_pin(&user).map_err(ck)?;
    session.logout().map_err(ck)?;
    drop(session);
    let serial = match describe(ctx, slot).map_err(ck)? {
        Description::Read(info) => info.serial_number().trim_end().to_string(),
        Description::Malformed(_) => String::new(),
    };
    Ok(InitializedToken {
        slot_id: slot.id(),
        serial,
    })
}
