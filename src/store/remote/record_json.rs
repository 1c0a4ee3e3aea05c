//! The JSON form of a record that OpenBao (a KV secret's data) and Secrets
//! Manager (a `SecretString`) keep: the plain metadata fields and base64 of the
//! sealed blob and the attributes. One definition, so that both stores write
//! the same thing and refuse the same malformed or moved records.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::store::{IndexEntry, Record};

/// Format of the object; a newer one is refused, not misread.
pub(in crate::store) const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::store) struct StoredRecord {
    keyward_record: u32,
    uid: String,
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

impl StoredRecord {
    /// `record` as stored, its index sorted and deduplicated.
    pub(in crate::store) fn from_record(record: &Record) -> StoredRecord {
        let mut index = record.index.clone();
        index.sort();
        index.dedup();
        StoredRecord {
            keyward_record: FORMAT,
            uid: record.uid.clone(),
            object_type: record.object_type,
            state: record.state,
            group: record.group.clone(),
            crk_version: record.crk_version,
            sealed: STANDARD.encode(&record.sealed),
            attributes: STANDARD.encode(&record.attributes),
            index: index.into_iter().map(|e| (e.name, e.value)).collect(),
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }

    /// The record read from the entry named for `uid`. `Err` says what is
    /// wrong without quoting any value: another format, another uid (copied or
    /// moved in the store), version 0, blobs that are not base64.
    pub(in crate::store) fn into_record(self, uid: &str) -> Result<Record, String> {
        if self.keyward_record != FORMAT {
            return Err(format!(
                "record format {} (this build reads {FORMAT})",
                self.keyward_record
            ));
        }
        if self.uid != uid {
            return Err("holds another uid (copied or moved in the store)".to_owned());
        }
        if self.version == 0 {
            return Err("record version 0".to_owned());
        }
        let sealed = STANDARD
            .decode(&self.sealed)
            .map_err(|_| "sealed is not base64".to_owned())?;
        let attributes = STANDARD
            .decode(&self.attributes)
            .map_err(|_| "attributes are not base64".to_owned())?;
        let mut record = Record {
            uid: self.uid,
            object_type: self.object_type,
            state: self.state,
            group: self.group,
            crk_version: self.crk_version,
            sealed,
            attributes,
            index: self
                .index
                .into_iter()
                .map(|(n, v)| IndexEntry::new(n, v))
                .collect(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        record.normalize_index();
        Ok(record)
    }
}

/// serde's message can quote a value: say only that the shape is wrong.
pub(in crate::store) const NOT_A_RECORD: &str = "not a keyward record (missing, unknown or mistyped fields)";
