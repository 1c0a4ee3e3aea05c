//! `keyward appliance ovf-env`: the vApp properties a vSphere administrator
//! typed when deploying the OVA (`image/ova`), read from the OVF environment
//! document VMware hands the VM (`guestinfo.ovfEnv`, or `ovf-env.xml` on the
//! ISO transport), checked all together, and rendered into the files the
//! appliance's first boot puts in place.
//!
//! Every property is checked before anything is written; the files go to a
//! new folder that appears whole (renamed into place) or not at all. A property
//! that does not read is refused with its name and why, so the console tells
//! the administrator what to fix in the VM's vApp options.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use quick_xml::XmlVersion;
use quick_xml::events::Event;

use super::{CliError, CliResult, RunCommand};

mod hsm_module;
mod syslog;
use syslog::RemoteSyslog;

/// Where first boot installs the rendered folder: the rsyslog configuration
/// names the CA file by its installed path.
const INSTALLED_AT: &str = "/run/keyward-ovf/settings";

/// Largest OVF environment read (a real one is a few KiB).
const MAX_ENV_BYTES: usize = 256 * 1024;
/// Most DNS or NTP servers.
const MAX_SERVERS: usize = 8;

#[derive(Debug, clap::Subcommand)]
pub enum ApplianceCommand {
    /// Check the OVF environment's vApp properties and write the files first
    /// boot installs (hostname, network, NTP, SSH key, vCenter certificate,
    /// KMIP port, remote syslog) into a new folder; nothing is written if any
    /// property is bad.
    OvfEnv(OvfEnvArgs),
    /// Keep a vendor's PKCS#11 library, its files, environment and the token's
    /// PIN on the state disk for the service to use (checked against the
    /// SHA-256 the vendor publishes), or go back to the SoftHSM token.
    UseModule(hsm_module::UseModuleArgs),
    /// Write the service's configuration for this boot: the configuration as
    /// built, with the KMIP port property and the module `use-module` chose.
    RenderConfig(hsm_module::RenderConfigArgs),
}

#[derive(Debug, clap::Args)]
pub struct OvfEnvArgs {
    /// The OVF environment document (ovf-env.xml).
    #[arg(long)]
    env: PathBuf,
    /// The folder to create with the rendered files (must not exist).
    #[arg(long)]
    out: PathBuf,
}

impl RunCommand for ApplianceCommand {
    fn run(self) -> CliResult {
        match self {
            ApplianceCommand::OvfEnv(a) => {
                let bytes = std::fs::read(&a.env).map_err(|e| CliError::from(e).context(a.env.display()))?;
                if bytes.len() > MAX_ENV_BYTES {
                    return Err(CliError::new(format!("{}: larger than 256 KiB", a.env.display())));
                }
                let text = String::from_utf8(bytes)
                    .map_err(|_| CliError::new(format!("{}: not UTF-8", a.env.display())))?;
                let settings = Settings::from_env(&text).map_err(|e| CliError::new(e.to_string()))?;
                write_folder(&a.out, &settings.files())?;
                println!("{}", settings.summary());
                Ok(())
            }
            ApplianceCommand::UseModule(a) => hsm_module::use_module(a),
            ApplianceCommand::RenderConfig(a) => hsm_module::render_config(a),
        }
    }
}

/// A property that does not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PropertyError {
    key: String,
    why: String,
}

impl std::fmt::Display for PropertyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "OVF environment: {}", self.why)
        } else {
            write!(f, "OVF property {:?}: {}", self.key, self.why)
        }
    }
}

fn bad(key: &str, why: impl Into<String>) -> PropertyError {
    PropertyError {
        key: key.to_owned(),
        why: why.into(),
    }
}

/// The appliance's settings, every one checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    hostname: String,
    /// `None`: DHCP.
    ipv4: Option<(Ipv4Addr, u8, Option<Ipv4Addr>)>,
    ipv6: Option<(Ipv6Addr, u8, Option<Ipv6Addr>)>,
    dns: Vec<IpAddr>,
    ntp: Vec<String>,
    ssh_key: Option<String>,
    vcenter_pem: Option<String>,
    kmip_port: u16,
    syslog: Option<RemoteSyslog>,
    /// `(custodians, threshold)`: the root key waits for `hsm init` with
    /// custodian shares instead of being made at first boot.
    custodians: Option<(u8, u8)>,
}

/// The lowest KMIP port a vApp property may choose: the service runs without
/// any capability, so it cannot listen on a privileged port.
const MIN_KMIP_PORT: u16 = 1024;

const KEYS: [&str; 15] = [
    "hostname",
    "ip-mode",
    "ipv4-address",
    "ipv4-gateway",
    "ipv6-address",
    "ipv6-gateway",
    "dns-servers",
    "ntp-servers",
    "admin-ssh-key",
    "trust-vcenter-cert",
    "kmip-port",
    "syslog-server",
    "syslog-ca",
    "custodians",
    "custodian-threshold",
];

impl Settings {
    /// Reads and checks the properties of an OVF environment document.
    pub(super) fn from_env(xml: &str) -> Result<Settings, PropertyError> {
        let properties = read_properties(xml)?;
        let get = |key: &str| {
            properties
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let hostname = match get("hostname") {
            Some(name) => check_hostname(name).map_err(|why| bad("hostname", why))?,
            None => "keyward".to_owned(),
        };
        let static_mode = match get("ip-mode").unwrap_or("dhcp") {
            "dhcp" => false,
            "static" => true,
            other => return Err(bad("ip-mode", format!("{other:?} is neither dhcp nor static"))),
        };
        let ipv4 = match (static_mode, get("ipv4-address")) {
            (true, Some(cidr)) => {
                let (addr, prefix) = cidr_v4(cidr).map_err(|why| bad("ipv4-address", why))?;
                Some((
                    addr,
                    prefix,
                    gateway(get("ipv4-gateway"), "ipv4-gateway", "IPv4")?,
                ))
            }
            (true, None) => return Err(bad("ipv4-address", "static addressing needs an address")),
            (false, Some(_)) => return Err(bad("ipv4-address", "given, but ip-mode is dhcp")),
            (false, None) => None,
        };
        let ipv6 = match get("ipv6-address") {
            Some(cidr) => {
                let (addr, prefix) = cidr_v6(cidr).map_err(|why| bad("ipv6-address", why))?;
                Some((
                    addr,
                    prefix,
                    gateway(get("ipv6-gateway"), "ipv6-gateway", "IPv6")?,
                ))
            }
            None => None,
        };
        if ipv6.is_none() && get("ipv6-gateway").is_some() {
            return Err(bad("ipv6-gateway", "given without ipv6-address"));
        }
        if ipv4.is_none() && get("ipv4-gateway").is_some() {
            return Err(bad("ipv4-gateway", "given without a static ipv4-address"));
        }
        let dns = list(get("dns-servers"))
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| bad("dns-servers", format!("{s:?} is not an IP address")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ntp = list(get("ntp-servers"))
            .map(|s| match s.parse::<IpAddr>() {
                Ok(ip) => Ok(ip.to_string()),
                Err(_) => check_hostname(s).map_err(|why| bad("ntp-servers", format!("{s:?}: {why}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (key, n) in [("dns-servers", dns.len()), ("ntp-servers", ntp.len())] {
            if n > MAX_SERVERS {
                return Err(bad(key, format!("at most {MAX_SERVERS}")));
            }
        }
        let ssh_key = get("admin-ssh-key")
            .map(|k| check_ssh_key(k).map_err(|why| bad("admin-ssh-key", why)))
            .transpose()?;
        let vcenter_pem = get("trust-vcenter-cert")
            .map(|p| check_pem(p).map_err(|why| bad("trust-vcenter-cert", why)))
            .transpose()?;
        let kmip_port = match get("kmip-port") {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p >= MIN_KMIP_PORT)
                .ok_or_else(|| {
                    bad(
                        "kmip-port",
                        format!(
                            "{p:?} is not a port number from {MIN_KMIP_PORT} to 65535 (the service holds no privilege to listen below {MIN_KMIP_PORT})"
                        ),
                    )
                })?,
            None => 5696,
        };
        let syslog = RemoteSyslog::from_properties(get("syslog-server"), get("syslog-ca"))?;
        let custodians = custodian_split(get("custodians"), get("custodian-threshold"))?;
        Ok(Settings {
            hostname,
            ipv4,
            ipv6,
            dns,
            ntp,
            ssh_key,
            vcenter_pem,
            kmip_port,
            syslog,
            custodians,
        })
    }

    /// The files first boot installs, by name.
    pub(super) fn files(&self) -> Vec<(&'static str, String)> {
        let mut files = vec![("hostname", format!("{}\n", self.hostname))];
        let mut network = String::from(
            "# Written by keyward from the VM's vApp properties.\n[Match]\nName=en* eth*\n\n[Network]\n",
        );
        match &self.ipv4 {
            None => network.push_str("DHCP=ipv4\n"),
            Some((addr, prefix, gateway)) => {
                let _ = writeln!(network, "Address={addr}/{prefix}");
                if let Some(g) = gateway {
                    let _ = writeln!(network, "Gateway={g}");
                }
            }
        }
        if let Some((addr, prefix, gateway)) = &self.ipv6 {
            let _ = writeln!(network, "Address={addr}/{prefix}");
            if let Some(g) = gateway {
                let _ = writeln!(network, "Gateway={g}");
            }
        }
        for d in &self.dns {
            let _ = writeln!(network, "DNS={d}");
        }
        if self.ipv4.is_none() {
            // The machine ID is transient (read-only root): identify by MAC address
            // so the lease survives a reboot.
            network.push_str("\n[DHCPv4]\nClientIdentifier=mac\n");
        }
        files.push(("10-keyward-ovf.network", network));
        if !self.ntp.is_empty() {
            files.push(("timesyncd.conf", format!("[Time]\nNTP={}\n", self.ntp.join(" "))));
        }
        if let Some(key) = &self.ssh_key {
            files.push(("authorized_keys", format!("{key}\n")));
        }
        if let Some(pem) = &self.vcenter_pem {
            files.push(("vcenter.pem", pem.clone()));
        }
        files.push(("kmip-port", format!("{}\n", self.kmip_port)));
        if let Some(syslog) = &self.syslog {
            files.extend(syslog.files(INSTALLED_AT));
        }
        if let Some((custodians, threshold)) = self.custodians {
            files.push(("custodians", format!("{custodians} {threshold}\n")));
        }
        files
    }

    /// One line for the console.
    pub(super) fn summary(&self) -> String {
        let address = match &self.ipv4 {
            None => "DHCP".to_owned(),
            Some((a, p, _)) => format!("{a}/{p}"),
        };
        format!(
            "appliance settings: host {}, address {address}{}, {} DNS, {} NTP server(s), SSH key {}, vCenter certificate {}, KMIP port {}, remote syslog {}, root key {}",
            self.hostname,
            self.ipv6
                .map(|(a, p, _)| format!(" and {a}/{p}"))
                .unwrap_or_default(),
            self.dns.len(),
            self.ntp.len(),
            if self.ssh_key.is_some() { "set" } else { "none" },
            if self.vcenter_pem.is_some() {
                "given"
            } else {
                "none"
            },
            self.kmip_port,
            self.syslog
                .as_ref()
                .map_or_else(|| "none".to_owned(), RemoteSyslog::describe),
            match self.custodians {
                None => "made at first boot".to_owned(),
                Some((n, m)) => format!("waits for hsm init with {m} of {n} custodian shares"),
            }
        )
    }
}

/// A gateway property, if given: an address of the family of the address it
/// goes with.
fn gateway<A: std::str::FromStr>(
    value: Option<&str>,
    key: &str,
    family: &str,
) -> Result<Option<A>, PropertyError> {
    value
        .map(|g| {
            g.parse::<A>()
                .map_err(|_| bad(key, format!("{g:?} is not an {family} address")))
        })
        .transpose()
}

/// The `custodians` and `custodian-threshold` properties: none (or 0) custodians
/// means the root key is made at first boot; otherwise a split `hsm init` accepts.
fn custodian_split(
    custodians: Option<&str>,
    threshold: Option<&str>,
) -> Result<Option<(u8, u8)>, PropertyError> {
    let number = |key: &str, text: &str| {
        text.parse::<u8>()
            .map_err(|_| bad(key, format!("{text:?} is not a number")))
    };
    let custodians = match custodians.map(|c| number("custodians", c)).transpose()? {
        None | Some(0) => {
            return match threshold {
                Some(_) => Err(bad("custodian-threshold", "given without custodians")),
                None => Ok(None),
            };
        }
        Some(n) => n,
    };
    let threshold = match threshold {
        Some(t) => number("custodian-threshold", t)?,
        None => 2,
    };
    crate::hsm::custodian::check_split(threshold, custodians)
        .map_err(|e| bad("custodians", e.to_string()))?;
    Ok(Some((custodians, threshold)))
}

/// The `(key, value)` pairs of the PropertySection, refusing keys the OVA does
/// not declare and keys given twice.
fn read_properties(xml: &str) -> Result<Vec<(String, String)>, PropertyError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut root_seen = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| bad("", format!("malformed XML: {e}")))?;
        let e = match event {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            Event::DocType(_) => return Err(bad("", "a document type declaration is not accepted")),
            _ => continue,
        };
        let local = e.local_name();
        let name = local.as_ref().to_owned();
        if !root_seen {
            if name != "Environment" {
                return Err(bad(
                    "",
                    format!("the root element is <{name}>, not an OVF <Environment>"),
                ));
            }
            root_seen = true;
        }
        if name != "Property" {
            continue;
        }
        let (mut key, mut value) = (None, None);
        for attr in e.attributes() {
            let attr = attr.map_err(|err| bad("", format!("bad attribute: {err}")))?;
            let text = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| bad("", format!("bad attribute value: {err}")))?
                .into_owned();
            match attr.key.local_name().as_ref() {
                "key" => key = Some(text),
                "value" => value = Some(text),
                _ => {}
            }
        }
        let key = key.ok_or_else(|| bad("", "a Property without a key"))?;
        if !KEYS.contains(&key.as_str()) {
            return Err(bad(&key, "not a property of this appliance"));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(bad(&key, "given twice"));
        }
        out.push((key, value.unwrap_or_default()));
    }
    if !root_seen {
        return Err(bad("", "no root element"));
    }
    Ok(out)
}

fn list(text: Option<&str>) -> impl Iterator<Item = &str> {
    text.unwrap_or("")
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// RFC 1123 host name (letters, digits, hyphens; labels of 1 to 63; 253 in all).
fn check_hostname(name: &str) -> Result<String, String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{name:?} is not a host name (letters, digits and hyphens, labels of 1 to 63 separated by dots)"
        ));
    }
    Ok(name.to_ascii_lowercase())
}

fn cidr_v4(text: &str) -> Result<(Ipv4Addr, u8), String> {
    cidr(text, 32, "IPv4", "192.0.2.10/24")
}

fn cidr_v6(text: &str) -> Result<(Ipv6Addr, u8), String> {
    cidr(text, 128, "IPv6", "2001:db8::10/64")
}

/// `address/prefix` of one family.
fn cidr<A: std::str::FromStr>(
    text: &str,
    max_prefix: u8,
    family: &str,
    example: &str,
) -> Result<(A, u8), String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: write the address with its prefix length, e.g. {example}"))?;
    let addr = addr
        .parse::<A>()
        .map_err(|_| format!("{addr:?} is not an {family} address"))?;
    let prefix = prefix
        .parse::<u8>()
        .ok()
        .filter(|p| (1..=max_prefix).contains(p))
        .ok_or_else(|| format!("prefix length {prefix:?} is not 1 to {max_prefix}"))?;
    Ok((addr, prefix))
}

/// One OpenSSH public key line whose type is one sshd accepts by default and
/// whose blob names that same type.
fn check_ssh_key(line: &str) -> Result<String, String> {
    use base64::Engine as _;
    const TYPES: [&str; 5] = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    ];
    if line.contains(['\n', '\r']) || line.len() > 16 * 1024 {
        return Err("must be one line".into());
    }
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("expected \"<type> <base64 key> [comment]\"".into());
    };
    if !TYPES.contains(&kind) {
        return Err(format!("key type {kind:?} is not one of {}", TYPES.join(", ")));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| "the key is not base64".to_owned())?;
    // The blob starts with its own type as an SSH string (u32 length, bytes).
    let named = raw
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| raw.get(4..4 + n));
    if named != Some(kind.as_bytes()) {
        return Err("the key's data does not match its type (a damaged copy?)".into());
    }
    let comment: Vec<&str> = parts.collect();
    Ok(if comment.is_empty() {
        format!("{kind} {blob}")
    } else {
        format!("{kind} {blob} {}", comment.join(" "))
    })
}

/// PEM certificates (vSphere's property fields are one line: `\n` stands for
/// a line break).
fn check_pem(text: &str) -> Result<String, String> {
    let pem = text.replace("\\n", "\n");
    let pem = if pem.ends_with('\n') {
        pem
    } else {
        format!("{pem}\n")
    };
    let certs = crate::pki::certs_from_pem(&pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    for cert in &certs {
        crate::pki::inspect_der(cert).map_err(|e| format!("not a certificate: {e}"))?;
    }
    Ok(pem)
}

/// Writes `files` into `out`, which appears whole or not at all.
fn write_folder(out: &Path, files: &[(&'static str, String)]) -> CliResult {
    use std::os::unix::fs::DirBuilderExt;
    if out.exists() {
        return Err(CliError::new(format!(
            "{} exists; refusing to write over it",
            out.display()
        )));
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_dir_all(&partial);
    let result = (|| -> std::io::Result<()> {
        std::fs::DirBuilder::new().mode(0o700).create(&partial)?;
        for (name, text) in files {
            std::fs::write(partial.join(name), text)?;
        }
        std::fs::rename(&partial, out)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_dir_all(&partial);
        CliError::from(e).context(out.display())
    })
}

#[cfg(test)]
mod tests;
