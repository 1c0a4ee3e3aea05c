//! `keyward clients`: whom the server trusts as a KMIP client — vCenter's four trust
//! methods (its root CA, its own certificate pinned, a certificate + key issued here,
//! its CSR signed here), the list with "last seen", and removal.
//!
//! Every command works on the files of `tls.clients_dir` (see
//! [`crate::config::clients`]); a running `keyward serve` notices the change within
//! [`crate::service::supervise::WATCH_INTERVAL`] and applies it to the next handshake. Each command
//! checks everything before it writes anything, so a refused command changes nothing.

mod add;
mod issue;
mod list;
mod password;

use std::path::{Path, PathBuf};

use super::{CliError, CliResult, RunCommand};
use crate::config::clients::{self, ClientEntry};
use crate::config::{Config, IssuingCa};
use crate::pki::{self, CertificateAuthority, Fingerprint};

#[derive(Debug, clap::Subcommand)]
pub enum ClientsCommand {
    /// Trust a client: its root CA (--ca), its certificate (--cert) or a fingerprint.
    Add(add::AddArgs),
    /// Issue a client certificate and private key from keyward's CA and trust it.
    Issue(issue::IssueArgs),
    /// Sign a client's certificate signing request with keyward's CA and trust the result.
    SignCsr(issue::SignCsrArgs),
    /// List trusted clients: name, kind, group, expiry, last seen, subject, fingerprint.
    List(list::ListArgs),
    /// Stop trusting a client; its next handshake is refused.
    Remove(list::RemoveArgs),
    /// Require a KMIP username and password from a client on top of its certificate (or --clear).
    Password(password::PasswordArgs),
}

impl RunCommand for ClientsCommand {
    fn run(self) -> CliResult {
        match self {
            ClientsCommand::Add(a) => add::run(&a),
            ClientsCommand::Issue(a) => issue::run_issue(&a),
            ClientsCommand::SignCsr(a) => issue::run_sign_csr(&a),
            ClientsCommand::List(a) => list::run_list(&a),
            ClientsCommand::Remove(a) => list::run_remove(&a),
            ClientsCommand::Password(a) => password::run_password(&a),
        }
    }
}

/// The `--config` option every subcommand takes.
#[derive(Debug, clap::Args)]
pub struct ConfigOption {
    /// The configuration file (its `tls.clients_dir` holds the client entries).
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    pub config: PathBuf,
}

/// The loaded configuration and its clients folder.
pub(crate) struct ClientsDir {
    pub config: Config,
    pub dir: PathBuf,
}

impl ClientsDir {
    pub(super) fn open(config_path: &Path) -> CliResult<ClientsDir> {
        let config = Config::load(config_path)?;
        let dir = config.tls.clients_dir.clone().ok_or_else(|| {
            CliError::new(format!(
                "{}: tls.clients_dir is not set; add `clients_dir = \"clients\"` under [tls]",
                config_path.display()
            ))
        })?;
        Ok(ClientsDir { config, dir })
    }

    /// Refuses a name that is malformed or already taken.
    pub(super) fn check_new_name(&self, name: &str) -> CliResult {
        if !clients::is_valid_name(name) {
            return Err(CliError::new(format!(
                "client name {name:?}: use 1 to 64 letters, digits, '.', '_', '-', not starting with '.'"
            )));
        }
        let entry = clients::entry_path(&self.dir, name);
        let pem = clients::cert_path(&self.dir, name);
        if entry.exists() {
            return Err(CliError::new(format!(
                "a client named {name:?} exists; remove it first (`keyward clients remove {name}`)"
            )));
        }
        if pem.exists() {
            return Err(CliError::new(format!(
                "{} exists and is not a client entry; move it away first",
                pem.display()
            )));
        }
        Ok(())
    }

    /// Every entry in the folder; a broken one stops the command (the server would not
    /// load the folder either).
    pub(super) fn entries(&self) -> CliResult<Vec<ClientEntry>> {
        clients::load_dir(&self.dir).map_err(|e| {
            CliError::from(e).context("the clients folder has a broken entry (run `keyward check-config`)")
        })
    }

    /// Refuses a certificate already pinned under another name, so one certificate
    /// never maps to two clients (and two groups).
    pub(super) fn check_not_pinned(&self, fingerprint: &Fingerprint) -> CliResult {
        if self.config.tls.client_pins.contains(fingerprint.as_bytes()) {
            return Err(CliError::new(format!(
                "certificate {fingerprint} is already trusted by tls.client_pins in the configuration file"
            )));
        }
        for entry in self.entries()? {
            let pinned = match (entry.fingerprint, &entry.cert) {
                (Some(fp), _) => Some(Fingerprint(fp)),
                (None, Some(path)) if entry.kind == clients::ClientKind::Pin => {
                    first_cert_file(path).ok().map(|der| Fingerprint::of_der(&der))
                }
                _ => None,
            };
            if pinned.as_ref() == Some(fingerprint) {
                return Err(CliError::new(format!(
                    "certificate {fingerprint} is already trusted as client {:?}",
                    entry.name
                )));
            }
        }
        Ok(())
    }

    /// Writes the PEM (when given) and then the entry; if the entry cannot be written
    /// the PEM is taken away again.
    pub(super) fn commit(&self, mut entry: ClientEntry, pem: Option<&str>) -> CliResult {
        std::fs::create_dir_all(&self.dir).map_err(|e| CliError::from(e).context(self.dir.display()))?;
        let pem_path = clients::cert_path(&self.dir, &entry.name);
        if let Some(pem) = pem {
            pki::write_public_pem(&pem_path, pem)?;
            entry.cert = Some(pem_path.clone());
        }
        if let Err(e) = clients::write_entry(&self.dir, &entry) {
            if pem.is_some() {
                let _ = std::fs::remove_file(&pem_path);
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// keyward's CA, as named by `tls.issuing_ca_cert` / `tls.issuing_ca_key`.
    pub(super) fn issuing_ca(&self) -> CliResult<CertificateAuthority> {
        load_issuing_ca(&self.config)
    }
}

pub(crate) fn load_issuing_ca(config: &Config) -> CliResult<CertificateAuthority> {
    let Some(IssuingCa { cert, key }) = &config.tls.issuing_ca else {
        return Err(CliError::new(format!(
            "{}: no issuing CA configured; set tls.issuing_ca_cert and tls.issuing_ca_key to keyward's CA certificate and key",
            config.source.display()
        )));
    };
    Ok(CertificateAuthority::from_files(cert, key)?)
}

/// Reads a certificate PEM file (bounded), returning its certificates.
pub(crate) fn read_cert_file(path: &Path) -> CliResult<Vec<rustls_pki_types::CertificateDer<'static>>> {
    let text = crate::config::read_bounded(path, 1024 * 1024)?;
    pki::certs_from_pem(&text).map_err(|e| CliError::from(e).context(path.display()))
}

fn first_cert_file(path: &Path) -> CliResult<rustls_pki_types::CertificateDer<'static>> {
    read_cert_file(path)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::new(format!("{}: no certificate", path.display())))
}

/// `2026-01-31 12:00:00Z`, or the raw number if out of range.
pub(crate) fn format_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| unix.to_string())
}

pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Validates `--group`.
pub(crate) fn check_group(group: Option<&str>) -> CliResult {
    match group {
        Some(g) if !clients::is_valid_name(g) => Err(CliError::new(format!(
            "group {g:?}: use 1 to 64 letters, digits, '.', '_', '-', not starting with '.'"
        ))),
        _ => Ok(()),
    }
}

/// What every command that changed trust says last.
pub(crate) fn applied_note() -> String {
    format!(
        "a running server applies this within {} seconds (or at once on SIGHUP)",
        crate::service::supervise::WATCH_INTERVAL.as_secs()
    )
}
