//! How a [`Record`] lies in AWS Secrets Manager: one secret per uid, named
//! `<prefix>/<uid>`, whose `SecretString` (version stage `AWSCURRENT`) is the
//! JSON object below.
//!
//! ```json
//! { "keyward_record": 1, "uid": "…", "object_type": 2, "state": 1, "group": "",
//!   "crk_version": 1, "sealed": "<base64>", "attributes": "<base64>",
//!   "index": [["x-Name", "vm-1"]], "version": 3,
//!   "created_at": 1700000000, "updated_at": 1700000100 }
//! ```
//!
//! `SecretString` rather than `SecretBinary`: the console shows it (a customer
//! sees which object a secret is, its state and dates, never plaintext key
//! material: `sealed` is the KEK sealed under the HSM's root key), and both
//! have the same 65,536-byte limit. `version` is the record version of the
//! store contract, kept in the data: an imported record keeps the version its
//! backup gave it, whatever secret versions the secret has.

use super::client::Fault;
use crate::store::Record;
use crate::store::remote::record_json::{NOT_A_RECORD, StoredRecord};

/// Longest uid stored (the secret name is at most 512 characters, prefix included).
pub(super) const MAX_UID_BYTES: usize = 200;

/// Largest `SecretString` Secrets Manager accepts, in bytes.
pub(super) const MAX_SECRET_BYTES: usize = 65_536;

/// Bytes of the JSON around the opaque fields of a record (field names,
/// numbers, punctuation), rounded up: what [`max_record_bytes`] keeps aside.
const FRAME_BYTES: usize = 1024;

/// The largest record, counted as [`record_bytes`] counts it, that the store
/// accepts: what fits one secret with base64 costing 4/3 on every byte. A
/// record within it can still be refused when its index text needs much JSON
/// escaping; the encoded size is the final check.
pub(super) fn max_record_bytes() -> usize {
    (MAX_SECRET_BYTES - FRAME_BYTES) / 4 * 3
}

/// The size of a record as [`max_record_bytes`] bounds it: its opaque bytes,
/// its group and its index text.
pub(super) fn record_bytes(record: &Record) -> usize {
    record.sealed.len()
        + record.attributes.len()
        + record.group.len()
        + record
            .index
            .iter()
            .map(|e| e.name.len() + e.value.len() + 8)
            .sum::<usize>()
}

/// The `SecretString` of `record` (its index sorted and deduplicated);
/// `TooLarge` beyond what one secret holds.
pub(super) fn encode(record: &Record) -> Result<String, Fault> {
    if record_bytes(record) > max_record_bytes() {
        return Err(Fault::TooLarge(format!(
            "record {} holds {} bytes; a Secrets Manager secret holds at most {} (64 KiB as base64 in JSON)",
            record.uid,
            record_bytes(record),
            max_record_bytes()
        )));
    }
    let stored = StoredRecord::from_record(record);
    let text =
        serde_json::to_string(&stored).map_err(|e| Fault::Local(format!("cannot encode a record: {e}")))?;
    if text.len() > MAX_SECRET_BYTES {
        return Err(Fault::TooLarge(format!(
            "record {} is {} bytes as a secret; Secrets Manager holds at most {MAX_SECRET_BYTES}",
            record.uid,
            text.len()
        )));
    }
    Ok(text)
}

/// Decodes the `SecretString` read from the secret of `uid`. A record whose
/// `uid` is not the one its name says (copied or renamed in the store) is
/// `Corrupt`.
pub(super) fn decode(uid: &str, text: &str) -> Result<Record, Fault> {
    let bad = |why: String| Fault::Decode(format!("record {uid} in Secrets Manager: {why}"));
    let stored: StoredRecord = serde_json::from_str(text).map_err(|_| bad(NOT_A_RECORD.to_owned()))?;
    stored.into_record(uid).map_err(bad)
}

/// The `ClientRequestToken` of a create: derived from the uid and the exact
/// secret text, so that a create retried by this node, by another node, or by
/// vCenter resending its request is the same secret version (idempotent), and
/// a create of other content under the same uid is not. UUID-shaped (36
/// characters; Secrets Manager wants 32 to 64).
pub(super) fn create_token(uid: &str, text: &str) -> String {
    let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hash.update(b"keyward secretsmanager create v1\0");
    hash.update(uid.as_bytes());
    hash.update(b"\0");
    hash.update(text.as_bytes());
    let digest = hash.finish();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid().to_string()
}

/// The `ClientRequestToken` of one update: random, so that two nodes writing
/// the same content at once still make two secret versions and one loses the
/// stage move (exactly one winner). The same token is reused by the retries of
/// that one update.
pub(super) fn update_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Refuses a uid that cannot be the last part of a secret name (separators,
/// characters secret names do not allow, a leading dot).
pub(super) fn check_uid(uid: &str) -> Result<(), Fault> {
    let ok = !uid.is_empty()
        && uid.len() <= MAX_UID_BYTES
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Fault::Local(format!(
            "uid {:?} cannot be stored in Secrets Manager (letters, digits, '.', '_', '-'; at most {MAX_UID_BYTES} bytes)",
            uid.chars().take(64).collect::<String>()
        )))
    }
}

/// A prefix: `/`-separated segments of the characters secret names allow
/// (`A-Za-z0-9_+=.@-`), no empty, `.` or `..` segment; outer slashes dropped.
pub(super) fn clean_prefix(text: &str) -> Result<String, String> {
    let trimmed = text.trim_matches('/');
    let ok = !trimmed.is_empty()
        && trimmed.len() <= 256
        && trimmed.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'=' | b'.' | b'@' | b'-')
                })
        });
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(format!(
            "{text:?} must be '/'-separated segments of letters, digits and '_+=.@-' (at most 256 characters)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_record;

    #[test]
    fn a_record_round_trips_through_the_secret_layout() {
        let mut record = sample_record("uid-a", 7);
        record.version = 5;
        record.index.reverse();
        let text = encode(&record).unwrap();
        let read = decode("uid-a", &text).unwrap();
        record.normalize_index();
        assert_eq!(read, record);
    }

    #[test]
    fn a_moved_or_foreign_secret_is_corrupt() {
        let text = encode(&sample_record("uid-a", 1)).unwrap();
        assert!(matches!(decode("uid-b", &text), Err(Fault::Decode(m)) if m.contains("another uid")));
        let err = decode("uid-a", r#"{"password":"hunter2"}"#).err().unwrap();
        assert!(
            matches!(&err, Fault::Decode(m) if !m.contains("hunter2")),
            "{err:?}"
        );
    }

    #[test]
    fn create_tokens_follow_content_and_update_tokens_do_not_repeat() {
        let a = encode(&sample_record("uid-a", 1)).unwrap();
        let b = encode(&sample_record("uid-a", 2)).unwrap();
        assert_eq!(create_token("uid-a", &a), create_token("uid-a", &a));
        assert_ne!(create_token("uid-a", &a), create_token("uid-a", &b));
        assert_ne!(create_token("uid-a", &a), create_token("uid-b", &a));
        assert_eq!(create_token("uid-a", &a).len(), 36);
        assert_ne!(update_token(), update_token());
    }

    #[test]
    fn a_record_beyond_one_secret_is_too_large() {
        let mut record = sample_record("uid-a", 1);
        record.sealed.clear();
        record.sealed = vec![7; max_record_bytes() - record_bytes(&record)];
        assert!(encode(&record).unwrap().len() <= MAX_SECRET_BYTES);
        record.sealed.push(7);
        assert!(matches!(encode(&record), Err(Fault::TooLarge(_))));
        record.sealed = vec![7; MAX_SECRET_BYTES];
        assert!(matches!(encode(&record), Err(Fault::TooLarge(_))));
    }

    #[test]
    fn uids_and_prefixes_are_plain_names() {
        for ok in ["0f3c9a2e-1b2c-4d5e-8f90-123456789abc", "uid-22x", "a.b_c"] {
            check_uid(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "a b", "a:b", "a?b", &"x".repeat(201)] {
            assert!(check_uid(bad).is_err(), "{bad}");
        }
        assert_eq!(clean_prefix("/kms/prod/").unwrap(), "kms/prod");
        for bad in ["", "/", "a//b", "a/../b", "a b", "a?b", "a:b"] {
            assert!(clean_prefix(bad).is_err(), "{bad}");
        }
    }
}
