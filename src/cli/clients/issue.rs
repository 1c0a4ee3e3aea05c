//! `keyward clients issue` (vCenter's "KMS certificate and private key" method) and
//! `keyward clients sign-csr` (vCenter's "Sign CSR" method). The certificates come from
//! keyward's issuing CA; each is also pinned as a client entry, so that `clients
//! remove` revokes it (which it could not if the issuing CA itself were trusted).

use std::path::{Path, PathBuf};

use super::{ClientsDir, ConfigOption, applied_note, check_group};
use crate::cli::{CliError, CliResult};
use crate::config::clients::{ClientEntry, ClientKind};
use crate::password::ClientPassword;
use crate::pki::{self, Fingerprint, KeyKind};

/// Days an issued client certificate is valid unless `--days` says otherwise.
const DEFAULT_DAYS: u32 = 825;
/// Largest CSR file read (a real one is about 1 KiB).
const MAX_CSR_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KeyType {
    /// RSA 2048: what every vCenter release accepts.
    Rsa2048,
    Rsa3072,
    EcdsaP256,
}

#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The client's name; also the certificate's common name and the output file names.
    name: String,
    /// The client's group (default "default").
    #[arg(long)]
    group: Option<String>,
    /// Folder to write NAME.pem and NAME.key (0600) into; refused if either exists.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = DEFAULT_DAYS)]
    days: u32,
    /// Key algorithm.
    #[arg(long, value_enum, default_value = "rsa2048")]
    key_type: KeyType,
    #[command(flatten)]
    credential: super::password::CredentialArgs,
    #[command(flatten)]
    config: ConfigOption,
}

#[derive(Debug, clap::Args)]
pub struct SignCsrArgs {
    /// The client's name.
    name: String,
    /// The certificate signing request vCenter generated (PEM).
    csr: PathBuf,
    /// The client's group (default "default").
    #[arg(long)]
    group: Option<String>,
    /// Where to write the signed certificate (refused if it exists); default stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Validity in days.
    #[arg(long, default_value_t = DEFAULT_DAYS)]
    days: u32,
    #[command(flatten)]
    credential: super::password::CredentialArgs,
    #[command(flatten)]
    config: ConfigOption,
}

pub(super) fn run_issue(a: &IssueArgs) -> CliResult {
    let clients = ClientsDir::open(&a.config.config)?;
    clients.check_new_name(&a.name)?;
    check_group(a.group.as_deref())?;
    clients.entries()?;
    let password = a.credential.load()?;
    let ca = clients.issuing_ca()?;
    let cert_out = a.out.join(format!("{}.pem", a.name));
    let key_out = a.out.join(format!("{}.key", a.name));
    refuse_existing(&cert_out)?;
    refuse_existing(&key_out)?;
    if !a.out.is_dir() {
        return Err(CliError::new(format!("{}: not a folder", a.out.display())));
    }
    let kind = match a.key_type {
        KeyType::Rsa2048 => KeyKind::Rsa2048,
        KeyType::Rsa3072 => KeyKind::Rsa3072,
        KeyType::EcdsaP256 => KeyKind::EcdsaP256,
    };
    let issued = ca.issue_client(&a.name, kind, a.days)?;
    let fingerprint = Fingerprint::of_der(&issued.cert_der);
    pki::write_private_pem(&key_out, &issued.key_pem)?;
    if let Err(e) = pki::write_public_pem(&cert_out, &issued.cert_pem) {
        let _ = std::fs::remove_file(&key_out);
        return Err(e.into());
    }
    if let Err(e) = record(
        &clients,
        a.name.clone(),
        a.group.clone(),
        password,
        &issued.cert_der,
    ) {
        let _ = std::fs::remove_file(&key_out);
        let _ = std::fs::remove_file(&cert_out);
        return Err(e);
    }
    println!("issued client {:?}: SHA-256 {fingerprint}", a.name);
    println!("certificate: {}", cert_out.display());
    println!(
        "private key: {} (mode 0600; give it to vCenter, then delete it here)",
        key_out.display()
    );
    println!("{}", applied_note());
    Ok(())
}

pub(super) fn run_sign_csr(a: &SignCsrArgs) -> CliResult {
    let clients = ClientsDir::open(&a.config.config)?;
    clients.check_new_name(&a.name)?;
    check_group(a.group.as_deref())?;
    clients.entries()?;
    let password = a.credential.load()?;
    let ca = clients.issuing_ca()?;
    if let Some(out) = &a.out {
        refuse_existing(out)?;
    }
    let csr = crate::config::read_bounded(&a.csr, MAX_CSR_FILE_BYTES)?;
    let cert_pem = ca
        .sign_csr(&csr, a.days)
        .map_err(|e| CliError::from(e).context(a.csr.display()))?;
    let der = pki::certs_from_pem(&cert_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::new("signing produced no certificate"))?;
    let info = pki::inspect_der(&der)?;
    clients.check_not_pinned(&info.fingerprint)?;
    if let Some(out) = &a.out {
        pki::write_public_pem(out, &cert_pem)?;
    }
    if let Err(e) = record(&clients, a.name.clone(), a.group.clone(), password, &der) {
        if let Some(out) = &a.out {
            let _ = std::fs::remove_file(out);
        }
        return Err(e);
    }
    match &a.out {
        Some(out) => {
            println!(
                "signed {} for client {:?}: SHA-256 {}",
                info.subject, a.name, info.fingerprint
            );
            println!("certificate: {} (upload it to vCenter)", out.display());
            println!("{}", applied_note());
        }
        None => {
            // The certificate goes to stdout for piping; the notes go to stderr.
            print!("{cert_pem}");
            eprintln!(
                "signed {} for client {:?}: SHA-256 {}",
                info.subject, a.name, info.fingerprint
            );
            eprintln!("{}", applied_note());
        }
    }
    Ok(())
}

/// Pins the certificate as client `name`.
fn record(
    clients: &ClientsDir,
    name: String,
    group: Option<String>,
    password: Option<ClientPassword>,
    der: &[u8],
) -> CliResult {
    let entry = ClientEntry {
        name,
        kind: ClientKind::Pin,
        cert: None,
        fingerprint: Some(Fingerprint::of_der(der).0),
        group,
        password,
    };
    clients.commit(entry, Some(&pki::der_to_pem("CERTIFICATE", der)))
}

fn refuse_existing(path: &Path) -> CliResult {
    if path.exists() {
        return Err(CliError::new(format!(
            "{} exists; refusing to overwrite",
            path.display()
        )));
    }
    Ok(())
}
