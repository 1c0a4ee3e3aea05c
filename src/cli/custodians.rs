//! `keyward hsm init --custodians N --threshold M` and `keyward hsm recover`:
//! the root keys of a software token, recoverable from M of N custodian
//! shares (see `crate::hsm::custodian`).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{CliError, CliResult};
use crate::hsm::custodian::{self, SECRET_BYTES, Share};
use crate::hsm::{CrkVersion, Hsm};

/// Longest share file read (a share is about 110 bytes).
const MAX_SHARE_FILE_BYTES: u64 = 1024;

#[derive(Debug, clap::Args)]
pub(super) struct CustodianArgs {
    /// Make the root keys recoverable from custodian shares: how many shares.
    /// Only for a software token (SoftHSM on the appliance's own disk); a
    /// hardware or cloud HSM has its vendor's backup and cloning instead.
    #[arg(long, requires = "threshold")]
    custodians: Option<u8>,
    /// How many of the shares rebuild the root keys (at least 2).
    #[arg(long, requires = "custodians")]
    threshold: Option<u8>,
    /// Where each share is written, once per custodian (new files, 0600).
    /// Give each to its custodian and delete it from this machine: a share
    /// left here is a share an attacker of this machine holds.
    #[arg(long = "share-out", requires = "custodians")]
    share_out: Vec<PathBuf>,
}

impl CustodianArgs {
    pub(super) fn wanted(&self) -> bool {
        self.custodians.is_some()
    }
}

/// Draws a master from the token, writes its shares, imports it and derives
/// root key 1 from it. Nothing is imported unless every share was written.
pub(super) fn init_with_custodians(hsm: &dyn Hsm, args: &CustodianArgs) -> CliResult {
    let (Some(custodians), Some(threshold)) = (args.custodians, args.threshold) else {
        return Err(CliError::new("--custodians and --threshold go together"));
    };
    if args.share_out.len() != usize::from(custodians) {
        return Err(CliError::new(format!(
            "{custodians} custodians need {custodians} --share-out files, {} given",
            args.share_out.len()
        )));
    }
    custodian::check_split(threshold, custodians).map_err(|e| CliError::new(e.to_string()))?;
    if let Some(set) = hsm.recovery_master_set()? {
        return Err(CliError::new(format!(
            "the token already holds a recovery master (share set {}); if no root key was derived \
             from it yet, run `keyward hsm recover` with its shares",
            hex::encode(set)
        )));
    }
    software_token_only(hsm)?;
    let master = hsm.random(SECRET_BYTES)?;
    let degree = usize::from(threshold - 1);
    let coefficients = hsm.random(degree * SECRET_BYTES)?;
    let shares = custodian::split(&master, threshold, custodians, &coefficients)
        .map_err(|e| CliError::new(e.to_string()))?;
    write_shares(&shares, &args.share_out)?;
    // Shares for a master the token does not hold would be worse than none.
    if let Err(e) = hsm.install_recovery_master(&master) {
        remove_files(&args.share_out);
        return Err(CliError::from(e).context("importing the recovery master (no share was kept)"));
    }
    drop(master);
    let first = CrkVersion(1);
    hsm.create_crk(first).map_err(|e| {
        CliError::from(e).context(
            "deriving the first root key (the master and the shares are in place: \
             `keyward hsm recover --share <2 of them> --versions 1` finishes it)",
        )
    })?;
    println!(
        "created root key {} (AES-256, sensitive, not extractable), derived from a recovery master",
        first.label()
    );
    println!(
        "wrote {custodians} custodian shares of set {} ({threshold} rebuild the root keys):",
        hex::encode(shares[0].set_id)
    );
    for path in &args.share_out {
        println!("  {}", path.display());
    }
    println!("give each share to its custodian, then delete it from this machine");
    Ok(())
}

/// Custodian recovery puts the root keys' source in the custodians' hands
/// and lets whoever holds the token's PIN derive copies of them: on a software
/// token the PIN and the token's files already give that; on a hardware or
/// cloud HSM it would undo what the HSM is for. So it is refused there (the
/// vendor's backup or cloning is the way).
fn software_token_only(hsm: &dyn Hsm) -> CliResult {
    let status = hsm.health()?;
    let software = [&status.library, &status.token_model]
        .iter()
        .any(|s| s.to_ascii_lowercase().contains("softhsm"));
    if !software {
        return Err(CliError::new(format!(
            "custodian recovery is for a software token (SoftHSM); {} is not one: use the HSM vendor's \
             backup or cloning of the partition instead",
            status.library
        )));
    }
    if !hsm.can_derive_root_keys()? {
        return Err(CliError::new(
            "this token cannot derive keys (CKM_AES_CBC_ENCRYPT_DATA), which custodian recovery needs",
        ));
    }
    Ok(())
}

/// Writes each share to its new file; on any failure removes every one
/// written, the failing one included (never a file that was there before).
fn write_shares(shares: &[Share], paths: &[PathBuf]) -> CliResult {
    for (n, (share, path)) in shares.iter().zip(paths).enumerate() {
        if let Err((error, existed)) = write_share(share, path) {
            remove_files(&paths[..n]);
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            return Err(error.context(format!("writing share {}", share.index)));
        }
    }
    Ok(())
}

fn remove_files(paths: &[PathBuf]) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// Writes one share to a new file; the error says whether the file existed
/// before (and so is not this command's to remove).
fn write_share(share: &Share, path: &Path) -> Result<(), (CliError, bool)> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            let existed = e.kind() == std::io::ErrorKind::AlreadyExists;
            (CliError::from(e).context(path.display()), existed)
        })?;
    let text = share.to_text();
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| (CliError::from(e).context(path.display()), false))
}

#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The configuration file naming the module, the (fresh) token and its PIN.
    #[arg(long, short, default_value = crate::cli::DEFAULT_CONFIG, env = crate::cli::CONFIG_ENV)]
    pub(super) config: PathBuf,
    /// A custodian's share file; give as many as the threshold.
    #[arg(long = "share", required = true)]
    shares: Vec<PathBuf>,
    /// The root key versions to rebuild, e.g. `1-3` or `1,2` (`keyward
    /// restore` names the ones a backup needs).
    #[arg(long, default_value = "1")]
    versions: String,
}

/// Rebuilds the master from the shares into a token that holds none (or
/// holds the same set's master, after a recovery that stopped half-way), then
/// derives the asked root key versions it lacks.
pub(super) fn recover(hsm: &dyn Hsm, args: &RecoverArgs) -> CliResult {
    let versions = parse_versions(&args.versions)?;
    let shares = args
        .shares
        .iter()
        .map(|p| read_share(p))
        .collect::<Result<Vec<Share>, CliError>>()?;
    // Everything is checked before the token is touched.
    let master = custodian::combine(&shares).map_err(|e| CliError::new(format!("recovery refused: {e}")))?;
    let set = shares.first().map(|s| s.set_id).unwrap_or_default();
    let present = hsm.crk_versions()?;
    match hsm.recovery_master_set()? {
        // A recovery that stopped half-way (or an init whose first derivation
        // failed) goes on: same set, the versions still missing.
        Some(held) if held == set => {}
        Some(held) => {
            return Err(CliError::new(format!(
                "recovery refused: the token holds the master of another share set ({}, not {})",
                hex::encode(held),
                hex::encode(set)
            )));
        }
        None if !present.is_empty() => {
            return Err(CliError::new(
                "recovery refused: the token already holds root keys not derived from a recovery master \
                 (recover into a fresh token)",
            ));
        }
        None => {
            software_token_only(hsm).map_err(|e| e.context("recovery refused"))?;
            hsm.install_recovery_master(&master)
                .map_err(|e| CliError::from(e).context("importing the recovery master"))?;
        }
    }
    drop(master);
    for v in versions.iter().filter(|v| !present.contains(v)) {
        hsm.create_crk(*v)
            .map_err(|e| CliError::from(e).context(format!("deriving root key {}", v.label())))?;
    }
    let labels: Vec<String> = versions.iter().map(|v| v.label()).collect();
    println!(
        "rebuilt root keys {} from {} shares of set {}",
        labels.join(", "),
        shares.len(),
        hex::encode(shares[0].set_id)
    );
    Ok(())
}

fn read_share(path: &Path) -> Result<Share, CliError> {
    let file = std::fs::File::open(path).map_err(|e| CliError::from(e).context(path.display()))?;
    let mut text = zeroize::Zeroizing::new(String::with_capacity(MAX_SHARE_FILE_BYTES as usize + 1));
    file.take(MAX_SHARE_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| CliError::from(e).context(path.display()))?;
    if text.len() as u64 > MAX_SHARE_FILE_BYTES {
        return Err(CliError::new(format!(
            "{}: not a share (too large)",
            path.display()
        )));
    }
    Share::from_text(&text).map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

/// `1-3`, `2`, `1,3,4`.
fn parse_versions(text: &str) -> Result<Vec<CrkVersion>, CliError> {
    let bad = || CliError::new(format!("--versions {text:?}: expected e.g. 1-3 or 1,2"));
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<u32>().map_err(|_| bad())?,
                b.parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let v = part.parse::<u32>().map_err(|_| bad())?;
                (v, v)
            }
        };
        if from == 0 || to < from || to - from >= 1000 {
            return Err(bad());
        }
        out.extend((from..=to).map(CrkVersion));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_ranges_and_lists() {
        let v = |t: &str| parse_versions(t).map(|v| v.into_iter().map(|c| c.0).collect::<Vec<_>>());
        assert_eq!(v("1").unwrap(), vec![1]);
        assert_eq!(v("1-3").unwrap(), vec![1, 2, 3]);
        assert_eq!(v("3,1,2-3").unwrap(), vec![1, 2, 3]);
        for bad in ["", "0", "3-1", "a", "1-", "1-5000"] {
            assert!(v(bad).is_err(), "{bad}");
        }
    }
}
