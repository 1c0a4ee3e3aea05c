//! `keyward server-cert show|renew`: the certificate keyward presents to vCenter.
//!
//! `show` prints what vCenter's "Make vCenter trust KMS" dialog shows. `renew` makes a
//! new key and certificate from the issuing CA and replaces `tls.cert` / `tls.key`
//! atomically; a running server serves the new pair to new connections within seconds
//! (it watches the files; SIGHUP works too) while established connections carry on.

use super::clients::{ConfigOption, format_time, load_issuing_ca, read_cert_file};
use super::{CliError, CliResult, RunCommand};
use crate::config::Config;
use crate::pki::{self, Fingerprint, KeyKind};

/// Days a renewed server certificate is valid unless `--days` says otherwise.
const DEFAULT_DAYS: u32 = 825;

#[derive(Debug, clap::Subcommand)]
pub enum ServerCertCommand {
    /// Subject, issuer, validity and SHA-256 fingerprint of the server certificate.
    Show(ConfigOption),
    /// Replace the server key and certificate with new ones from the issuing CA.
    Renew(RenewArgs),
}

#[derive(Debug, clap::Args)]
pub struct RenewArgs {
    /// Validity in days.
    #[arg(long, default_value_t = DEFAULT_DAYS)]
    days: u32,
    /// DNS names and IP addresses (repeatable); default: those of the current certificate.
    #[arg(long = "server-name")]
    server_names: Vec<String>,
    #[command(flatten)]
    config: ConfigOption,
}

impl RunCommand for ServerCertCommand {
    fn run(self) -> CliResult {
        match self {
            ServerCertCommand::Show(c) => show(&c.config),
            ServerCertCommand::Renew(a) => renew(&a),
        }
    }
}

fn show(config_path: &std::path::Path) -> CliResult {
    let config = Config::load(config_path)?;
    let der = first_cert(&config.tls.cert)?;
    let info = pki::inspect_der(&der)?;
    let names = pki::subject_alt_names(&der)?;
    println!("certificate: {}", config.tls.cert.display());
    println!("subject:     {}", info.subject);
    println!("issuer:      {}", info.issuer);
    println!(
        "names:       {}",
        if names.is_empty() {
            "-".into()
        } else {
            names.join(", ")
        }
    );
    println!("serial:      {}", info.serial);
    println!("valid from:  {}", format_time(info.not_before));
    println!("valid until: {}", format_time(info.not_after));
    println!("SHA-256:     {}", info.fingerprint);
    Ok(())
}

fn renew(a: &RenewArgs) -> CliResult {
    let config = Config::load(&a.config.config)?;
    let ca = load_issuing_ca(&config)?;
    // Keep what vCenter connects to and the key algorithm, unless told otherwise.
    let (names, kind) = match first_cert(&config.tls.cert) {
        Ok(der) => (
            if a.server_names.is_empty() {
                pki::subject_alt_names(&der)?
            } else {
                a.server_names.clone()
            },
            if pki::has_rsa_key(&der)? {
                KeyKind::Rsa2048
            } else {
                KeyKind::EcdsaP256
            },
        ),
        Err(_) => (a.server_names.clone(), KeyKind::EcdsaP256),
    };
    let old = first_cert(&config.tls.cert)
        .ok()
        .map(|der| Fingerprint::of_der(&der));
    let issued = ca.issue_server(&names, kind, a.days)?;
    // Key first, then certificate: a server polling in between sees a pair that does
    // not match, keeps the old one and picks up the new pair on its next look.
    pki::write_private_pem(&config.tls.key, &issued.key_pem)?;
    pki::write_public_pem(&config.tls.cert, &issued.cert_pem)?;
    let info = pki::inspect_der(&issued.cert_der)?;
    if let Some(old) = old {
        println!("old SHA-256: {old}");
    }
    println!("new SHA-256: {}", info.fingerprint);
    println!("subject:     {}", info.subject);
    println!("valid until: {}", format_time(info.not_after));
    println!(
        "a running server serves it within {} seconds; if vCenter trusted the old certificate \
         itself (not keyward's CA), make vCenter trust the KMS again",
        crate::service::supervise::WATCH_INTERVAL.as_secs()
    );
    Ok(())
}

fn first_cert(path: &std::path::Path) -> CliResult<rustls_pki_types::CertificateDer<'static>> {
    read_cert_file(path)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::new(format!("{}: no certificate", path.display())))
}
