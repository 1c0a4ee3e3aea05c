//! `keyward check-config`: validates a configuration file and everything it names —
//! the server certificate and key, client trust (CA files, pins, the clients folder),
//! the issuing CA, the HSM (module, token, PIN, root key, mechanisms) and the store —
//! and explains each problem in one line. Prints `ok` lines otherwise. Exits non-zero
//! when anything failed. Changes nothing (the store is opened without creating or
//! migrating it; the HSM session only reads).

use std::path::{Path, PathBuf};

use super::clients::{format_time, now_unix, read_cert_file};
use super::{CliError, CliResult, RunCommand};
use crate::auth::TrustSnapshot;
use crate::config::{Config, clients};
use crate::pki::{self, CertificateAuthority, Fingerprint};

/// A server certificate expiring sooner than this gets a warning.
const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, clap::Args)]
pub struct CheckConfigCommand {
    /// The configuration file.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    config: PathBuf,
    /// Skip the HSM checks (e.g. on a machine without the token).
    #[arg(long)]
    no_hsm: bool,
}

/// Collects results, one line each.
#[derive(Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("ok    {what}: {}", one_line(&detail.to_string()));
    }
    fn warn(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("warn  {what}: {}", one_line(&detail.to_string()));
    }
    fn fail(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.problems += 1;
        println!("FAIL  {what}: {}", one_line(&detail.to_string()));
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl RunCommand for CheckConfigCommand {
    fn run(self) -> CliResult {
        let mut report = Report::default();
        let config = match Config::load(&self.config) {
            Ok(c) => {
                report.ok("config", c.source.display());
                c
            }
            Err(e) => {
                report.fail("config", e);
                return Err(CliError::new(format!("{} is not usable", self.config.display())));
            }
        };
        check_server_cert(&config, &mut report);
        check_trust(&config, &mut report);
        check_issuing_ca(&config, &mut report);
        if self.no_hsm {
            report.warn("hsm", "not checked (--no-hsm)");
        } else {
            check_hsm(&config, &mut report);
        }
        check_store(&config, &mut report);
        check_audit(&config, &mut report);
        match report.problems {
            0 => Ok(()),
            n => Err(CliError::new(format!(
                "{n} problem{} in {}",
                if n == 1 { "" } else { "s" },
                config.source.display()
            ))),
        }
    }
}

fn check_server_cert(config: &Config, report: &mut Report) {
    let der = match read_cert_file(&config.tls.cert) {
        Ok(certs) => certs.into_iter().next(),
        Err(e) => {
            report.fail("tls.cert", e);
            return;
        }
    };
    let Some(der) = der else { return };
    match pki::inspect_der(&der) {
        Ok(info) => {
            let now = now_unix();
            if now < info.not_before {
                report.fail(
                    "tls.cert",
                    format!("not valid before {}", format_time(info.not_before)),
                );
            } else if now > info.not_after {
                report.fail(
                    "tls.cert",
                    format!(
                        "expired on {} (renew: keyward server-cert renew)",
                        format_time(info.not_after)
                    ),
                );
            } else if info.not_after - now < EXPIRY_WARNING_DAYS * 86_400 {
                report.warn(
                    "tls.cert",
                    format!(
                        "expires on {} (renew: keyward server-cert renew)",
                        format_time(info.not_after)
                    ),
                );
            } else {
                report.ok(
                    "tls.cert",
                    format!(
                        "{}, valid until {}, SHA-256 {}",
                        info.subject,
                        format_time(info.not_after),
                        info.fingerprint
                    ),
                );
            }
        }
        Err(e) => {
            report.fail("tls.cert", format!("{}: {e}", config.tls.cert.display()));
            return;
        }
    }
    // The same loader the server uses: the key parses and belongs to the certificate.
    match crate::service::check_server_key(config) {
        Ok(()) => report.ok("tls.key", "matches tls.cert"),
        Err(crate::service::ServeError::Tls(e)) => {
            report.fail("tls.key", e.to_string().trim_start_matches("tls.key: "))
        }
        Err(e) => report.fail("tls.key", e),
    }
}

fn check_trust(config: &Config, report: &mut Report) {
    let problems_before = report.problems;
    let now = now_unix();
    for path in &config.tls.client_ca {
        match read_cert_file(path) {
            Ok(certs) => {
                let infos: Result<Vec<_>, _> = certs.iter().map(|d| pki::inspect_der(d)).collect();
                match infos {
                    Ok(infos) => {
                        if let Some(expired) = infos.iter().find(|i| i.not_after < now) {
                            report.fail(
                                "tls.client_ca",
                                format!(
                                    "{}: {} expired on {}",
                                    path.display(),
                                    expired.subject,
                                    format_time(expired.not_after)
                                ),
                            );
                        } else {
                            report.ok(
                                "tls.client_ca",
                                format!("{}: {} certificate(s)", path.display(), infos.len()),
                            );
                        }
                    }
                    Err(e) => report.fail("tls.client_ca", format!("{}: {e}", path.display())),
                }
            }
            Err(e) => report.fail("tls.client_ca", e),
        }
    }
    if let Some(dir) = &config.tls.clients_dir {
        match clients::load_dir(dir) {
            Ok(entries) => {
                let mut bad = 0;
                for entry in &entries {
                    if let Some(path) = &entry.cert {
                        match read_cert_file(path) {
                            Ok(certs) => {
                                if let Some(expired) = certs
                                    .iter()
                                    .filter_map(|d| pki::inspect_der(d).ok())
                                    .find(|i| i.not_after < now)
                                {
                                    report.warn(
                                        &format!("client {}", entry.name),
                                        format!(
                                            "{} expired on {}; its handshakes are refused",
                                            expired.subject,
                                            format_time(expired.not_after)
                                        ),
                                    );
                                }
                            }
                            Err(e) => {
                                bad += 1;
                                report.fail(&format!("client {}", entry.name), e);
                            }
                        }
                    }
                }
                if bad == 0 {
                    report.ok(
                        "tls.clients_dir",
                        format!("{}: {} client(s)", dir.display(), entries.len()),
                    );
                }
            }
            Err(e) => report.fail("tls.clients_dir", e),
        }
    }
    match TrustSnapshot::from_config(&config.tls) {
        Ok(snapshot) if snapshot.ca_count() + snapshot.pin_count() == 0 => report.warn(
            "trust",
            "no client is trusted: every handshake is refused until `keyward clients add`",
        ),
        Ok(snapshot) => report.ok(
            "trust",
            format!(
                "{} CA certificate(s), {} pinned certificate(s)",
                snapshot.ca_count(),
                snapshot.pin_count()
            ),
        ),
        // Already reported above in more detail, unless it is something else.
        Err(e) if report.problems == problems_before => report.fail("trust", e),
        Err(_) => {}
    }
}

fn check_issuing_ca(config: &Config, report: &mut Report) {
    let Some(issuing) = &config.tls.issuing_ca else {
        report.ok(
            "tls.issuing_ca",
            "not set (clients issue/sign-csr and server-cert renew are disabled)",
        );
        return;
    };
    match CertificateAuthority::from_files(&issuing.cert, &issuing.key) {
        Ok(ca) => {
            let fp = Fingerprint::of_der(ca.cert_der());
            report.ok(
                "tls.issuing_ca",
                format!("{} (key matches), SHA-256 {fp}", issuing.cert.display()),
            );
            let holds_ca = |p: &Path| {
                read_cert_file(p).is_ok_and(|certs| certs.iter().any(|d| Fingerprint::of_der(d) == fp))
            };
            let mut trusted_by: Vec<String> = config
                .tls
                .client_ca
                .iter()
                .filter(|p| holds_ca(p))
                .map(|_| "tls.client_ca".to_owned())
                .collect();
            if let Some(dir) = &config.tls.clients_dir {
                for entry in clients::load_dir(dir).unwrap_or_default() {
                    if entry.kind == clients::ClientKind::Ca && entry.cert.as_deref().is_some_and(holds_ca) {
                        trusted_by.push(format!("client {:?}", entry.name));
                    }
                }
            }
            if !trusted_by.is_empty() {
                report.warn(
                    "tls.issuing_ca",
                    format!(
                        "also trusted as a client CA ({}): every certificate it issues is trusted, \
                         and `clients remove` cannot revoke one",
                        trusted_by.join(", ")
                    ),
                );
            }
        }
        Err(e) => report.fail("tls.issuing_ca", e),
    }
}

fn check_hsm(config: &Config, report: &mut Report) {
    let hsm_config = match config.hsm.settings() {
        Ok(settings) => settings,
        Err(e) => {
            report.fail("hsm.pin_file", e);
            return;
        }
    };
    if !config.hsm.module.exists() {
        report.fail(
            "hsm.module",
            format!("{}: no such file", config.hsm.module.display()),
        );
        return;
    }
    let hsm = match crate::hsm::open(&hsm_config) {
        Ok(hsm) => hsm,
        Err(e) => {
            report.fail("hsm", format!("{}: {e}", config.hsm.token));
            return;
        }
    };
    match hsm.health() {
        Ok(status) => {
            let token = match &status.token_unreadable {
                None => format!("token {:?} serial {}", status.token_label, status.token_serial),
                Some(why) => format!("token in slot {} ({why})", status.slot_id),
            };
            report.ok(
                "hsm",
                format!(
                    "{} {}, {token}, logged in",
                    status.library, status.library_version
                ),
            );
            if status.mechanisms_missing.is_empty() {
                let profile = status.sealing_profile.map(|p| p.to_string()).unwrap_or_default();
                report.ok(
                    "hsm mechanisms",
                    format!("{} (sealing with {profile})", status.mechanisms_needed.join(", ")),
                );
            } else {
                report.fail(
                    "hsm mechanisms",
                    format!("the token lacks {}", status.mechanisms_missing.join(", ")),
                );
            }
        }
        Err(e) => report.fail("hsm", e),
    }
    match hsm.crk_versions() {
        Ok(v) if v.is_empty() => report.fail("hsm root key", "none in the token (run `keyward hsm init`)"),
        Ok(v) => {
            report.ok(
                "hsm root key",
                v.iter().map(|c| c.label()).collect::<Vec<_>>().join(", "),
            );
            if let Some(newest) = v.iter().max() {
                check_seal_round_trip(hsm.as_ref(), *newest, report);
            }
        }
        Err(e) => report.fail("hsm root key", e),
    }
}

/// Seals a test value under `crk` and opens it again: what every Create and Get
/// will do. A module whose AES-GCM or HMAC behaves unlike the standard (an IV it
/// does not hand back, a tag it does not check) fails here, before any key is sealed.
fn check_seal_round_trip(hsm: &dyn crate::hsm::Hsm, crk: crate::hsm::CrkVersion, report: &mut Report) {
    let probe = [0x5au8; 32];
    let aad = b"keyward check-config seal probe";
    let result = hsm
        .seal(crk, aad, &probe)
        .and_then(|blob| Ok((hsm.unseal(crk, aad, &blob)?, blob)))
        .map(|(opened, mut blob)| {
            let profile = crate::hsm::seal::SealingProfile::of_blob(&blob);
            // A flipped bit must be refused, or the token does not check the tag.
            if let Some(last) = blob.last_mut() {
                *last ^= 1;
            }
            let tampered_opens = hsm.unseal(crk, aad, &blob).is_ok();
            (opened, tampered_opens, profile)
        });
    match result {
        Ok((opened, false, Some(profile))) if opened.expose() == probe.as_slice() => {
            report.ok("hsm seal", format!("{profile} round trip under {}", crk.label()))
        }
        Ok((_, true, _)) => report.fail(
            "hsm seal",
            "the token opened a tampered blob (its tag was not checked)",
        ),
        Ok(_) => report.fail("hsm seal", "the token gave back other bytes than were sealed"),
        Err(e) => report.fail("hsm seal", format!("sealing under {} failed: {e}", crk.label())),
    }
}

fn check_store(config: &Config, report: &mut Report) {
    let store = &config.store;
    if let Some(path) = store.local_file()
        && !path.exists()
    {
        match path.parent() {
            Some(dir) if dir.is_dir() => report.ok(
                "store.path",
                format!("{}: not created yet (made on first start)", path.display()),
            ),
            _ => report.fail(
                "store.path",
                format!("{}: its folder does not exist", path.display()),
            ),
        }
        return;
    }
    // Through the same factory the server uses; an existing store only.
    let opened = crate::store::open(store, crate::store::OpenMode::ReadOnly);
    let result = match opened {
        Ok(s) => match super::direct::runtime() {
            Ok(rt) => rt
                .block_on(async {
                    s.health().await?;
                    s.check_access().await
                })
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(access) => {
            report.ok("store", format!("{}: {}, usable", store.location(), store.kind()));
            if let Some(access) = access {
                report.ok("store access", access);
            }
        }
        Err(e) => report.fail(
            "store",
            format!("{}: not a keyward store or unreadable ({e})", store.location()),
        ),
    }
}

fn check_audit(config: &Config, report: &mut Report) {
    if let Some(path) = &config.audit.path {
        match path.parent() {
            Some(dir) if dir.is_dir() => report.ok("audit.path", path.display()),
            _ => report.fail(
                "audit.path",
                format!("{}: its folder does not exist", path.display()),
            ),
        }
    }
}
