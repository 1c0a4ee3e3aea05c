//! `keyward hsm`: set up the token and its root key, and report on them.

use std::path::PathBuf;

use super::{CliError, CliResult, RunCommand};
use crate::config::Config;
use crate::hsm::{CrkVersion, Hsm, HsmError, provision, read_pin_file};

#[derive(Debug, clap::Subcommand)]
pub enum HsmCommand {
    /// Initialize a PKCS#11 token (SoftHSM for development) with PINs read from files.
    InitToken(InitTokenArgs),
    /// Create the first root key (CRK) in the token; refuses if one exists.
    /// With --custodians N --threshold M, root keys derive from a master split
    /// into N custodian shares, any M of which rebuild them (`hsm recover`).
    Init(InitArgs),
    /// Rebuild the root keys in a fresh token from M custodian shares.
    Recover(super::custodians::RecoverArgs),
    /// Library, token, login state, root key versions and mechanisms.
    Status(ConfigArg),
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The configuration file naming the module, token and PIN.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The configuration file naming the module, token and PIN.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
    #[command(flatten)]
    custodians: super::custodians::CustodianArgs,
}

#[derive(Debug, clap::Args)]
pub struct InitTokenArgs {
    /// The PKCS#11 module (shared library).
    #[arg(long)]
    module: PathBuf,
    /// The token label to give.
    #[arg(long, default_value = "keyward")]
    label: String,
    /// File holding the security officer PIN.
    #[arg(long)]
    so_pin_file: PathBuf,
    /// File holding the user PIN keyward logs in with.
    #[arg(long)]
    user_pin_file: PathBuf,
}

impl RunCommand for HsmCommand {
    fn run(self) -> CliResult {
        match self {
            HsmCommand::InitToken(a) => {
                let so = read_pin_file(&a.so_pin_file)?;
                let user = read_pin_file(&a.user_pin_file)?;
                let token = provision::init_token(&a.module, &a.label, &so, &user)
                    .map_err(|e| CliError::from(e).context(format!("initializing token {:?}", a.label)))?;
                println!("initialized token {:?} (serial {})", a.label, token.serial);
                Ok(())
            }
            HsmCommand::Init(c) => {
                let hsm = connect(&c.config)?;
                let versions = hsm.crk_versions()?;
                if let Some(v) = versions.iter().max() {
                    return Err(CliError::new(format!(
                        "the token already holds root key {}; refusing to create another (use `keyward root rotate`)",
                        v.label()
                    )));
                }
                if c.custodians.wanted() {
                    return super::custodians::init_with_custodians(hsm.as_ref(), &c.custodians);
                }
                let first = CrkVersion(1);
                hsm.create_crk(first)?;
                println!(
                    "created root key {} (AES-256, sensitive, not extractable)",
                    first.label()
                );
                Ok(())
            }
            HsmCommand::Recover(r) => {
                let hsm = connect(&r.config)?;
                super::custodians::recover(hsm.as_ref(), &r)
            }
            HsmCommand::Status(c) => {
                let hsm = connect(&c.config)?;
                let s = hsm.health()?;
                let crks: Vec<String> = s.crk_versions.iter().map(|v| v.label()).collect();
                println!(
                    "library:       {} {} (PKCS#11 {})",
                    s.library, s.library_version, s.cryptoki_version
                );
                println!("slot:          {}", s.slot_id);
                match &s.token_unreadable {
                    None => println!(
                        "token:         {:?} serial {} model {}",
                        s.token_label, s.token_serial, s.token_model
                    ),
                    Some(why) => println!("token:         not described: {why}"),
                };
                println!("logged in:     {}", if s.logged_in { "yes" } else { "no" });
                println!(
                    "root keys:     {}",
                    if crks.is_empty() {
                        "none".to_owned()
                    } else {
                        crks.join(", ")
                    }
                );
                let recovery = match hsm.recovery_master_set()? {
                    Some(set) => format!(
                        "custodian master of share set {} (root keys derive from it; `hsm recover` rebuilds them)",
                        hex::encode(set)
                    ),
                    None => "none".to_owned(),
                };
                println!("recovery:      {recovery}");
                let profile = match s.sealing_profile {
                    Some(p) => p.to_string(),
                    None => "none (the token can do no sealing profile keyward has)".to_owned(),
                };
                println!("sealing:       {profile}");
                println!("mechanisms:    {}", s.mechanisms_needed.join(", "));
                if s.mechanisms_missing.is_empty() {
                    println!("missing:       none");
                    Ok(())
                } else {
                    println!("missing:       {}", s.mechanisms_missing.join(", "));
                    Err(CliError::new("the token lacks mechanisms keyward needs"))
                }
            }
        }
    }
}

/// How often a command tries an HSM step that failed transiently.
pub(super) const HSM_ATTEMPTS: u64 = 4;

/// Opens the token the configuration names, logged in with its PIN.
pub(super) fn connect(config_path: &std::path::Path) -> Result<std::sync::Arc<dyn Hsm>, CliError> {
    let config = Config::load(config_path)?;
    let hsm_config = config.hsm.settings()?;
    // A token shared with a running server can be briefly unreadable while the other
    // process rewrites its files (SoftHSM answers C_GetTokenInfo with
    // CKR_GENERAL_ERROR then): opening changes nothing, so any failure but a refused
    // login is tried again, a few times.
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match crate::hsm::open(&hsm_config) {
            Ok(hsm) => return Ok(hsm),
            Err(e) if !matches!(e, HsmError::Login(_)) && attempt < HSM_ATTEMPTS => {
                std::thread::sleep(std::time::Duration::from_millis(200 * attempt));
            }
            Err(e) => return Err(CliError::from(e).context("opening the HSM")),
        }
    }
}
