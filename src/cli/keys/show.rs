//! `keyward keys show ID [--json]`: every attribute of one key and its history —
//! the lifecycle dates it carries and, when an audit file is configured, every
//! audit event naming it. Never the key material (it is not even unsealed).
//! A destroyed key still shows its metadata.

use serde_json::json;

use super::render::{format_time, state_name, text_of, value_text};
use super::{ConfigOption, Inventory, key_error, now_unix};
use crate::audit::{AuditEvent, AuditFilter, ReadError};
use crate::cli::io::write_output;
use crate::cli::{CliError, CliResult};
use crate::keys::{StoredObject, names};

/// The dates that make up a key's lifecycle, in the order they happen.
const LIFECYCLE_DATES: [&str; 8] = [
    names::ORIGINAL_CREATION_DATE,
    names::INITIAL_DATE,
    names::ACTIVATION_DATE,
    names::DEACTIVATION_DATE,
    names::COMPROMISE_OCCURRENCE_DATE,
    names::COMPROMISE_DATE,
    names::DESTROY_DATE,
    names::LAST_CHANGE_DATE,
];

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The key's Unique Identifier.
    id: String,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigOption,
}

pub(super) fn run(a: &ShowArgs) -> CliResult {
    let inv = Inventory::open(&a.config.config)?;
    let key = inv
        .block_on(inv.admin.load(&a.id, now_unix()))
        .map_err(|e| key_error(&a.id, e))?;
    let history = history(&inv, &a.id)?;
    let out = if a.json {
        let mut text = serde_json::to_string_pretty(&as_json(&key, &history))
            .map_err(|e| CliError::new(e.to_string()))?;
        text.push('\n');
        text
    } else {
        as_text(&key, &history)
    };
    write_output(out.as_bytes())
}

/// What the audit file says about the key; `None` when no file is configured.
fn history(inv: &Inventory, uid: &str) -> CliResult<Option<Vec<AuditEvent>>> {
    let Some(path) = &inv.config.audit.path else {
        return Ok(None);
    };
    let filter = AuditFilter {
        key: Some(uid.to_owned()),
        ..AuditFilter::default()
    };
    let mut events = Vec::new();
    match crate::audit::reader::read_file(path, &filter, |e| {
        events.push(e.clone());
        Ok(())
    }) {
        Ok(_) => Ok(Some(events)),
        Err(ReadError::Open(_, e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(events)),
        Err(e) => Err(CliError::from(e)),
    }
}

fn material(key: &StoredObject) -> String {
    if key.has_material() {
        format!("sealed under root key keyward-crk-{}", key.crk_version())
    } else {
        "destroyed (metadata only)".to_owned()
    }
}

fn as_text(key: &StoredObject, history: &Option<Vec<AuditEvent>>) -> String {
    let clean = crate::audit::escape_controls;
    let mut out = format!("key {}\n", key.uid);
    let mut field = |label: &str, value: String| out.push_str(&format!("  {label:<12} {}\n", clean(&value)));
    field("state:", state_name(key.state));
    field("type:", key.object_type.name().unwrap_or("unknown").to_owned());
    field("group:", key.group.clone());
    field(
        "created by:",
        text_of(key, names::CREATED_BY).unwrap_or("-").to_owned(),
    );
    field("created:", format_time(key.created_at));
    field("material:", material(key));
    out.push_str("attributes:\n");
    let width = key.attributes.iter().map(|a| label(a).len()).max().unwrap_or(0);
    for a in &key.attributes {
        out.push_str(&format!(
            "  {:<width$}  {}\n",
            clean(&label(a)),
            clean(&value_text(a, &a.value))
        ));
    }
    out.push_str("history:\n  lifecycle dates:\n");
    for (name, at) in lifecycle(key) {
        out.push_str(&format!("    {}  {name}\n", format_time(at)));
    }
    out.push_str("  audit trail:\n");
    match history {
        None => {
            out.push_str("    (no audit file is configured: `keyward audit --key ID` reads the journal)\n")
        }
        Some(events) if events.is_empty() => {
            out.push_str("    (no audit events for this key in the audit file)\n")
        }
        Some(events) => {
            for e in events {
                out.push_str(&format!(
                    "    {}  {}\n",
                    crate::audit::format_time(e.time),
                    e.summary()
                ));
            }
        }
    }
    out
}

fn label(a: &crate::kmip::attribute::Attribute) -> String {
    match a.index {
        Some(i) if i > 0 => format!("{} [{i}]", a.name),
        _ => a.name.clone(),
    }
}

fn lifecycle(key: &StoredObject) -> Vec<(&'static str, i64)> {
    let mut dates: Vec<(&'static str, i64)> = LIFECYCLE_DATES
        .iter()
        .filter_map(|n| key.date(n).map(|t| (*n, t)))
        .collect();
    dates.sort_by_key(|(_, t)| *t);
    dates
}

fn as_json(key: &StoredObject, history: &Option<Vec<AuditEvent>>) -> serde_json::Value {
    let attributes: Vec<_> = key
        .attributes
        .iter()
        .map(|a| json!({"name": a.name, "index": a.index.unwrap_or(0), "value": value_text(a, &a.value)}))
        .collect();
    let lifecycle: serde_json::Map<String, serde_json::Value> = lifecycle(key)
        .into_iter()
        .map(|(n, t)| (n.to_owned(), json!(format_time(t))))
        .collect();
    json!({
        "uid": key.uid,
        "state": state_name(key.state),
        "object_type": key.object_type.name(),
        "group": key.group,
        "created_by": text_of(key, names::CREATED_BY),
        "created": format_time(key.created_at),
        "material": if key.has_material() { "sealed" } else { "destroyed" },
        "crk_version": key.crk_version(),
        "attributes": attributes,
        "lifecycle": lifecycle,
        "history": history,
    })
}
