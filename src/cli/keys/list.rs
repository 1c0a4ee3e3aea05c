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
    let keys = inv
        .block_on(inv.admin.list(&filter, now_unix()))
        .map_err(|e| CliError::from(e).context("listing keys"))?;
    let out = if a.json {
        let rows: Vec<_> = keys.iter().map(summary_json).collect();
        let mut text = serde_json::to_string_pretty(&rows).map_err(|e| CliError::new(e.to_string()))?;
        text.push('\n');
        text
    } else {
        table(&keys)
    };
    write_output(out.as_bytes())
}

fn table(keys: &[crate::keys::StoredObject]) -> String {
    let header = [
        "UID",
        "STATE",
        "ALGORITHM",
        "GROUP",
        "CREATED BY",
        "X-NAME",
        "X-IDENTIFIER",
        "X-COMPONENT",
        "CREATED",
    ];
    let rows: Vec<[String; 9]> = keys
        .iter()
        .map(|k| {
            // Tags come from clients: escape control characters, one key per line.
            let text = |name: &str| crate::audit::escape_controls(text_of(k, name).unwrap_or("-"));
            [
                k.uid.clone(),
                state_name(k.state),
                algorithm(k),
                k.group.clone(),
                text(names::CREATED_BY),
                text("x-Name"),
                text("x-Identifier"),
                text("x-Component"),
                format_time(k.created_at),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    out
}
