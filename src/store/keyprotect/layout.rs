//! How a record lies in Key Protect: one imported standard key per record
//! *generation*.
//!
//! - `name`: `kmip-<uid>`, the same for every generation (names are not
//!   unique in Key Protect; the customer sees the uid in the console).
//! - `aliases`: `["kmip-<uid>-g<generation>"]`. Aliases are unique in the
//!   instance: importing generation N+1 is the compare-and-swap of an update
//!   and the create-if-absent of a create.
//! - `description`: `keyward record <uid> generation <N>` (with ` tombstone`
//!   on the marker a delete writes first); listings carry it, so the newest
//!   generation of every uid is known without reading payloads.
//! - `payload`: base64 of a JSON document with every record field (the sealed
//!   blob and attributes base64 inside it), at most 7,500 characters.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::super::{IndexEntry, Record};
use crate::store::remote::http::Fault;

/// Key Protect's largest standard-key payload (base64 characters).
pub(super) const MAX_PAYLOAD_CHARS: usize = 7_500;
/// The most sealed-blob and attribute bytes a record can hold: the payload
/// is base64 of a JSON document in which they are base64 again, so 7,500
/// characters carry 5,625 bytes of JSON, of which at most 4,218 bytes of
/// binary fields (less the other fields and the index).
pub(super) const MAX_RECORD_BYTES: usize = MAX_PAYLOAD_CHARS / 4 * 3 / 4 * 3;
/// Longest uid: `kmip-<uid>-g<20 digits>` must fit an alias's 90 characters.
pub(super) const MAX_UID_CHARS: usize = 63;
/// What every description of a keyward key starts with.
const DESCRIPTION_PREFIX: &str = "keyward record ";
/// The version of the payload document.
const FORMAT: u32 = 1;

/// A uid keyward can store: letters, digits, `-` and `_` (what an alias may
/// hold), at most [`MAX_UID_CHARS`].
pub(super) fn check_uid(uid: &str) -> Result<(), Fault> {
    let ok = !uid.is_empty()
        && uid.len() <= MAX_UID_CHARS
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Fault::Local(format!(
            "uid {:?} cannot be stored in Key Protect (letters, digits, '-', '_'; at most {MAX_UID_CHARS} characters)",
            uid.chars().take(64).collect::<String>()
        )))
    }
}

pub(super) fn key_name(uid: &str) -> String {
    format!("kmip-{uid}")
}

pub(super) fn alias(uid: &str, generation: u64) -> String {
    format!("kmip-{uid}-g{generation}")
}

pub(super) fn description(uid: &str, generation: u64, tombstone: bool) -> String {
    let mark = if tombstone { " tombstone" } else { "" };
    format!("{DESCRIPTION_PREFIX}{uid} generation {generation}{mark}")
}

/// What a listed key's name and description say: `(uid, generation,
/// tombstone)`, or `None` for a key keyward did not write.
pub(super) fn parse_description(name: &str, description: &str) -> Option<(String, u64, bool)> {
    let rest = description.strip_prefix(DESCRIPTION_PREFIX)?;
    let mut words = rest.split(' ');
    let uid = words.next()?;
    if words.next()? != "generation" {
        return None;
    }
    let generation: u64 = words.next()?.parse().ok()?;
    let tombstone = match words.next() {
        None => false,
        Some("tombstone") => true,
        Some(_) => return None,
    };
    if words.next().is_some() || check_uid(uid).is_err() || name != key_name(uid) || generation == 0 {
        return None;
    }
    Some((uid.to_owned(), generation, tombstone))
}

#[derive(Serialize, Deserialize)]
struct Document {
    format: u32,
    uid: String,
    #[serde(default)]
    tombstone: bool,
    #[serde(default)]
    record: Option<Fields>,
}

#[derive(Serialize, Deserialize)]
struct Fields {
    object_type: u32,
    state: u32,
    group: String,
    crk_version: u32,
    sealed: String,
    attributes: String,
    index: Vec<(String, String)>,
    version: u64,
    created_at: i64,
    updated_at: i64,
}

/// The payload of a record's key; `TooLarge` (as a local 413) past
/// [`MAX_PAYLOAD_CHARS`].
pub(super) fn encode(record: &Record) -> Result<String, Fault> {
    let document = Document {
        format: FORMAT,
        uid: record.uid.clone(),
        tombstone: false,
        record: Some(Fields {
            object_type: record.object_type,
            state: record.state,
            group: record.group.clone(),
            crk_version: record.crk_version,
            sealed: STANDARD.encode(&record.sealed),
            attributes: STANDARD.encode(&record.attributes),
            index: record
                .index
                .iter()
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect(),
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }),
    };
    wrap(&document)
}

/// The payload of the marker a delete writes before it deletes the keys.
pub(super) fn encode_tombstone(uid: &str) -> Result<String, Fault> {
    wrap(&Document {
        format: FORMAT,
        uid: uid.to_owned(),
        tombstone: true,
        record: None,
    })
}

fn wrap(document: &Document) -> Result<String, Fault> {
    let json =
        serde_json::to_vec(document).map_err(|e| Fault::Local(format!("cannot encode a record: {e}")))?;
    let payload = STANDARD.encode(json);
    if payload.len() > MAX_PAYLOAD_CHARS {
        return Err(Fault::Status {
            status: http::StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "the record needs a {} character payload; Key Protect keeps at most {MAX_PAYLOAD_CHARS}",
                payload.len()
            ),
            retry_after: None,
        });
    }
    Ok(payload)
}

/// The record in a key's payload; `None` for a tombstone. A payload that is
/// not keyward's, or names another uid, is `Decode` (corrupt).
pub(super) fn decode(uid: &str, payload: &str) -> Result<Option<Record>, Fault> {
    let bad = |why: &str| Fault::Decode(format!("Key Protect key for uid {uid}: {why}"));
    let json = STANDARD
        .decode(payload.trim())
        .map_err(|_| bad("payload is not base64"))?;
    let document: Document =
        serde_json::from_slice(&json).map_err(|_| bad("payload is not a keyward record"))?;
    if document.format != FORMAT {
        return Err(bad("payload has an unknown format"));
    }
    if document.uid != uid {
        return Err(bad("payload names another uid"));
    }
    if document.tombstone {
        return Ok(None);
    }
    let fields = document.record.ok_or_else(|| bad("payload holds no record"))?;
    let mut record = Record {
        uid: uid.to_owned(),
        object_type: fields.object_type,
        state: fields.state,
        group: fields.group,
        crk_version: fields.crk_version,
        sealed: STANDARD
            .decode(&fields.sealed)
            .map_err(|_| bad("sealed is not base64"))?,
        attributes: STANDARD
            .decode(&fields.attributes)
            .map_err(|_| bad("attributes are not base64"))?,
        index: fields
            .index
            .into_iter()
            .map(|(name, value)| IndexEntry { name, value })
            .collect(),
        version: fields.version,
        created_at: fields.created_at,
        updated_at: fields.updated_at,
    };
    if record.version == 0 {
        return Err(bad("record version 0"));
    }
    record.normalize_index();
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_record;

    #[test]
    fn a_record_round_trips_and_names_are_what_the_console_shows() {
        let record = sample_record("uid-a", 3);
        let payload = encode(&record).unwrap();
        let mut want = record.clone();
        want.normalize_index();
        assert_eq!(decode("uid-a", &payload).unwrap(), Some(want));
        assert!(matches!(decode("uid-b", &payload), Err(Fault::Decode(_))));
        assert_eq!(
            decode("uid-a", &encode_tombstone("uid-a").unwrap()).unwrap(),
            None
        );
        assert_eq!(key_name("u1"), "kmip-u1");
        assert_eq!(alias("u1", 7), "kmip-u1-g7");
        let text = description("u1", 7, false);
        assert_eq!(parse_description("kmip-u1", &text), Some(("u1".into(), 7, false)));
        let text = description("u1", 8, true);
        assert_eq!(parse_description("kmip-u1", &text), Some(("u1".into(), 8, true)));
        assert_eq!(parse_description("kmip-u2", &text), None);
        assert_eq!(parse_description("kmip-u1", "a customer's key"), None);
        let longest = "u".repeat(MAX_UID_CHARS);
        assert!(alias(&longest, u64::MAX).len() <= 90);
        assert!(check_uid(&longest).is_ok());
        for bad in ["", "a.b", "a:b", "a b", &"u".repeat(MAX_UID_CHARS + 1)] {
            assert!(check_uid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_past_the_payload_limit_is_too_large() {
        let mut record = sample_record("uid-a", 1);
        record.sealed = vec![7; 6_000];
        let err = encode(&record).unwrap_err();
        assert_eq!(err.status(), Some(http::StatusCode::PAYLOAD_TOO_LARGE));
    }
}
