//! `C_GetTokenInfo`, read so that one malformed field does not hide a token.
//!
//! PKCS#11 gives `CK_TOKEN_INFO.utcTime` as 16 characters, `YYYYMMDDhhmmss00`.
//! openCryptoki's soft token (3.x, the stack IBM Z crypto cards are reached
//! through) writes its clock there as `HH:MM:SS`; cryptoki refuses to parse
//! that and with it the whole description — label, serial, flags. The token
//! itself works. So a description that cannot be parsed is told apart from a
//! token that cannot be reached: such a token is usable when the
//! configuration selects it by slot id alone, and nothing else about it is
//! guessed (not its label, not whether it is initialized).

use cryptoki::context::Pkcs11;
use cryptoki::error::Error as CkError;
use cryptoki::slot::{Slot, TokenInfo};

/// What a slot's token said of itself.
pub(crate) enum Description {
    Read(Box<TokenInfo>),
    /// The module answered, but not in a form PKCS#11 allows; why, for messages.
    Malformed(String),
}

/// The token's description; `Err` only when the module did not answer (a
/// PKCS#11 return code other than `CKR_OK`).
pub(crate) fn describe(ctx: &Pkcs11, slot: Slot) -> Result<Description, CkError> {
    match ctx.get_token_info(slot) {
        Ok(info) => Ok(Description::Read(Box::new(info))),
        // The only failures of cryptoki's parsing of an answered call.
        Err(e @ (CkError::ParseInt(_) | CkError::Utf8(_) | CkError::TryFromInt(_))) => Ok(
            Description::Malformed(format!("its token description is malformed: {e}")),
        ),
        Err(e) => Err(e),
    }
}

/// The slots holding a token, with their descriptions; slots whose token went
/// away between the two calls are left out.
pub(crate) fn described_slots(ctx: &Pkcs11) -> Result<Vec<(Slot, Description)>, CkError> {
    Ok(ctx
        .get_slots_with_token()?
        .into_iter()
        .filter_map(|slot| describe(ctx, slot).ok().map(|d| (slot, d)))
        .collect())
}
