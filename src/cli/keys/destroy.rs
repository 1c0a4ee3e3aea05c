//! `keyward keys destroy ID [--yes]`: as KMIP Destroy — the sealed material is
//! erased, the metadata stays (state Destroyed, or Destroyed Compromised). An
//! Active key is refused: revoke it first. On a terminal the administrator
//! confirms by typing the key's id; elsewhere `--yes` is required.

use std::io::{BufRead, IsTerminal, Write};

use super::render::state_name;
use super::{ConfigOption, Inventory, key_error, now_unix, refused};
use crate::audit::AuditEvent;
use crate::cli::{CliError, CliResult};
use crate::keys::lifecycle;

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    /// The key's Unique Identifier.
    id: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    config: ConfigOption,
}

pub(super) fn run(a: &DestroyArgs) -> CliResult {
    let inv = Inventory::open(&a.config.config)?;
    let now = now_unix();
    // Check before asking: a confirmation for a key that cannot be destroyed
    // would only waste the administrator's time.
    let key = inv
        .block_on(inv.admin.load(&a.id, now))
        .map_err(|e| key_error(&a.id, e))?;
    if let Err(e) = lifecycle::destroy(key.state) {
        let e = key_error(&a.id, crate::keys::transition_error(e));
        let hint = if key.state == crate::kmip::State::ACTIVE {
            format!(
                "{e} (an Active key must be revoked first: `keyward keys revoke {} --reason …`)",
                a.id
            )
        } else {
            e.to_string()
        };
        return Err(refused(&inv, "KeyDestroy", &a.id, CliError::new(hint)));
    }
    if !a.yes {
        confirm(
            &a.id,
            key.attributes
                .iter()
                .find(|x| x.name == "x-Name")
                .and_then(|x| x.value.as_text()),
        )?;
    }
    let state = inv
        .change(&a.config.config, |keys| async move {
            keys.admin_destroy(&a.id, now).await
        })
        .map_err(|e| refused(&inv, "KeyDestroy", &a.id, key_error(&a.id, e)))?;
    let x_name = key
        .attributes
        .iter()
        .find(|x| x.name == "x-Name")
        .and_then(|x| x.value.as_text());
    inv.audit(
        AuditEvent::admin("KeyDestroy")
            .object(Some(&a.id))
            .x_name(x_name)
            .message(&format!("now {}", state_name(state))),
    )?;
    println!(
        "destroyed key {}: now {} (metadata kept)",
        a.id,
        state_name(state)
    );
    Ok(())
}

/// Asks the administrator to type the id; refuses when there is no terminal.
fn confirm(uid: &str, x_name: Option<&str>) -> CliResult {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::new(
            "not on a terminal: give --yes to destroy without confirmation",
        ));
    }
    let what = x_name
        .map(|n| format!(" ({})", crate::audit::escape_controls(n)))
        .unwrap_or_default();
    eprint!(
        "Destroying key {uid}{what} erases its material for good; data it protects becomes unreadable.\nType the key id to confirm: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::from(e).context("reading the confirmation"))?;
    if answer.trim() == uid {
        Ok(())
    } else {
        Err(CliError::new("not confirmed; nothing destroyed"))
    }
}
