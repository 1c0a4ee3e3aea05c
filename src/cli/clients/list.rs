//! `keyward clients list [--json]` and `keyward clients remove NAME`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ClientsDir, ConfigOption, applied_note, format_time, read_cert_file};
use crate::auth::DEFAULT_GROUP;
use crate::auth::last_seen::{self, SeenRecord};
use crate::auth::{TrustSnapshot, TrustSource};
use crate::cli::{CliError, CliResult};
use crate::config::clients::{self, ClientKind};
use crate::pki::{self, Fingerprint};

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// One JSON array instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigOption,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The client to stop trusting.
    name: String,
    #[command(flatten)]
    config: ConfigOption,
}

/// One row of `clients list`.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    /// "ca" or "pin".
    kind: &'static str,
    group: String,
    /// SHA-256 of the pinned certificate, or of the (first) CA certificate.
    fingerprint: Option<String>,
    subject: Option<String>,
    issuer: Option<String>,
    /// RFC 3339 UTC.
    expires: Option<String>,
    last_seen: Option<String>,
    /// The certificate last presented under this entry.
    last_seen_fingerprint: Option<String>,
    /// "clients_dir", or "config" for trust listed in the configuration file.
    source: &'static str,
}

pub(super) fn run_list(a: &ListArgs) -> CliResult {
    let clients = ClientsDir::open(&a.config.config)?;
    let seen = last_seen::read_file(&clients.dir.join(clients::LAST_SEEN_FILE)).unwrap_or_default();
    let mut rows = Vec::new();
    for path in &clients.config.tls.client_ca {
        let name = format!("tls.client_ca {}", path.display());
        let der = read_cert_file(path)?.into_iter().next();
        rows.push(row(
            name,
            ClientKind::Ca,
            None,
            der.as_deref(),
            None,
            &seen,
            "config",
        )?);
    }
    for (i, pin) in clients.config.tls.client_pins.iter().enumerate() {
        let name = format!("tls.client_pins[{i}]");
        rows.push(row(
            name,
            ClientKind::Pin,
            None,
            None,
            Some(*pin),
            &seen,
            "config",
        )?);
    }
    for entry in clients.entries()? {
        let der = match &entry.cert {
            Some(path) => read_cert_file(path)?.into_iter().next(),
            None => None,
        };
        rows.push(row(
            entry.name,
            entry.kind,
            entry.group,
            der.as_deref(),
            entry.fingerprint,
            &seen,
            "clients_dir",
        )?);
    }
    if a.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| CliError::new(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:width$}  {:4}  {:12}  {:20}  {:20}  {:40}  FINGERPRINT (SHA-256)",
        "NAME", "KIND", "GROUP", "EXPIRES", "LAST SEEN", "SUBJECT"
    );
    for r in &rows {
        println!(
            "{:width$}  {:4}  {:12}  {:20}  {:20}  {:40}  {}",
            r.name,
            r.kind,
            r.group,
            r.expires.as_deref().unwrap_or("-"),
            r.last_seen.as_deref().unwrap_or("never"),
            r.subject.as_deref().unwrap_or("-"),
            r.fingerprint.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

fn row(
    name: String,
    kind: ClientKind,
    group: Option<String>,
    der: Option<&[u8]>,
    fingerprint: Option<[u8; 32]>,
    seen: &BTreeMap<String, SeenRecord>,
    source: &'static str,
) -> CliResult<Row> {
    let info = der.map(pki::inspect_der).transpose()?;
    let last = seen.get(&name);
    Ok(Row {
        kind: match kind {
            ClientKind::Ca => "ca",
            ClientKind::Pin => "pin",
        },
        group: group.unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
        fingerprint: info
            .as_ref()
            .map(|i| i.fingerprint)
            .or(fingerprint.map(Fingerprint))
            .map(|f| f.to_colon_hex()),
        subject: info.as_ref().map(|i| i.subject.clone()),
        issuer: info.as_ref().map(|i| i.issuer.clone()),
        expires: info.as_ref().map(|i| format_time(i.not_after)),
        last_seen: last.map(|s| format_time(s.unix)),
        last_seen_fingerprint: last.map(|s| s.fingerprint.clone()),
        source,
        name,
    })
}

pub(super) fn run_remove(a: &RemoveArgs) -> CliResult {
    let clients = ClientsDir::open(&a.config.config)?;
    if !clients::is_valid_name(&a.name) {
        return Err(CliError::new(format!("no client named {:?}", a.name)));
    }
    let entry_file = clients::entry_path(&clients.dir, &a.name);
    if !entry_file.exists() {
        return Err(CliError::new(format!(
            "no client named {:?} in {} (see `keyward clients list`)",
            a.name,
            clients.dir.display()
        )));
    }
    let text = crate::config::read_bounded(&entry_file, 64 * 1024)?;
    // A broken entry can still be removed: that is how an administrator fixes it.
    let entry = clients::parse_entry(&text, &entry_file, &clients.dir).ok();
    let pinned_cert = entry
        .as_ref()
        .filter(|e| e.kind == ClientKind::Pin)
        .and_then(|e| e.cert.as_deref())
        .and_then(|p| read_cert_file(p).ok())
        .and_then(|certs| certs.into_iter().next());
    clients::remove_entry(&clients.dir, &a.name)?;
    // The PEM `keyward clients` stored beside the entry goes too; one the entry merely
    // pointed to elsewhere is the administrator's and stays.
    let own_pem = clients::cert_path(&clients.dir, &a.name);
    if entry.as_ref().and_then(|e| e.cert.as_deref()) == Some(own_pem.as_path()) {
        let _ = std::fs::remove_file(&own_pem);
    }
    println!("removed client {:?}; its next handshake is refused", a.name);
    println!("{}", applied_note());
    if let Some(der) = pinned_cert {
        warn_if_still_trusted(&clients, &a.name, &der);
    }
    Ok(())
}

/// A pinned certificate issued by a CA that is itself trusted stays trusted after its
/// pin is removed; say so rather than let the administrator believe it was revoked.
fn warn_if_still_trusted(clients: &ClientsDir, name: &str, der: &[u8]) {
    let Ok(snapshot) = TrustSnapshot::from_config(&clients.config.tls) else {
        return;
    };
    let chain = [rustls_pki_types::CertificateDer::from(der.to_vec())];
    let by = snapshot
        .pinned(&Fingerprint::of_der(der))
        .or_else(|| snapshot.verifying_ca(&chain, rustls_pki_types::UnixTime::now()))
        .map(|s: &TrustSource| s.name.clone());
    if let Some(by) = by {
        eprintln!(
            "keyward: warning: {name}'s certificate is still trusted through {by:?}; remove that too to refuse it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_prefers_the_certificate_and_defaults_the_group() {
        let ca = crate::pki::CertificateAuthority::generate("VMCA", 10).unwrap();
        let mut seen = BTreeMap::new();
        seen.insert(
            "vc".to_string(),
            SeenRecord {
                unix: 0,
                fingerprint: "x".into(),
            },
        );
        let r = row(
            "vc".into(),
            ClientKind::Ca,
            None,
            Some(ca.cert_der()),
            None,
            &seen,
            "clients_dir",
        )
        .unwrap();
        assert_eq!(r.group, DEFAULT_GROUP);
        assert_eq!(r.last_seen.as_deref(), Some("1970-01-01 00:00:00Z"));
        assert_eq!(r.subject.as_deref(), Some("CN=VMCA"));
        let bare = row(
            "p".into(),
            ClientKind::Pin,
            Some("g".into()),
            None,
            Some([0xab; 32]),
            &seen,
            "config",
        )
        .unwrap();
        assert!(bare.fingerprint.unwrap().starts_with("AB:AB"));
        assert_eq!(bare.last_seen, None);
    }
}
