//! `keyward keys revoke ID --reason R [--message M]`: as KMIP Revoke — a
//! compromise makes the key Compromised, any other reason Deactivated. vCenter
//! can no longer use a key that is not Active.

use super::render::state_name;
use super::{ConfigOption, Inventory, key_error, now_unix, refused};
use crate::audit::AuditEvent;
use crate::cli::{CliError, CliResult};
use crate::kmip::RevocationReasonCode;
use crate::kmip::attribute::RevocationReason;

#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The key's Unique Identifier.
    id: String,
    /// Why: compromise, ca-compromise, superseded, cessation, affiliation-changed,
    /// privilege-withdrawn or unspecified.
    #[arg(long, value_name = "REASON")]
    reason: String,
    /// Free text stored with the reason (Revocation Message).
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
    #[command(flatten)]
    config: ConfigOption,
}

/// `--reason` words and the KMIP codes they stand for.
const REASONS: [(&str, RevocationReasonCode); 9] = [
    ("compromise", RevocationReasonCode::KEY_COMPROMISE),
    ("key-compromise", RevocationReasonCode::KEY_COMPROMISE),
    ("ca-compromise", RevocationReasonCode::CA_COMPROMISE),
    ("superseded", RevocationReasonCode::SUPERSEDED),
    ("cessation", RevocationReasonCode::CESSATION_OF_OPERATION),
    (
        "cessation-of-operation",
        RevocationReasonCode::CESSATION_OF_OPERATION,
    ),
    ("affiliation-changed", RevocationReasonCode::AFFILIATION_CHANGED),
    ("privilege-withdrawn", RevocationReasonCode::PRIVILEGE_WITHDRAWN),
    ("unspecified", RevocationReasonCode::UNSPECIFIED),
];

fn parse_reason(text: &str) -> CliResult<RevocationReasonCode> {
    let wanted = text.to_ascii_lowercase().replace('_', "-");
    REASONS
        .iter()
        .find(|(word, _)| *word == wanted)
        .map(|(_, code)| *code)
        .ok_or_else(|| {
            CliError::new(format!(
                "--reason {text:?}: use compromise, ca-compromise, superseded, cessation, affiliation-changed, privilege-withdrawn or unspecified"
            ))
        })
}

pub(super) fn run(a: &RevokeArgs) -> CliResult {
    let code = parse_reason(&a.reason)?;
    if a.message.as_ref().is_some_and(|m| m.len() > 1024) {
        return Err(CliError::new("--message: at most 1024 bytes"));
    }
    let inv = Inventory::open(&a.config.config)?;
    let reason = RevocationReason {
        code,
        message: a.message.clone(),
    };
    let reason_name = code.name().unwrap_or("Unknown");
    let state = inv
        .change(&a.config.config, |keys| async move {
            keys.admin_revoke(&a.id, &reason, now_unix()).await
        })
        .map_err(|e| refused(&inv, "KeyRevoke", &a.id, key_error(&a.id, e)))?;
    inv.audit(
        AuditEvent::admin("KeyRevoke")
            .object(Some(&a.id))
            .message(&format!("reason {reason_name}; now {}", state_name(state))),
    )?;
    println!("revoked key {} ({reason_name}): now {}", a.id, state_name(state));
    Ok(())
}
