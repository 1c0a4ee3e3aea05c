//! `keyward pki init`: a development PKI — a CA, the server's certificate and a
//! first client certificate for a KMIP client (or vCenter's "KMS certificate
//! and private key" trust method).

use std::path::{Path, PathBuf};

use super::{CliError, CliResult, RunCommand};
use crate::pki::{self, CertificateAuthority, KeyKind};

/// Days the development certificates are valid.
const VALIDITY_DAYS: u32 = 825;

/// File names inside the PKI folder; the README documents them.
pub(super) const CA_CERT: &str = "ca.pem";
pub(super) const CA_KEY: &str = "ca.key";
pub(super) const SERVER_CERT: &str = "server.pem";
pub(super) const SERVER_KEY: &str = "server.key";
pub(super) const CLIENT_CERT: &str = "client.pem";
pub(super) const CLIENT_KEY: &str = "client.key";

#[derive(Debug, clap::Subcommand)]
pub enum PkiCommand {
    /// Create a CA, a server certificate and a client certificate in DIR.
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Folder to write into; refused if it already holds a CA.
    #[arg(long)]
    dir: PathBuf,
    /// DNS names and IP addresses for the server certificate (repeatable;
    /// default localhost, 127.0.0.1 and ::1).
    #[arg(long = "server-name")]
    server_names: Vec<String>,
    /// Use RSA-2048 for the server key (old vCenter releases) instead of ECDSA P-256.
    #[arg(long)]
    rsa: bool,
    /// Common name of the first client certificate.
    #[arg(long, default_value = "kmip-client")]
    client_name: String,
}

impl RunCommand for PkiCommand {
    fn run(self) -> CliResult {
        match self {
            PkiCommand::Init(a) => init(&a),
        }
    }
}

fn init(a: &InitArgs) -> CliResult {
    let path = |name: &str| a.dir.join(name);
    for name in [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY] {
        if path(name).exists() {
            return Err(CliError::new(format!(
                "{} exists; refusing to overwrite",
                path(name).display()
            )));
        }
    }
    std::fs::create_dir_all(&a.dir).map_err(|e| CliError::from(e).context(a.dir.display()))?;
    let ca = CertificateAuthority::generate("keyward development CA", VALIDITY_DAYS)?;
    let kind = if a.rsa {
        KeyKind::Rsa2048
    } else {
        KeyKind::EcdsaP256
    };
    let server = ca.issue_server(&a.server_names, kind, VALIDITY_DAYS)?;
    let client = ca.issue_client(&a.client_name, KeyKind::EcdsaP256, VALIDITY_DAYS)?;
    write(&path(CA_KEY), Some(ca.key_pem()), None)?;
    write(&path(CA_CERT), None, Some(ca.cert_pem()))?;
    write(&path(SERVER_KEY), Some(&server.key_pem), None)?;
    write(&path(SERVER_CERT), None, Some(&server.cert_pem))?;
    write(&path(CLIENT_KEY), Some(&client.key_pem), None)?;
    write(&path(CLIENT_CERT), None, Some(&client.cert_pem))?;
    let fingerprint = pki::Fingerprint::of_der(&server.cert_der);
    println!("CA:                 {}", path(CA_CERT).display());
    println!("server certificate: {}", path(SERVER_CERT).display());
    println!("server SHA-256:     {}", fingerprint.to_colon_hex());
    println!("client certificate: {}", path(CLIENT_CERT).display());
    println!("client key:         {}", path(CLIENT_KEY).display());
    Ok(())
}

fn write(path: &Path, private: Option<&crate::secret::SecretString>, public: Option<&str>) -> CliResult {
    let result = match (private, public) {
        (Some(key), _) => pki::write_private_pem(path, key),
        (None, Some(pem)) => pki::write_public_pem(path, pem),
        (None, None) => return Ok(()),
    };
    result.map_err(|e| CliError::from(e).context(path.display()))
}
