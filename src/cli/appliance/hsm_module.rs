//! A vendor's PKCS#11 library on the appliance: `keyward appliance use-module`
//! keeps it on the state disk, `keyward appliance render-config` writes the
//! service configuration that names it.
//!
//! The appliance's configuration sits on the read-only root and names the
//! SoftHSM token on `/var`. An HSM administrator who brings a cloud or network
//! HSM copies the vendor's client library, its configuration files and the
//! token's PIN to the appliance; `sudo keyward-ctl hsm use-module` runs
//! `use-module`, which checks the library against the SHA-256 the vendor
//! publishes and keeps library, files, environment and PIN in
//! `/var/lib/keyward-hsm` (an upgrade keeps `/var`). `render-config` runs at
//! every boot and after each change: it writes the service's configuration with
//! that module and token (and the KMIP port property) to `/run`, with the
//! systemd drop-in and the environment `keyward-ctl` uses, so the service and
//! every administration command load the same module.
//!
//! What the library gets is what the token gets: the PIN, and every key the
//! service unseals. Hence the checksum, which the administrator takes from the
//! vendor, not from the file; and a plain file copied in, never a path that
//! stays writable by the administrator's account.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::{CliError, CliResult};
use crate::hsm::TokenSelector;

/// What `use-module` chose: `module.toml` in the state folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ModuleChoice {
    /// The library's file name in `lib/`.
    pub library: String,
    /// Its SHA-256, as checked when it was installed.
    pub sha256: String,
    /// Which token holds the root keys (RFC 7512).
    pub token_uri: String,
    /// Environment the vendor library reads (its configuration file, say).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// The state folder's parts.
const CHOICE_FILE: &str = "module.toml";
const LIB_DIR: &str = "lib";
const FILES_DIR: &str = "files";
const PIN_FILE: &str = "pin";
/// Largest library accepted (vendor PKCS#11 clients are a few to tens of MiB).
const MAX_LIBRARY_BYTES: u64 = 256 * 1024 * 1024;
/// Largest vendor configuration file, and most of them.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
const MAX_FILES: usize = 16;
const MAX_ENV: usize = 16;
/// The KMIP port the appliance's configuration listens on.
const DEFAULT_PORT: u16 = 5696;

#[derive(Debug, clap::Args)]
pub struct UseModuleArgs {
    /// The vendor's PKCS#11 library (an ELF shared object), copied into the state folder.
    #[arg(required_unless_present = "softhsm", conflicts_with = "softhsm")]
    library: Option<PathBuf>,
    /// The library's SHA-256 as the vendor publishes it (64 hex digits).
    #[arg(long, requires = "library")]
    sha256: Option<String>,
    /// The token holding the root keys, as an RFC 7512 URI (pkcs11:token=…;serial=…).
    #[arg(long, requires = "library")]
    token_uri: Option<String>,
    /// The token's user PIN, in a file (copied, readable by root only).
    #[arg(long, requires = "library")]
    pin_file: Option<PathBuf>,
    /// NAME=VALUE for the library's environment (repeatable): its configuration
    /// file, for instance, given as a path under the state folder's files/.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// A configuration or certificate file the library reads (repeatable),
    /// copied into the state folder's files/.
    #[arg(long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Go back to the appliance's own SoftHSM token.
    #[arg(long)]
    softhsm: bool,
    /// The state folder.
    #[arg(long, default_value = "/var/lib/keyward-hsm")]
    state: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RenderConfigArgs {
    /// The appliance's configuration, as built.
    #[arg(long, default_value = crate::cli::DEFAULT_CONFIG)]
    base: PathBuf,
    /// The KMIP port (the kmip-port property).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    kmip_port: u16,
    /// The state folder of `use-module`.
    #[arg(long, default_value = "/var/lib/keyward-hsm")]
    state: PathBuf,
    /// Where to write keyward.toml, keyward.service.conf and ctl.env (replaced;
    /// removed when the configuration as built applies unchanged).
    #[arg(long)]
    out: PathBuf,
}

pub(super) fn use_module(a: UseModuleArgs) -> CliResult {
    if a.softhsm {
        return match std::fs::remove_dir_all(&a.state) {
            Ok(()) => {
                println!("the appliance's SoftHSM token is used again (vendor module removed)");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("the appliance's SoftHSM token is already the one used");
                Ok(())
            }
            Err(e) => Err(CliError::from(e).context(a.state.display())),
        };
    }
    let missing = |what: &str| CliError::new(format!("--{what} is needed with a library"));
    let library = a.library.ok_or_else(|| missing("library"))?;
    let sha256 = a.sha256.ok_or_else(|| missing("sha256"))?.to_ascii_lowercase();
    let token_uri = a.token_uri.ok_or_else(|| missing("token-uri"))?;
    let pin_file = a.pin_file.ok_or_else(|| missing("pin-file"))?;

    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::new(
            "--sha256: give the 64 hex digits the vendor publishes",
        ));
    }
    TokenSelector::from_uri(&token_uri).map_err(|e| CliError::new(format!("--token-uri: {e}")))?;
    let pin = crate::hsm::read_pin_file(&pin_file).map_err(|e| CliError::new(e.to_string()))?;
    let mut environment = BTreeMap::new();
    if a.env.len() > MAX_ENV {
        return Err(CliError::new(format!("at most {MAX_ENV} --env")));
    }
    for pair in &a.env {
        let (name, value) = check_env(pair)?;
        if environment.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(CliError::new(format!("--env {name} is given twice")));
        }
    }
    if a.files.len() > MAX_FILES {
        return Err(CliError::new(format!("at most {MAX_FILES} --file")));
    }
    let library_name = file_name(&library)?;
    let library_bytes = read_regular(&library, MAX_LIBRARY_BYTES)?;
    if !library_bytes.starts_with(b"\x7fELF") {
        return Err(CliError::new(format!(
            "{}: not a shared library (ELF)",
            library.display()
        )));
    }
    let actual = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &library_bytes,
    ));
    if actual != sha256 {
        return Err(CliError::new(format!(
            "{}: its SHA-256 is {actual}, not the {sha256} given; nothing was installed",
            library.display()
        )));
    }
    let mut files = Vec::new();
    for path in &a.files {
        let name = file_name(path)?;
        if files.iter().any(|(n, _)| *n == name) {
            return Err(CliError::new(format!("two --file named {name}")));
        }
        files.push((name, read_regular(path, MAX_FILE_BYTES)?));
    }
    let choice = ModuleChoice {
        library: library_name.clone(),
        sha256,
        token_uri,
        environment,
    };
    let text = toml::to_string(&choice).map_err(|e| CliError::new(format!("module.toml: {e}")))?;

    // The whole folder is made beside the old one and swapped in: a failure
    // leaves the module that was in use.
    let partial = sibling(&a.state, "partial");
    let old = sibling(&a.state, "old");
    let _ = std::fs::remove_dir_all(&partial);
    let written = (|| -> std::io::Result<()> {
        // Modes set outright: keyward-ctl runs this under umask 0077, and the
        // service (group keyward) must read the library and its files.
        let dir = |p: &Path| {
            std::fs::create_dir(p)?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o750))
        };
        dir(&partial)?;
        dir(&partial.join(LIB_DIR))?;
        dir(&partial.join(FILES_DIR))?;
        write_mode(&partial.join(LIB_DIR).join(&library_name), &library_bytes, 0o640)?;
        for (name, bytes) in &files {
            write_mode(&partial.join(FILES_DIR).join(name), bytes, 0o640)?;
        }
        write_mode(&partial.join(PIN_FILE), pin.expose().as_bytes(), 0o400)?;
        write_mode(&partial.join(CHOICE_FILE), text.as_bytes(), 0o640)?;
        let _ = std::fs::remove_dir_all(&old);
        match std::fs::rename(&a.state, &old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::rename(&partial, &a.state)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_dir_all(&partial);
        CliError::from(e).context(a.state.display())
    })?;
    println!(
        "installed {} (SHA-256 {}) for the token {}; {} file(s), {} environment variable(s)",
        library_name,
        choice.sha256,
        choice.token_uri,
        files.len(),
        choice.environment.len()
    );
    Ok(())
}

pub(super) fn render_config(a: RenderConfigArgs) -> CliResult {
    let choice = read_choice(&a.state)?;
    let _ = std::fs::remove_dir_all(&a.out);
    if choice.is_none() && a.kmip_port == DEFAULT_PORT {
        println!("the appliance's configuration applies as built");
        return Ok(());
    }
    let base_text =
        std::fs::read_to_string(&a.base).map_err(|e| CliError::from(e).context(a.base.display()))?;
    let mut config: toml::Table =
        toml::from_str(&base_text).map_err(|e| CliError::new(format!("{}: {e}", a.base.display())))?;
    set_port(&mut config, a.kmip_port)?;
    let rendered_config = a.out.join("keyward.toml");
    let mut drop_in = vec![
        "# Written by `keyward appliance render-config` at boot and after `keyward-ctl hsm use-module`."
            .to_owned(),
        "[Service]".to_owned(),
        "ExecStart=".to_owned(),
        format!(
            "ExecStart=/usr/bin/keyward serve --config {}",
            rendered_config.display()
        ),
        "SocketBindAllow=".to_owned(),
        format!("SocketBindAllow=tcp:{}", a.kmip_port),
    ];
    let mut ctl_env = vec![format!("KEYWARD_CONFIG={}", rendered_config.display())];
    if let Some(choice) = &choice {
        let hsm = config
            .get_mut("hsm")
            .and_then(|h| h.as_table_mut())
            .ok_or_else(|| CliError::new(format!("{}: no [hsm] section", a.base.display())))?;
        let module = a.state.join(LIB_DIR).join(&choice.library);
        hsm.insert("module".into(), toml::Value::String(module.display().to_string()));
        hsm.remove("token_label");
        hsm.remove("slot");
        hsm.insert("token_uri".into(), toml::Value::String(choice.token_uri.clone()));
        let pin = a.state.join(PIN_FILE);
        drop_in.push("LoadCredential=".into());
        drop_in.push(format!("LoadCredential=keyward-hsm-pin:{}", pin.display()));
        ctl_env.push(format!("KEYWARD_CTL_PIN={}", pin.display()));
        for (name, value) in &choice.environment {
            drop_in.push(format!("Environment=\"{name}={value}\""));
            ctl_env.push(format!("{name}={value}"));
        }
    }
    let text = toml::to_string(&config).map_err(|e| CliError::new(format!("keyward.toml: {e}")))?;
    let files = [
        (
            "keyward.toml",
            format!(
                "# Rendered from {} by `keyward appliance render-config`.\n{text}",
                a.base.display()
            ),
        ),
        ("keyward.service.conf", drop_in.join("\n") + "\n"),
        ("ctl.env", ctl_env.join("\n") + "\n"),
    ];
    super::write_folder(&a.out, &files)?;
    match &choice {
        Some(c) => println!(
            "KMIP port {}; HSM module {} for the token {}",
            a.kmip_port, c.library, c.token_uri
        ),
        None => println!("KMIP port {}; the appliance's SoftHSM token", a.kmip_port),
    }
    Ok(())
}

/// The module chosen, if any; one that does not read again (edited by hand,
/// say) is an error, never a silent fall-back to SoftHSM.
pub(super) fn read_choice(state: &Path) -> Result<Option<ModuleChoice>, CliError> {
    let path = state.join(CHOICE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::from(e).context(path.display())),
    };
    let choice: ModuleChoice =
        toml::from_str(&text).map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    // Checked again: what is rendered into a systemd unit must be plain.
    file_name(Path::new(&choice.library))?;
    TokenSelector::from_uri(&choice.token_uri)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    for (name, value) in &choice.environment {
        check_env(&format!("{name}={value}"))?;
    }
    Ok(Some(choice))
}

/// Every `listen` address of `[server]` on `port`.
fn set_port(config: &mut toml::Table, port: u16) -> CliResult {
    let Some(listen) = config
        .get_mut("server")
        .and_then(|s| s.as_table_mut())
        .and_then(|s| s.get_mut("listen"))
        .and_then(|l| l.as_array_mut())
    else {
        return Err(CliError::new("the configuration has no [server] listen list"));
    };
    for address in listen.iter_mut() {
        let mut parsed: SocketAddr = address
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| CliError::new(format!("[server] listen: {address} is not an address")))?;
        parsed.set_port(port);
        *address = toml::Value::String(parsed.to_string());
    }
    Ok(())
}

/// `NAME=VALUE` for the vendor library: a plain name that is not one the
/// loader, systemd or keyward reads, and a value that needs no quoting in a
/// unit file (paths, host names, numbers).
fn check_env(pair: &str) -> Result<(&str, &str), CliError> {
    let (name, value) = pair
        .split_once('=')
        .ok_or_else(|| CliError::new(format!("--env {pair:?}: write NAME=VALUE")))?;
    let plain_name = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !plain_name {
        return Err(CliError::new(format!("--env {name:?}: not a variable name")));
    }
    const RESERVED: [&str; 6] = [
        "PATH",
        "HOME",
        "NO_COLOR",
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
        "SOFTHSM2_CONF",
    ];
    if RESERVED.contains(&name)
        || name.starts_with("LD_")
        || name.starts_with("KEYWARD_")
        || name.starts_with("SYSTEMD_")
    {
        return Err(CliError::new(format!(
            "--env {name}: set by the appliance, not by a module"
        )));
    }
    let plain_value = !value.is_empty()
        && value.len() <= 1024
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:,=@+-".contains(&b));
    if !plain_value {
        return Err(CliError::new(format!(
            "--env {name}: the value may hold letters, digits and _./:,=@+- only"
        )));
    }
    Ok((name, value))
}

/// The plain file name of `path`, as kept in the state folder.
fn file_name(path: &Path) -> Result<String, CliError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let plain = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if plain {
        Ok(name.to_owned())
    } else {
        Err(CliError::new(format!(
            "{}: name the file with letters, digits and ._+- only",
            path.display()
        )))
    }
}

/// A regular file's bytes (not through a link), at most `max`.
fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path).map_err(|e| CliError::from(e).context(path.display()))?;
    if !meta.file_type().is_file() {
        return Err(CliError::new(format!("{}: not a regular file", path.display())));
    }
    if meta.len() > max {
        return Err(CliError::new(format!(
            "{}: larger than {} MiB",
            path.display(),
            max >> 20
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| CliError::from(e).context(path.display()))?;
    if bytes.len() as u64 > max {
        return Err(CliError::new(format!(
            "{}: grew while it was read",
            path.display()
        )));
    }
    Ok(bytes)
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.sync_all()
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Enough of a shared object for the checks here (its first bytes).
    const FAKE_LIBRARY: &[u8] = b"\x7fELF\x02\x01\x01\0fake vendor library";

    fn sha256_of(bytes: &[u8]) -> String {
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
    }

    fn args(dir: &Path, sha256: &str, env: &[&str]) -> UseModuleArgs {
        UseModuleArgs {
            library: Some(dir.join("libvendor_pkcs11.so")),
            sha256: Some(sha256.to_owned()),
            token_uri: Some("pkcs11:token=kms;serial=4711".into()),
            pin_file: Some(dir.join("vendor.pin")),
            env: env.iter().map(|e| e.to_string()).collect(),
            files: vec![dir.join("vendor.conf")],
            softhsm: false,
            state: dir.join("state"),
        }
    }

    fn transfer_folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libvendor_pkcs11.so"), FAKE_LIBRARY).unwrap();
        std::fs::write(dir.path().join("vendor.pin"), "1234-5678\n").unwrap();
        std::fs::write(dir.path().join("vendor.conf"), "server = hsm.example\n").unwrap();
        dir
    }

    #[test]
    fn a_library_with_its_published_checksum_is_kept_with_its_files_and_pin() {
        let dir = transfer_folder();
        let state = dir.path().join("state");
        let env = ["VENDOR_CONF=/var/lib/keyward-hsm/files/vendor.conf"];
        use_module(args(dir.path(), &sha256_of(FAKE_LIBRARY).to_uppercase(), &env)).unwrap();
        assert_eq!(
            std::fs::read(state.join("lib/libvendor_pkcs11.so")).unwrap(),
            FAKE_LIBRARY
        );
        assert_eq!(
            std::fs::read_to_string(state.join("files/vendor.conf")).unwrap(),
            "server = hsm.example\n"
        );
        assert_eq!(std::fs::read_to_string(state.join("pin")).unwrap(), "1234-5678");
        let mode = |p: &str| std::fs::metadata(state.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("pin"), 0o400);
        assert_eq!(mode("lib/libvendor_pkcs11.so"), 0o640);
        let choice = read_choice(&state).unwrap().unwrap();
        assert_eq!(choice.sha256, sha256_of(FAKE_LIBRARY));
        assert_eq!(
            choice.environment.get("VENDOR_CONF").unwrap(),
            "/var/lib/keyward-hsm/files/vendor.conf"
        );

        // Another checksum: refused, and the module in use stays.
        let wrong = "0".repeat(64);
        let err = use_module(args(dir.path(), &wrong, &[])).unwrap_err().to_string();
        assert!(err.contains("nothing was installed"), "{err}");
        assert_eq!(read_choice(&state).unwrap(), Some(choice));

        // Back to SoftHSM: the folder goes.
        let mut back = args(dir.path(), "", &[]);
        back.softhsm = true;
        use_module(back).unwrap();
        assert_eq!(read_choice(&state).unwrap(), None);
    }

    #[test]
    fn what_would_reach_the_loader_or_the_unit_file_is_refused() {
        let dir = transfer_folder();
        let sha = sha256_of(FAKE_LIBRARY);
        for (env, why) in [
            ("LD_PRELOAD=/tmp/x.so", "set by the appliance"),
            ("KEYWARD_CONFIG=/tmp/k.toml", "set by the appliance"),
            ("PATH=/tmp", "set by the appliance"),
            ("VENDOR=a b", "may hold"),
            ("VENDOR=\"quoted\"", "may hold"),
            ("VENDOR=100%", "may hold"),
            ("VENDOR=line\nExecStart=/bin/sh", "may hold"),
            ("1VENDOR=x", "not a variable name"),
            ("VENDOR", "NAME=VALUE"),
        ] {
            let err = use_module(args(dir.path(), &sha, &[env]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{env:?}: {err}");
        }
        // Not an ELF object; a token URI carrying a PIN; a link instead of a file.
        std::fs::write(dir.path().join("libvendor_pkcs11.so"), b"#!/bin/sh\n").unwrap();
        let err = use_module(args(dir.path(), &sha256_of(b"#!/bin/sh\n"), &[])).unwrap_err();
        assert!(err.to_string().contains("not a shared library"), "{err}");
        std::fs::write(dir.path().join("libvendor_pkcs11.so"), FAKE_LIBRARY).unwrap();
        let mut with_pin = args(dir.path(), &sha, &[]);
        with_pin.token_uri = Some("pkcs11:token=kms;pin-value=1234".into());
        assert!(
            use_module(with_pin)
                .unwrap_err()
                .to_string()
                .contains("--token-uri")
        );
        std::fs::remove_file(dir.path().join("vendor.conf")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", dir.path().join("vendor.conf")).unwrap();
        let err = use_module(args(dir.path(), &sha, &[])).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(!dir.path().join("state").exists());
    }

    #[test]
    fn the_rendered_configuration_names_the_module_token_port_and_pin() {
        let dir = transfer_folder();
        let env = ["VENDOR_CONF=/var/lib/keyward-hsm/files/vendor.conf"];
        use_module(args(dir.path(), &sha256_of(FAKE_LIBRARY), &env)).unwrap();
        let base = dir.path().join("keyward.toml");
        std::fs::write(
            &base,
            "[server]\nlisten = [\"0.0.0.0:5696\"]\n[tls]\ncert = \"/v/server.pem\"\nkey = \"/v/server.key\"\n\
             client_ca = [\"/v/ca.pem\"]\n[hsm]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
             token_label = \"keyward\"\n[store]\nkind = \"sqlite\"\npath = \"/v/keyward.db\"\n",
        )
        .unwrap();
        let out = dir.path().join("rendered");
        let render = |port: u16| RenderConfigArgs {
            base: base.clone(),
            kmip_port: port,
            state: dir.path().join("state"),
            out: out.clone(),
        };
        render_config(render(5697)).unwrap();
        let config = crate::config::Config::load(out.join("keyward.toml")).unwrap();
        assert_eq!(
            config.hsm.module,
            dir.path().join("state/lib/libvendor_pkcs11.so")
        );
        assert_eq!(
            config.hsm.token,
            TokenSelector::from_uri("pkcs11:token=kms;serial=4711").unwrap()
        );
        assert_eq!(
            config.server.listen,
            vec!["0.0.0.0:5697".parse::<SocketAddr>().unwrap()]
        );
        let unit = std::fs::read_to_string(out.join("keyward.service.conf")).unwrap();
        let pin = dir.path().join("state/pin");
        for line in [
            format!(
                "ExecStart=/usr/bin/keyward serve --config {}",
                out.join("keyward.toml").display()
            ),
            "SocketBindAllow=tcp:5697".to_owned(),
            format!("LoadCredential=keyward-hsm-pin:{}", pin.display()),
            format!("Environment=\"{}\"", env[0]),
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} missing from\n{unit}");
        }
        let ctl = std::fs::read_to_string(out.join("ctl.env")).unwrap();
        assert!(ctl.lines().any(|l| l == env[0]), "{ctl}");
        assert!(
            ctl.lines()
                .any(|l| l == format!("KEYWARD_CTL_PIN={}", pin.display())),
            "{ctl}"
        );

        // Nothing chosen and the default port: the configuration as built, nothing rendered.
        std::fs::remove_dir_all(dir.path().join("state")).unwrap();
        render_config(render(DEFAULT_PORT)).unwrap();
        assert!(!out.exists());
        // A module.toml edited into something unsafe is an error, not a fall-back.
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(
            dir.path().join("state/module.toml"),
            "library = \"x.so\"\nsha256 = \"00\"\ntoken_uri = \"pkcs11:token=k\"\n[environment]\nLD_PRELOAD = \"/tmp/x\"\n",
        )
        .unwrap();
        assert!(render_config(render(DEFAULT_PORT)).is_err());
    }
}
