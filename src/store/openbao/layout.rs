//! How a [`Record`] lies in KV v2: one secret per uid at
//! `<mount>/data/<prefix>/<uid>`, whose data is the JSON object below.
//!
//! ```json
//! { "keyward_record": 1, "uid": "…", "object_type": 2, "state": 1, "group": "",
//!   "crk_version": 1, "sealed": "<base64>", "attributes": "<base64>",
//!   "index": [["x-Name", "vm-1"]], "version": 3,
//!   "created_at": 1700000000, "updated_at": 1700000100 }
//! ```
//!
//! `version` is the record version of the store contract, kept in the data and
//! not taken from the KV version: an imported record keeps the version its
//! backup gave it, whatever KV numbering the secret has. Every write still
//! carries `cas` = the KV version it read (or 0 to create), so the KV version is
//! the compare-and-swap token and the record version moves with it.

use serde::Deserialize;
use serde_json::Value;

use super::http::Fault;
use crate::store::Record;
use crate::store::remote::record_json::{NOT_A_RECORD, StoredRecord};

/// Longest uid stored (a KV key name).
const MAX_UID_BYTES: usize = 200;

/// The request body of a write with `cas` (0: create only).
pub(super) fn write_body(record: &Record, cas: u64) -> Result<Vec<u8>, Fault> {
    let body = serde_json::json!({ "options": { "cas": cas }, "data": StoredRecord::from_record(record) });
    serde_json::to_vec(&body).map_err(|e| Fault::Local(format!("cannot encode a record: {e}")))
}

/// A record read back, with the KV version to send as `cas` on its update.
pub(super) struct Read {
    pub record: Record,
    pub kv_version: u64,
}

#[derive(Deserialize)]
struct ReadReply {
    data: ReadData,
}

#[derive(Deserialize)]
struct ReadData {
    data: Option<Value>,
    metadata: ReadMetadata,
}

#[derive(Deserialize)]
struct ReadMetadata {
    version: u64,
}

/// Decodes a `GET <mount>/data/<prefix>/<uid>` answer. `Ok(None)`: the latest
/// version is deleted or destroyed (no data). A record whose `uid` is not the
/// key it was read from (copied or moved in the store) is `Corrupt`.
pub(super) fn decode_read(uid: &str, body: &[u8]) -> Result<Option<Read>, Fault> {
    let bad = |why: String| Fault::Decode(format!("record {uid} in OpenBao: {why}"));
    let reply: ReadReply =
        serde_json::from_slice(body).map_err(|_| bad("not a KV v2 read answer".to_owned()))?;
    let Some(data) = reply.data.data else {
        return Ok(None);
    };
    let stored: StoredRecord = serde_json::from_value(data).map_err(|_| bad(NOT_A_RECORD.to_owned()))?;
    let record = stored.into_record(uid).map_err(bad)?;
    Ok(Some(Read {
        record,
        kv_version: reply.data.metadata.version,
    }))
}

/// The KV version a successful write created.
pub(super) fn decode_write(body: &[u8]) -> Result<u64, Fault> {
    #[derive(Deserialize)]
    struct WriteReply {
        data: ReadMetadata,
    }
    serde_json::from_slice::<WriteReply>(body)
        .map(|r| r.data.version)
        .map_err(|_| {
            Fault::Decode("a write answer without a KV version (is the mount KV version 2?)".to_owned())
        })
}

/// The KV version of a secret's metadata (0 when it was never written).
pub(super) fn decode_metadata_version(body: &[u8]) -> Result<u64, Fault> {
    #[derive(Deserialize)]
    struct MetadataReply {
        data: MetadataData,
    }
    #[derive(Deserialize)]
    struct MetadataData {
        current_version: u64,
    }
    serde_json::from_slice::<MetadataReply>(body)
        .map(|r| r.data.current_version)
        .map_err(|_| Fault::Decode("a metadata answer without current_version".to_owned()))
}

/// The record uids of a LIST answer, sorted: sub-folders and keyward's own
/// keys (a leading '.') are skipped.
pub(super) fn decode_list(body: &[u8]) -> Result<Vec<String>, Fault> {
    #[derive(Deserialize)]
    struct ListReply {
        data: ListData,
    }
    #[derive(Deserialize)]
    struct ListData {
        #[serde(default)]
        keys: Vec<String>,
    }
    let reply: ListReply =
        serde_json::from_slice(body).map_err(|_| Fault::Decode("a LIST answer without keys".to_owned()))?;
    let mut keys: Vec<String> = reply
        .data
        .keys
        .into_iter()
        .filter(|k| !k.ends_with('/') && !k.starts_with('.'))
        .collect();
    keys.sort();
    Ok(keys)
}

/// Refuses a uid that cannot be one KV key name (path separators, URL
/// specials, a leading dot, which keyward keeps for its own keys).
pub(super) fn check_uid(uid: &str) -> Result<(), Fault> {
    let ok = !uid.is_empty()
        && uid.len() <= MAX_UID_BYTES
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Fault::Local(format!(
            "uid {:?} cannot be stored in OpenBao (letters, digits, '.', '_', '-', ':'; at most {MAX_UID_BYTES} bytes)",
            uid.chars().take(64).collect::<String>()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_record;

    fn as_read_reply(body: &[u8], kv_version: u64) -> Vec<u8> {
        let written: Value = serde_json::from_slice(body).unwrap();
        serde_json::to_vec(&serde_json::json!({
            "data": { "data": written["data"], "metadata": { "version": kv_version } }
        }))
        .unwrap()
    }

    #[test]
    fn a_record_round_trips_through_the_kv_layout() {
        let mut record = sample_record("uid-a", 7);
        record.version = 5;
        record.index.reverse();
        let body = write_body(&record, 3).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains("\"cas\":3"), "{text}");
        let read = decode_read("uid-a", &as_read_reply(&body, 3)).unwrap().unwrap();
        record.normalize_index();
        assert_eq!(read.record, record);
        assert_eq!(read.kv_version, 3);
    }

    #[test]
    fn a_moved_or_foreign_secret_is_corrupt() {
        let body = write_body(&sample_record("uid-a", 1), 0).unwrap();
        let moved = decode_read("uid-b", &as_read_reply(&body, 1));
        assert!(matches!(moved, Err(Fault::Decode(m)) if m.contains("another uid")));
        let foreign = br#"{"data":{"data":{"password":"hunter2"},"metadata":{"version":1}}}"#;
        let err = decode_read("uid-a", foreign).err().unwrap();
        assert!(
            matches!(&err, Fault::Decode(m) if !m.contains("hunter2")),
            "{err:?}"
        );
        let deleted = br#"{"data":{"data":null,"metadata":{"version":2}}}"#;
        assert!(decode_read("uid-a", deleted).unwrap().is_none());
    }

    #[test]
    fn list_skips_folders_and_own_keys_and_sorts() {
        let body = br#"{"data":{"keys":["b","a/","a",".keyward-health","c"]}}"#;
        assert_eq!(decode_list(body).unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn uids_are_single_key_names() {
        for ok in ["0f3c9a2e-1b2c-4d5e-8f90-123456789abc", "uid-22x", "a:b.c_d"] {
            check_uid(ok).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a b",
            "a?b",
            "a%2Fb",
            "..",
            &"x".repeat(201),
        ] {
            assert!(check_uid(bad).is_err(), "{bad}");
        }
    }
}
