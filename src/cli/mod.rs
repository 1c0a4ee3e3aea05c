//! The `keyward` administration tool: one subcommand per file in this
//! directory.
//!
//! To add a subcommand `foo`: write `foo.rs` (or `foo/mod.rs`) with a clap
//! type (`#[derive(clap::Args)]` or `#[derive(clap::Subcommand)]`) that
//! implements [`RunCommand`], then add `mod foo;` below and one
//! `Foo(foo::FooCommand),` line (with its `///` help) to `subcommands!`.

/// Where the package and the appliance keep the configuration: the default of
/// every command that reads one.
const DEFAULT_CONFIG: &str = "/etc/keyward/keyward.toml";
/// Names the configuration when `--config` is not given: how the appliance's
/// `keyward-ctl` points every command at the configuration rendered for this
/// boot (`keyward appliance render-config`).
const CONFIG_ENV: &str = "KEYWARD_CONFIG";

mod appliance;
mod audit;
mod backup;
mod check_config;
mod clients;
mod custodians;
mod direct;
mod error;
mod hsm;
mod io;
mod keys;
mod pki;
mod restore;
mod root;
mod serve;
mod server_cert;
mod store;
mod ttlv;

pub use error::{CliError, CliResult};

/// A subcommand's arguments, ready to run.
pub trait RunCommand {
    fn run(self) -> CliResult;
}

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "keyward",
    version,
    about = "KMIP key server for VMware vSphere, root key in an HSM"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Declares [`Command`] with one variant per subcommand and its dispatch, so
/// that a new subcommand is one line here.
macro_rules! subcommands {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty), )*) => {
        /// Every subcommand.
        #[derive(Debug, clap::Subcommand)]
        pub enum Command {
            $( $(#[$doc])* $variant($ty), )*
        }

        impl RunCommand for Command {
            fn run(self) -> CliResult {
                match self {
                    $( Command::$variant(c) => c.run(), )*
                }
            }
        }
    };
}

subcommands! {
    /// Run the KMIP service.
    Serve(serve::ServeCommand),
    /// Read the audit trail back, filtered by client, key, operation or time.
    Audit(audit::AuditCommand),
    /// Set up the HSM token and its root key; report on them.
    #[command(subcommand)]
    Hsm(hsm::HsmCommand),
    /// Rotate the root key (re-seal every key under a new one), retire old ones, show status.
    #[command(subcommand)]
    Root(root::RootCommand),
    /// Copy the key store to a backup file while the server runs (sealed keys only), with a
    /// manifest MACed under the HSM's root key.
    Backup(backup::BackupCommand),
    /// Restore a backup into a fresh store, refusing one whose manifest does not match it or
    /// that is sealed under root keys the HSM lacks.
    Restore(restore::RestoreCommand),
    /// Create a development PKI (CA, server and client certificates).
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Trust KMIP clients (vCenter): add, issue, sign-csr, list, remove.
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// The durable store: status, reindex (this node's index of a remote store), verify, migrate.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Key inventory: list, show, revoke, destroy, move between groups.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Show or renew the server's own certificate (what vCenter is asked to trust).
    #[command(subcommand)]
    ServerCert(server_cert::ServerCertCommand),
    /// Check a configuration file and the HSM, store and certificates it names.
    CheckConfig(check_config::CheckConfigCommand),
    /// Read TTLV captures as KMIP JSON, XML or a tree; write JSON or XML back as TTLV.
    #[command(subcommand)]
    Ttlv(ttlv::TtlvCommand),
    /// The appliance's own set-up: the vApp properties of its OVF environment.
    #[command(subcommand)]
    Appliance(appliance::ApplianceCommand),
}
