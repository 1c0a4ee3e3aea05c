//! Custodian shares of the recovery master: Shamir's secret sharing over
//! GF(2^8), M of N, on a 32-byte secret.
//!
//! On a software token (the appliance's SoftHSM on the VM's own disk) losing
//! the disk loses every root key, and so every key, backups included. With
//! custodian recovery, `keyward hsm init` draws a 32-byte master from the
//! token's RNG, splits it into N shares of which any M rebuild it, writes each
//! share once (for its custodian to take away) and imports the master into the
//! token as a non-extractable derivation key; every root key version is then
//! derived inside the token from it (see `recovery`). A fresh token given M
//! shares (`keyward hsm recover`) holds the same root keys again.
//!
//! Fewer than M shares say nothing about the master (each byte's polynomial
//! has M-1 random coefficients). A share is one line of text that names its
//! set, threshold and index, and ends in a check of its own, so a typo or a
//! share of another set is refused by name; the rebuilt master is checked
//! against the set's identifier, so a wrong share among M is caught too.

use std::fmt;

use crate::secret::SecretBytes;

/// Bytes of the master secret.
pub const SECRET_BYTES: usize = 32;
/// Most custodians (share indices are non-zero bytes).
pub const MAX_CUSTODIANS: u8 = 16;
const PREFIX: &str = "keyward-share-v1";
/// Domain of the set identifier, a digest of the master.
const SET_ID_DOMAIN: &[u8] = b"keyward recovery set id v1\0";

/// One custodian's share.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    pub set_id: [u8; 8],
    pub threshold: u8,
    /// The x coordinate: 1..=255, distinct per share.
    pub index: u8,
    value: SecretBytes,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Share(set {}, {} needed, index {})",
            hex::encode(self.set_id),
            self.threshold,
            self.index
        )
    }
}

/// Why shares were not made or not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareError {
    /// Threshold and custodian count out of range.
    BadSplit(String),
    /// A share's text does not read; the text says which part.
    Malformed(String),
    /// Shares of different sets or thresholds.
    Mixed,
    /// The same share (index) twice.
    Repeated(u8),
    /// Fewer shares than the threshold.
    TooFew { needed: u8, given: usize },
    /// The shares combine into something that is not the set's master.
    WrongShare,
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareError::BadSplit(why) => write!(f, "cannot split the master: {why}"),
            ShareError::Malformed(why) => write!(f, "not a keyward share: {why}"),
            ShareError::Mixed => f.write_str("the shares belong to different sets (or disagree on the threshold)"),
            ShareError::Repeated(i) => write!(f, "share {i} is given twice"),
            ShareError::TooFew { needed, given } => {
                write!(f, "{needed} shares are needed, {given} given: nothing is rebuilt from fewer")
            }
            ShareError::WrongShare => f.write_str(
                "the shares do not rebuild the set's master: one of them was altered or comes from another set",
            ),
        }
    }
}

impl std::error::Error for ShareError {}

/// The identifier of the set a master's shares belong to.
pub fn set_id(master: &SecretBytes) -> [u8; 8] {
    let mut input = SET_ID_DOMAIN.to_vec();
    input.extend_from_slice(master.expose());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    zeroize::Zeroize::zeroize(&mut input);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest.as_ref()[..8]);
    id
}

/// Whether `threshold` of `custodians` is a split this module makes.
pub fn check_split(threshold: u8, custodians: u8) -> Result<(), ShareError> {
    if !(2..=MAX_CUSTODIANS).contains(&custodians) || !(2..=custodians).contains(&threshold) {
        return Err(ShareError::BadSplit(format!(
            "need 2 <= threshold <= custodians <= {MAX_CUSTODIANS} (got {threshold} of {custodians})"
        )));
    }
    Ok(())
}

/// Splits `master` into `custodians` shares, any `threshold` of which rebuild
/// it. `coefficients` are `(threshold - 1) * 32` random bytes (from the HSM).
pub fn split(
    master: &SecretBytes,
    threshold: u8,
    custodians: u8,
    coefficients: &SecretBytes,
) -> Result<Vec<Share>, ShareError> {
    if master.len() != SECRET_BYTES {
        return Err(ShareError::BadSplit(format!(
            "the master must be {SECRET_BYTES} bytes"
        )));
    }
    check_split(threshold, custodians)?;
    let degree = usize::from(threshold - 1);
    if coefficients.len() != degree * SECRET_BYTES {
        return Err(ShareError::BadSplit("wrong number of random coefficients".into()));
    }
    let id = set_id(master);
    let secret = master.expose();
    let random = coefficients.expose();
    let shares = (1..=custodians)
        .map(|x| {
            let value: Vec<u8> = (0..SECRET_BYTES)
                .map(|byte| {
                    // Horner: a_{d} x^d + ... + a_1 x + secret, a_k = random[(k-1)*32 + byte].
                    let mut y = 0u8;
                    for k in (1..=degree).rev() {
                        y = gf_mul(y, x) ^ random[(k - 1) * SECRET_BYTES + byte];
                    }
                    gf_mul(y, x) ^ secret[byte]
                })
                .collect();
            Share {
                set_id: id,
                threshold,
                index: x,
                value: SecretBytes::new(value),
            }
        })
        .collect();
    Ok(shares)
}

/// Rebuilds the master from at least `threshold` shares of one set.
pub fn combine(shares: &[Share]) -> Result<SecretBytes, ShareError> {
    let first = shares.first().ok_or(ShareError::TooFew { needed: 2, given: 0 })?;
    if shares
        .iter()
        .any(|s| s.set_id != first.set_id || s.threshold != first.threshold)
    {
        return Err(ShareError::Mixed);
    }
    for (i, s) in shares.iter().enumerate() {
        if shares[..i].iter().any(|t| t.index == s.index) {
            return Err(ShareError::Repeated(s.index));
        }
    }
    if shares.len() < usize::from(first.threshold) {
        return Err(ShareError::TooFew {
            needed: first.threshold,
            given: shares.len(),
        });
    }
    let needed = usize::from(first.threshold);
    let master = interpolate(&shares[..needed]);
    if set_id(&master) != first.set_id {
        return Err(ShareError::WrongShare);
    }
    // Every share given beyond the threshold is checked too: with the first
    // threshold - 1 it must rebuild the same master.
    for extra in &shares[needed..] {
        let mut with: Vec<Share> = shares[..needed - 1].to_vec();
        with.push(extra.clone());
        if interpolate(&with) != master {
            return Err(ShareError::WrongShare);
        }
    }
    Ok(master)
}

/// Lagrange interpolation at 0 of shares with distinct indices:
/// secret = sum_j y_j * prod_{m != j} x_m / (x_m - x_j); in GF(2^8)
/// subtraction is xor.
fn interpolate(used: &[Share]) -> SecretBytes {
    let mut master = vec![0u8; SECRET_BYTES];
    for (j, sj) in used.iter().enumerate() {
        let mut basis = 1u8;
        for (m, sm) in used.iter().enumerate() {
            if m != j {
                basis = gf_mul(basis, gf_mul(sm.index, gf_inv(sm.index ^ sj.index)));
            }
        }
        for (out, y) in master.iter_mut().zip(sj.value.expose()) {
            *out ^= gf_mul(*y, basis);
        }
    }
    SecretBytes::new(master)
}

impl Share {
    /// The share as one line: `keyward-share-v1-<set>-<threshold>-<index>-<value>-<check>`.
    pub fn to_text(&self) -> zeroize::Zeroizing<String> {
        let value = zeroize::Zeroizing::new(hex::encode(self.value.expose()));
        let body = zeroize::Zeroizing::new(format!(
            "{PREFIX}-{}-{}-{}-{}",
            hex::encode(self.set_id),
            self.threshold,
            self.index,
            value.as_str()
        ));
        zeroize::Zeroizing::new(format!("{}-{}", body.as_str(), check(&body)))
    }

    /// Reads a share written by [`Share::to_text`] (surrounding blanks ignored).
    pub fn from_text(text: &str) -> Result<Share, ShareError> {
        let text = text.trim();
        let malformed = |why: &str| ShareError::Malformed(why.to_owned());
        let body = text
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_prefix('-'))
            .ok_or_else(|| malformed("it does not start with keyward-share-v1"))?;
        let parts: Vec<&str> = body.split('-').collect();
        let [set, threshold, index, value, sum] = parts.as_slice() else {
            return Err(malformed("expected set, threshold, index, value and check"));
        };
        let signed = &text[..text.len() - sum.len() - 1];
        if check(signed) != *sum {
            return Err(malformed("its check does not match (a typo, or a damaged copy)"));
        }
        let set_id: [u8; 8] = hex::decode(set)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("bad set identifier"))?;
        let threshold: u8 = threshold.parse().map_err(|_| malformed("bad threshold"))?;
        let index: u8 = index.parse().map_err(|_| malformed("bad index"))?;
        if !(2..=MAX_CUSTODIANS).contains(&threshold) || index == 0 || index > MAX_CUSTODIANS {
            return Err(malformed("threshold or index out of range"));
        }
        let value = SecretBytes::new(hex::decode(value).map_err(|_| malformed("bad value"))?);
        if value.len() != SECRET_BYTES {
            return Err(malformed("bad value length"));
        }
        Ok(Share {
            set_id,
            threshold,
            index,
            value,
        })
    }
}

/// Eight hex digits of SHA-256 over the share's text.
fn check(body: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
    hex::encode(&digest.as_ref()[..4])
}

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, without tables
/// or branches on the data.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (carry & 0x1B);
        b >>= 1;
    }
    product
}

/// Inverse in GF(2^8): a^254 (a != 0).
fn gf_inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut exp = 254u8;
    while exp > 0 {
        if exp & 1 == 1 {
            result = gf_mul(result, base);
        }
        base = gf_mul(base, base);
        exp >>= 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u8, len: usize) -> SecretBytes {
        SecretBytes::new(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect(),
        )
    }

    #[test]
    fn field_arithmetic() {
        // The AES field: 0x57 * 0x83 = 0xC1 (FIPS 197 §4.2).
        assert_eq!(gf_mul(0x57, 0x83), 0xC1);
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "inverse of {a}");
        }
    }

    #[test]
    fn any_threshold_of_the_shares_rebuild_the_master_and_fewer_do_not() {
        let master = bytes(7, 32);
        let shares = split(&master, 3, 5, &bytes(99, 64)).unwrap();
        assert_eq!(shares.len(), 5);
        for a in 0..5 {
            for b in 0..5 {
                for c in 0..5 {
                    if a == b || b == c || a == c {
                        continue;
                    }
                    let picked = [shares[a].clone(), shares[b].clone(), shares[c].clone()];
                    assert_eq!(combine(&picked).unwrap(), master);
                }
            }
        }
        assert_eq!(
            combine(&shares[..2]),
            Err(ShareError::TooFew { needed: 3, given: 2 })
        );
        assert_eq!(
            combine(&[shares[0].clone(), shares[0].clone(), shares[1].clone()]),
            Err(ShareError::Repeated(1))
        );
        let other = split(&bytes(8, 32), 3, 5, &bytes(1, 64)).unwrap();
        assert_eq!(
            combine(&[shares[0].clone(), shares[1].clone(), other[2].clone()]),
            Err(ShareError::Mixed)
        );
        // A share altered but still well-formed: the rebuilt master is not the set's.
        let mut altered = shares[2].clone();
        let mut v = altered.value.expose().to_vec();
        v[0] ^= 1;
        altered.value = SecretBytes::new(v);
        assert_eq!(
            combine(&[shares[0].clone(), shares[1].clone(), altered.clone()]),
            Err(ShareError::WrongShare)
        );
        // All five rebuild it; an altered fourth, beyond the threshold, is caught.
        assert_eq!(combine(&shares).unwrap(), master);
        assert_eq!(
            combine(&[shares[0].clone(), shares[1].clone(), shares[3].clone(), altered]),
            Err(ShareError::WrongShare)
        );
    }

    #[test]
    fn a_share_reads_back_and_a_typo_is_caught() {
        let shares = split(&bytes(3, 32), 2, 3, &bytes(5, 32)).unwrap();
        let text = shares[1].to_text();
        assert!(text.starts_with("keyward-share-v1-"));
        assert_eq!(
            Share::from_text(&format!("  {}\n", text.as_str())).unwrap(),
            shares[1]
        );
        let mut typo = text.as_bytes().to_vec();
        let at = typo.len() - 20;
        typo[at] = if typo[at] == b'0' { b'1' } else { b'0' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(matches!(Share::from_text(&typo), Err(ShareError::Malformed(_))));
        assert!(matches!(Share::from_text("hello"), Err(ShareError::Malformed(_))));
        assert!(!format!("{:?}", shares[1]).contains(&hex::encode(shares[1].value.expose())));
    }

    #[test]
    fn splits_out_of_range_are_refused() {
        let m = bytes(1, 32);
        assert!(split(&m, 1, 3, &bytes(0, 0)).is_err());
        assert!(split(&m, 4, 3, &bytes(0, 96)).is_err());
        assert!(split(&m, 2, 17, &bytes(0, 32)).is_err());
        assert!(split(&bytes(1, 16), 2, 3, &bytes(0, 32)).is_err());
        assert!(split(&m, 2, 3, &bytes(0, 31)).is_err());
    }
}
