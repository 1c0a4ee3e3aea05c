//! `keyward keys list [filters] [--json]`: the inventory, as a table or JSON.

use super::render::{algorithm, format_time, parse_state, state_name, summary_json, text_of};
use super::{ConfigOption, Inventory, now_unix};
use crate::audit::reader::parse_time;
use crate::cli::io::write_output;
use crate::cli::{CliError, CliResult};
use crate::config::clients::is_valid_name;
use crate::keys::admin::InventoryFilter;
use crate::keys::names;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only keys in this state: pre-active, active, deactivated, compromised, destroyed, destroyed-compromised.
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Only keys created (or registered) by this client (its trust entry name).
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// Only keys of this group.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Only keys with this KMIP Name.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Only keys whose x-Name (vCenter: the VM or host name) is exactly this.
    #[arg(long, value_name = "TEXT")]
    x_name: Option<String>,
    /// Only keys whose x-Identifier (vCenter: the VM or host UUID) is exactly this.
    #[arg(long, value_name = "TEXT")]
    x_identifier: Option<String>,
    /// Only keys whose x-Component (vCenter: "Virtual Machine", …) is exactly this.
    #[arg(long, value_name = "TEXT")]
    x_component: Option<String>,
    /// Only keys created at or before this time (RFC 3339, a date, now, -15m, -2d …).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    created_before: Option<String>,
    /// Only keys created at or after this time.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    created_after: Option<String>,
    /// JSON (an array of objects) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigOption,
}

impl ListArgs {
    fn filter(&self) -> CliResult<InventoryFilter> {
        let now = time::OffsetDateTime::now_utc();
        let when = |flag: &str, text: &Option<String>| -> CliResult<Option<i64>> {
            text.as_deref()
                .map(|t| {
                    parse_time(t, now)
                        .map(|t| t.unix_timestamp())
                        .map_err(|e| CliError::new(format!("--{flag}: {e}")))
                })
                .transpose()
        };
        if let Some(g) = &self.group
            && !is_valid_name(g)
        {
            return Err(CliError::new(format!(
                "--group {g:?}: use 1 to 64 letters, digits, '.', '_', '-', not starting with '.'"
            )));
        }
        let filter = InventoryFilter {
            state: self.state.as_deref().map(parse_state).transpose()?,
            group: self.group.clone(),
            created_by: self.client.clone(),
            name: self.name.clone(),
            x_name: self.x_name.clone(),
            x_identifier: self.x_identifier.clone(),
            x_component: self.x_component.clone(),
            created_after: when("created-after", &self.created_after)?,
            created_before: when("created-before", &self.created_before)?,
        };
        if let (Some(a), Some(b)) = (filter.created_after, filter.created_before)
            && a > b
        {
            return Err(CliError::new("--created-after is later than --created-before"));
        }
        Ok(filter)
    }
}

pub(super) fn run(a: &ListArgs) -> CliResult {
    // Check the filter before touching the store.
    let filter = a.filter()?;
    let inv = Inventory::open(&a.config.config)?;
    // Printed a page at a time as the store is read: the first lines of a large
    // inventory come at once, and memory holds one page.
    let mut first = true;
    let mut failed: Option<CliError> = None;
    let listed =
        inv.block_on(
            inv.admin
                .list_pages(&filter, now_unix(), crate::keys::admin::LIST_PAGE, |page| {
                    let text = if a.json {
                        json_rows(&page, first)
                    } else {
                        table_rows(&page, first)
                    };
                    first = false;
                    match text.and_then(|t| write_output(t.as_bytes())) {
                        Ok(()) => Ok(()),
                        Err(e) => {
                            failed = Some(e);
                            Err(crate::keys::KeyError::Invalid("output failed".into()))
                        }
                    }
                }),
        );
    if let Some(e) = failed {
        return Err(e);
    }
    listed.map_err(|e| CliError::from(e).context("listing keys"))?;
    match (a.json, first) {
        (true, true) => write_output(b"[]\n"),
        (true, false) => write_output(b"\n]\n"),
        (false, true) => write_output(header_line().as_bytes()),
        (false, false) => Ok(()),
    }
}

/// One page of the JSON array: the opening bracket before the first.
fn json_rows(keys: &[crate::keys::StoredObject], first: bool) -> CliResult<String> {
    let mut out = String::from(if first { "[\n" } else { ",\n" });
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        let row =
            serde_json::to_string_pretty(&summary_json(key)).map_err(|e| CliError::new(e.to_string()))?;
        for (n, line) in row.lines().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            out.push_str("  ");
            out.push_str(line);
        }
    }
    Ok(out)
}

/// Columns and their widths: fixed, since the table is printed before all of
/// it is read (a longer cell pushes its own line only).
const COLUMNS: [(&str, usize); 9] = [
    ("UID", 36),
    ("STATE", 11),
    ("ALGORITHM", 9),
    ("GROUP", 12),
    ("CREATED BY", 14),
    ("X-NAME", 20),
    ("X-IDENTIFIER", 36),
    ("X-COMPONENT", 15),
    ("CREATED", 20),
];

fn line(cells: &[String]) -> String {
    let mut l = String::new();
    for (i, (cell, (_, w))) in cells.iter().zip(COLUMNS).enumerate() {
        if i + 1 == cells.len() {
            l.push_str(cell);
        } else {
            l.push_str(&format!("{cell:<w$}  "));
        }
    }
    let mut l = l.trim_end().to_owned();
    l.push('\n');
    l
}

fn header_line() -> String {
    line(&COLUMNS.map(|(name, _)| name.to_owned()))
}

/// One page of the table: the header before the first.
fn table_rows(keys: &[crate::keys::StoredObject], first: bool) -> CliResult<String> {
    let mut out = if first { header_line() } else { String::new() };
    for k in keys {
        // Tags come from clients: escape control characters, one key per line.
        let text = |name: &str| crate::audit::escape_controls(text_of(k, name).unwrap_or("-"));
        out.push_str(&line(&[
            k.uid.clone(),
            state_name(k.state),
            algorithm(k),
            k.group.clone(),
            text(names::CREATED_BY),
            text("x-Name"),
            text("x-Identifier"),
            text("x-Component"),
            format_time(k.created_at),
        ]));
    }
    Ok(out)
}
