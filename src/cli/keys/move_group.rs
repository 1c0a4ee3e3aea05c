//! `keyward keys move ID --group G`: gives a key to another group. From the
//! next request on, clients of the old group get Item Not Found for it and
//! clients of the new group see it (KMIP Locate included).

use super::{ConfigOption, Inventory, key_error, now_unix, refused};
use crate::audit::AuditEvent;
use crate::cli::{CliError, CliResult};
use crate::config::clients::{is_valid_name, load_dir};

#[derive(Debug, clap::Args)]
pub struct MoveArgs {
    /// The key's Unique Identifier.
    id: String,
    /// The group to move it to.
    #[arg(long, value_name = "GROUP")]
    group: String,
    #[command(flatten)]
    config: ConfigOption,
}

pub(super) fn run(a: &MoveArgs) -> CliResult {
    if !is_valid_name(&a.group) {
        return Err(CliError::new(format!(
            "--group {:?}: use 1 to 64 letters, digits, '.', '_', '-', not starting with '.'",
            a.group
        )));
    }
    let inv = Inventory::open(&a.config.config)?;
    // The key's material is sealed bound to its group: moving it re-seals it,
    // so this command needs the HSM (and its PIN), like `root rotate`.
    let from = inv
        .change(&a.config.config, |keys| async move {
            keys.move_to_group(&a.id, &a.group, now_unix()).await
        })
        .map_err(|e| refused(&inv, "KeyMove", &a.id, key_error(&a.id, e)))?;
    inv.audit(
        AuditEvent::admin("KeyMove")
            .object(Some(&a.id))
            .message(&format!("group {from} -> {}", a.group)),
    )?;
    println!("moved key {} from group {from:?} to group {:?}", a.id, a.group);
    if !group_has_clients(&inv, &a.group) {
        eprintln!(
            "note: no trusted client is in group {:?} yet (`keyward clients add … --group {}`)",
            a.group, a.group
        );
    }
    Ok(())
}

/// Whether a trust entry names the group (the default group counts as present:
/// entries without a group are in it).
fn group_has_clients(inv: &Inventory, group: &str) -> bool {
    let Some(dir) = &inv.config.tls.clients_dir else {
        return true;
    };
    match load_dir(dir) {
        Ok(entries) => entries
            .iter()
            .any(|e| e.group.as_deref().unwrap_or(crate::auth::DEFAULT_GROUP) == group),
        Err(_) => true,
    }
}
