//! Per-client trust files in `tls.clients_dir`, one small TOML file per trusted client.
//!
//! `keyward clients add` writes them and `keyward clients remove` deletes them; the
//! server re-reads the folder on reload. A file is named `<name>.toml`; other files in
//! the folder (the PEM certificates the entries point to) are ignored.
//!
//! ```toml
//! name = "vcenter-prod"      # must equal the file name without ".toml"
//! kind = "pin"               # "pin": trust this one certificate; "ca": trust what it issues
//! fingerprint = "AB:CD:..."  # pin: SHA-256 of the client certificate (or give `cert`)
//! cert = "vcenter-prod.pem"  # ca: the CA bundle (required); pin: the pinned certificate
//! group = "vsphere"          # optional: which clients may see each other's keys
//! username = "vcenter"       # optional, with password_hash: KMIP Username/Password
//! password_hash = "pbkdf2-sha256$600000$<salt>$<hash>"   # never the password itself
//! ```
//!
//! Relative `cert` paths are resolved against the clients folder. When a pin gives both
//! `fingerprint` and `cert`, the trust loader checks they agree.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::parse::is_plain_file_name;
use super::{ConfigError, parse_fingerprint, read_bounded};
use crate::password::{ClientPassword, PasswordHash};

/// Most entries read from one folder; far above any real vSphere estate.
const MAX_CLIENT_FILES: usize = 4096;
/// Largest client trust file read.
const MAX_CLIENT_FILE_BYTES: u64 = 16 * 1024;
const EXTENSION: &str = "toml";
/// When the server last saw each client (JSON, written by the server); a dot file, so
/// neither the entry loader nor the change watcher looks at it.
pub const LAST_SEEN_FILE: &str = ".last-seen";

/// One trusted client (or client CA), as stored in `<clients_dir>/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEntry {
    pub name: String,
    pub kind: ClientKind,
    /// Absolute path of the PEM file (CA bundle, or the pinned certificate).
    pub cert: Option<PathBuf>,
    /// SHA-256 of the pinned certificate (kind `pin`).
    pub fingerprint: Option<[u8; 32]>,
    pub group: Option<String>,
    /// When set, the client's requests must also carry this Username/Password
    /// (see `ops::context::Context::authenticate` for which requests).
    pub password: Option<ClientPassword>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Accept certificates that chain to the CA(s) in `cert`.
    Ca,
    /// Accept exactly one certificate, by fingerprint.
    Pin,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
}

/// Reads every `*.toml` entry in `dir`, sorted by name. A missing folder holds no entries
/// (nothing has been added yet); any bad file fails the whole load, so a reload never
/// half-applies.
pub fn load_dir(dir: &Path) -> Result<Vec<ClientEntry>, ConfigError> {
    let reader = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::read(dir, &e)),
    };
    let mut entries = Vec::new();
    for item in reader {
        let item = item.map_err(|e| ConfigError::read(dir, &e))?;
        let path = item.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        if entries.len() >= MAX_CLIENT_FILES {
            return Err(ConfigError::invalid(
                "tls.clients_dir",
                format!("more than {MAX_CLIENT_FILES} client files"),
            ));
        }
        let text = read_bounded(&path, MAX_CLIENT_FILE_BYTES)?;
        entries.push(parse_entry(&text, &path, dir)?);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Parses one client file's text; `file` names it in errors and must be `<name>.toml`.
pub fn parse_entry(text: &str, file: &Path, dir: &Path) -> Result<ClientEntry, ConfigError> {
    let key = |field: &str| format!("{}: {field}", file.display());
    let raw: RawClient = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: file.to_path_buf(),
        line: e
            .span()
            .map(|s| text.get(..s.start).unwrap_or("").matches('\n').count() + 1)
            .unwrap_or(1),
        section: None,
        message: e.message().to_string(),
    })?;
    if !is_valid_name(&raw.name) {
        return Err(ConfigError::invalid(key("name"), NAME_RULE));
    }
    if file.file_stem().and_then(|s| s.to_str()) != Some(raw.name.as_str()) {
        return Err(ConfigError::invalid(
            key("name"),
            format!("{:?} does not match the file name", raw.name),
        ));
    }
    let kind = match raw.kind.as_str() {
        "ca" => ClientKind::Ca,
        "pin" => ClientKind::Pin,
        other => {
            return Err(ConfigError::invalid(
                key("kind"),
                format!("{other:?} is not \"ca\" or \"pin\""),
            ));
        }
    };
    let fingerprint = match &raw.fingerprint {
        None => None,
        Some(text) => Some(parse_fingerprint(text).ok_or_else(|| {
            ConfigError::invalid(key("fingerprint"), "not a SHA-256 fingerprint (64 hex digits)")
        })?),
    };
    let cert = match &raw.cert {
        None => None,
        Some(p) if p.is_empty() => {
            return Err(ConfigError::invalid(key("cert"), "path must not be empty"));
        }
        Some(p) => Some(dir.join(p)),
    };
    match kind {
        ClientKind::Ca if cert.is_none() => {
            return Err(ConfigError::invalid(
                key("cert"),
                "a \"ca\" entry needs the CA bundle path",
            ));
        }
        ClientKind::Ca if fingerprint.is_some() => {
            return Err(ConfigError::invalid(
                key("fingerprint"),
                "only a \"pin\" entry has one",
            ));
        }
        ClientKind::Pin if cert.is_none() && fingerprint.is_none() => {
            return Err(ConfigError::invalid(
                key("fingerprint"),
                "a \"pin\" entry needs a fingerprint or a cert",
            ));
        }
        _ => {}
    }
    if let Some(group) = &raw.group
        && !is_valid_name(group)
    {
        return Err(ConfigError::invalid(key("group"), NAME_RULE));
    }
    let password = match (raw.username, &raw.password_hash) {
        (None, None) => None,
        (Some(username), Some(hash)) => {
            if !is_valid_username(&username) {
                return Err(ConfigError::invalid(key("username"), USERNAME_RULE));
            }
            let hash = PasswordHash::parse(hash)
                .map_err(|e| ConfigError::invalid(key("password_hash"), e.to_string()))?;
            Some(ClientPassword { username, hash })
        }
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                key("password_hash"),
                "a username needs a password_hash",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                key("username"),
                "a password_hash needs a username",
            ));
        }
    };
    Ok(ClientEntry {
        name: raw.name,
        kind,
        cert,
        fingerprint,
        group: raw.group,
        password,
    })
}

/// Writes `entry` as `<dir>/<name>.toml` atomically (temporary file, then rename), so
/// a server reloading at the same moment sees the old or the new file, never half.
pub fn write_entry(dir: &Path, entry: &ClientEntry) -> Result<PathBuf, ConfigError> {
    if !is_valid_name(&entry.name) {
        return Err(ConfigError::invalid("name", NAME_RULE));
    }
    let raw = RawClient {
        name: entry.name.clone(),
        kind: match entry.kind {
            ClientKind::Ca => "ca".to_string(),
            ClientKind::Pin => "pin".to_string(),
        },
        fingerprint: entry.fingerprint.as_ref().map(colon_hex),
        cert: entry.cert.as_ref().map(|p| {
            // Keep the entry portable with its folder when the PEM sits inside it.
            p.strip_prefix(dir).unwrap_or(p).display().to_string()
        }),
        group: entry.group.clone(),
        username: entry.password.as_ref().map(|p| p.username.clone()),
        password_hash: entry.password.as_ref().map(|p| p.hash.encode()),
    };
    let text = toml::to_string(&raw).map_err(|e| ConfigError::invalid("client entry", e.to_string()))?;
    let target = dir.join(format!("{}.{EXTENSION}", entry.name));
    // Parse what we are about to write so `add` can never produce a file `load` refuses.
    parse_entry(&text, &target, dir)?;
    std::fs::create_dir_all(dir).map_err(|e| ConfigError::read(dir, &e))?;
    let temp = dir.join(format!(".{}.{EXTENSION}.tmp", entry.name));
    std::fs::write(&temp, text).map_err(|e| ConfigError::read(&temp, &e))?;
    std::fs::rename(&temp, &target).map_err(|e| ConfigError::read(&target, &e))?;
    Ok(target)
}

/// Where the entry named `name` lives: `<dir>/<name>.toml`.
pub fn entry_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{EXTENSION}"))
}

/// Where `keyward clients` keeps the PEM an entry points to: `<dir>/<name>.pem`.
pub fn cert_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pem"))
}

/// Deletes `<dir>/<name>.toml`; returns whether it existed.
pub fn remove_entry(dir: &Path, name: &str) -> Result<bool, ConfigError> {
    if !is_valid_name(name) {
        return Err(ConfigError::invalid("name", NAME_RULE));
    }
    let target = dir.join(format!("{name}.{EXTENSION}"));
    match std::fs::remove_file(&target) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ConfigError::read(&target, &e)),
    }
}

const NAME_RULE: &str = "must be 1 to 64 of letters, digits, '.', '_', '-', not starting with '.'";

const USERNAME_RULE: &str = "must be 1 to 128 printable characters without spaces";

/// A KMIP username as `--username` and the trust file accept it.
pub fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control() && !c.is_whitespace()))
}

/// Client and group names double as file names, so they carry no separators.
pub fn is_valid_name(name: &str) -> bool {
    is_plain_file_name(name)
}

/// `AB:CD:...` upper-case colon hex, the way vCenter shows certificate thumbprints.
fn colon_hex(bytes: &[u8; 32]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
