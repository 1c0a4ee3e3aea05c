//! KMIP Username/Password on top of a client's certificate: `--username U
//! --password-file F` on `clients add|issue|sign-csr`, and `keyward clients
//! password NAME --username U --password-file F | --clear` for an existing client.
//!
//! Only a salted PBKDF2 hash reaches the trust file ([`crate::password`]); the
//! password is read from a file (never the command line, where `ps` and shell
//! history would keep it) and dropped from memory zeroized.

use std::path::{Path, PathBuf};

use super::{ClientsDir, ConfigOption, applied_note};
use crate::audit::{AuditEvent, AuditSettings, AuditSink};
use crate::cli::{CliError, CliResult};
use crate::config::clients::{self, is_valid_username};
use crate::password::{ClientPassword, MAX_PASSWORD_BYTES, PasswordHash};
use crate::secret::SecretString;

/// The credential options of `clients add|issue|sign-csr`.
#[derive(Debug, clap::Args)]
pub(super) struct CredentialArgs {
    /// Also require this KMIP username (with --password-file) on the client's requests.
    #[arg(long, requires = "password_file")]
    username: Option<String>,
    /// File whose first line is the client's KMIP password; only a salted hash is stored.
    #[arg(long, value_name = "FILE", requires = "username")]
    password_file: Option<PathBuf>,
}

impl CredentialArgs {
    /// The credential to store, if the options ask for one.
    pub(super) fn load(&self) -> CliResult<Option<ClientPassword>> {
        match (&self.username, &self.password_file) {
            (Some(username), Some(file)) => Ok(Some(make_credential(username, file)?)),
            _ => Ok(None),
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["username", "clear"]))]
pub struct PasswordArgs {
    /// The client's name.
    name: String,
    /// The KMIP username the client must send (with --password-file).
    #[arg(long, requires = "password_file")]
    username: Option<String>,
    /// File whose first line is the client's KMIP password.
    #[arg(long, value_name = "FILE", requires = "username")]
    password_file: Option<PathBuf>,
    /// Stop requiring a username and password from this client.
    #[arg(long, conflicts_with_all = ["username", "password_file"])]
    clear: bool,
    #[command(flatten)]
    config: ConfigOption,
}

pub(super) fn run_password(a: &PasswordArgs) -> CliResult {
    let clients = ClientsDir::open(&a.config.config)?;
    let mut entry = clients
        .entries()?
        .into_iter()
        .find(|e| e.name == a.name)
        .ok_or_else(|| {
            CliError::new(format!(
                "no client named {:?} (see `keyward clients list`)",
                a.name
            ))
        })?;
    let (operation, said) = match (&a.username, &a.password_file, a.clear) {
        (Some(username), Some(file), false) => {
            entry.password = Some(make_credential(username, file)?);
            (
                "ClientPasswordSet",
                format!(
                    "client {:?} must now send username {username:?} and its password",
                    a.name
                ),
            )
        }
        (None, None, true) => {
            if entry.password.is_none() {
                return Err(CliError::new(format!(
                    "client {:?} has no password to clear",
                    a.name
                )));
            }
            entry.password = None;
            (
                "ClientPasswordClear",
                format!("client {:?} no longer needs a username and password", a.name),
            )
        }
        _ => return Err(CliError::new("give --username with --password-file, or --clear")),
    };
    clients::write_entry(&clients.dir, &entry)?;
    let event = AuditEvent::admin(operation).message(&format!("client {}", a.name));
    AuditSink::record(AuditSettings::new(clients.config.audit.path.clone()), event)
        .map_err(|e| CliError::from(e).context("the change is made but its audit event was not written"))?;
    println!("{said}");
    println!("{}", applied_note());
    Ok(())
}

/// Reads the password file and hashes its first line under `username`.
fn make_credential(username: &str, file: &Path) -> CliResult<ClientPassword> {
    if !is_valid_username(username) {
        return Err(CliError::new(format!(
            "--username {username:?}: use 1 to 128 printable characters without spaces"
        )));
    }
    let password = read_password_file(file)?;
    let hash = PasswordHash::new(password.expose().as_bytes())
        .map_err(|e| CliError::from(e).context(file.display()))?;
    Ok(ClientPassword {
        username: username.to_owned(),
        hash,
    })
}

/// The first line of `file`, without its line ending.
fn read_password_file(file: &Path) -> CliResult<SecretString> {
    let limit = u64::try_from(MAX_PASSWORD_BYTES).unwrap_or(u64::MAX) + 2;
    let text = SecretString::new(crate::config::read_bounded(file, limit)?);
    let first = text.expose().lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(CliError::new(format!(
            "{}: the password (first line) is empty",
            file.display()
        )));
    }
    if first.len() > MAX_PASSWORD_BYTES {
        return Err(CliError::new(format!(
            "{}: the password is longer than {MAX_PASSWORD_BYTES} bytes",
            file.display()
        )));
    }
    Ok(SecretString::new(first.to_owned()))
}
