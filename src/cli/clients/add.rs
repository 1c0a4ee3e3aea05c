//! `keyward clients add NAME --ca FILE | --cert FILE | --fingerprint HEX [--group G]`.

use std::path::PathBuf;

use super::{ClientsDir, ConfigOption, applied_note, check_group, now_unix, read_cert_file};
use crate::auth::{TrustSnapshot, TrustSource};
use crate::cli::{CliError, CliResult};
use crate::config::clients::{ClientEntry, ClientKind};
use crate::pki::{self, Fingerprint};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("trust").required(true).args(["ca", "cert", "fingerprint"]))]
pub struct AddArgs {
    /// The client's name (also the name of its entry file).
    name: String,
    /// Trust every certificate this CA issues: vCenter's root CA (VMCA), PEM.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Trust exactly this certificate (vCenter's own, self-signed ones included), PEM.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Trust the certificate with this SHA-256 fingerprint (64 hex digits, colons optional).
    #[arg(long, value_name = "HEX")]
    fingerprint: Option<String>,
    /// The client's group: clients of one group see each other's keys (default "default").
    #[arg(long)]
    group: Option<String>,
    #[command(flatten)]
    credential: super::password::CredentialArgs,
    #[command(flatten)]
    config: ConfigOption,
}

pub(super) fn run(a: &AddArgs) -> CliResult {
    let clients = ClientsDir::open(&a.config.config)?;
    clients.check_new_name(&a.name)?;
    check_group(a.group.as_deref())?;
    let mut entry = ClientEntry {
        name: a.name.clone(),
        kind: ClientKind::Pin,
        cert: None,
        fingerprint: None,
        group: a.group.clone(),
        password: None,
    };
    let (pem, summary) = if let Some(path) = &a.ca {
        let certs = read_cert_file(path)?;
        let mut builder = TrustSnapshot::builder();
        let mut subjects = Vec::new();
        for der in &certs {
            let info = pki::inspect_der(der).map_err(|e| CliError::from(e).context(path.display()))?;
            if !info.is_ca {
                return Err(CliError::new(format!(
                    "{}: {} is not a CA certificate (no basicConstraints CA:TRUE); use --cert to pin it",
                    path.display(),
                    info.subject
                )));
            }
            if info.not_after < now_unix() {
                return Err(CliError::new(format!(
                    "{}: CA {} expired on {}",
                    path.display(),
                    info.subject,
                    super::format_time(info.not_after)
                )));
            }
            builder.add_ca(TrustSource::new(a.name.clone(), None), der.clone());
            subjects.push(info.subject);
        }
        builder
            .build()
            .map_err(|e| CliError::from(e).context(path.display()))?;
        entry.kind = ClientKind::Ca;
        let pem: String = certs
            .iter()
            .map(|der| pki::der_to_pem("CERTIFICATE", der))
            .collect();
        (Some(pem), format!("CA {}", subjects.join("; ")))
    } else if let Some(path) = &a.cert {
        // The first certificate of the file is the client's own (a chain may follow).
        let der = read_cert_file(path)?
            .into_iter()
            .next()
            .ok_or_else(|| CliError::new(format!("{}: no certificate", path.display())))?;
        let info = pki::inspect_der(&der).map_err(|e| CliError::from(e).context(path.display()))?;
        if info.not_after < now_unix() {
            return Err(CliError::new(format!(
                "{}: certificate {} expired on {}; vCenter must present a valid one",
                path.display(),
                info.subject,
                super::format_time(info.not_after)
            )));
        }
        clients.check_not_pinned(&info.fingerprint)?;
        entry.fingerprint = Some(info.fingerprint.0);
        (
            Some(pki::der_to_pem("CERTIFICATE", &der)),
            format!("certificate {} (SHA-256 {})", info.subject, info.fingerprint),
        )
    } else if let Some(text) = &a.fingerprint {
        let fingerprint: Fingerprint = text.parse().map_err(|_| {
            CliError::new(format!(
                "--fingerprint {text:?}: a SHA-256 fingerprint is 64 hex digits (colons optional)"
            ))
        })?;
        clients.check_not_pinned(&fingerprint)?;
        entry.fingerprint = Some(fingerprint.0);
        (None, format!("certificate with SHA-256 {fingerprint}"))
    } else {
        return Err(CliError::new("give one of --ca, --cert or --fingerprint"));
    };
    // The rest of the folder must load too, or the server would not apply the change.
    clients.entries()?;
    entry.password = a.credential.load()?;
    let password_note = entry
        .password
        .as_ref()
        .map(|p| format!("; requires username {:?} and its password", p.username))
        .unwrap_or_default();
    clients.commit(entry, pem.as_deref())?;
    println!(
        "added client {:?} in group {:?}: trusts {summary}{password_note}",
        a.name,
        a.group.as_deref().unwrap_or(crate::auth::DEFAULT_GROUP)
    );
    println!("{}", applied_note());
    Ok(())
}
