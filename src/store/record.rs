//! The stored unit: one managed object, opaque to this layer.

use std::fmt;

/// One `(name, value)` pair a record can be found by (Name, `x-` tags, Object
/// Group, algorithm, length...). The caller decides what to index and how to
/// render values as text; the store only compares them for equality.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexEntry {
    pub name: String,
    pub value: String,
}

impl IndexEntry {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        IndexEntry {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// One managed object as the store keeps it.
///
/// The store never interprets `sealed` or `attributes`; it only compares them
/// byte for byte (idempotent create). `version` and `created_at` are owned by
/// the store once the record exists: `create` stores version 1, `update` stores
/// `expected_version + 1` and keeps the original `created_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    pub uid: String,
    pub object_type: u32,
    pub state: u32,
    pub group: String,
    pub crk_version: u32,
    /// Key material sealed under the CRK; empty for metadata-only objects.
    pub sealed: Vec<u8>,
    /// Attributes, TTLV-encoded by the caller.
    pub attributes: Vec<u8>,
    /// What the record can be found by. Backends return it sorted and without
    /// duplicates, so callers should not rely on the order they gave.
    pub index: Vec<IndexEntry>,
    /// Record version for compare-and-swap; 1 after create.
    pub version: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Record {
    /// Sorts and deduplicates the index, the form every backend stores.
    pub fn normalize_index(&mut self) {
        self.index.sort();
        self.index.dedup();
    }

    /// True when `self` and `other` carry the same content, i.e. a create of
    /// `other` is a retry of `self`. Ignores `version` (the store owns it) and
    /// index order.
    pub fn same_content(&self, other: &Record) -> bool {
        let mut a = self.index.clone();
        let mut b = other.index.clone();
        a.sort();
        a.dedup();
        b.sort();
        b.dedup();
        self.uid == other.uid
            && self.object_type == other.object_type
            && self.state == other.state
            && self.group == other.group
            && self.crk_version == other.crk_version
            && self.sealed == other.sealed
            && self.attributes == other.attributes
            && self.created_at == other.created_at
            && self.updated_at == other.updated_at
            && a == b
    }
}

impl fmt::Debug for Record {
    // Sealed blobs are ciphertext, but they are still key material in transit to
    // a log: print only sizes. Attributes can be large; print their size too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("uid", &self.uid)
            .field("object_type", &self.object_type)
            .field("state", &self.state)
            .field("group", &self.group)
            .field("crk_version", &self.crk_version)
            .field("sealed_len", &self.sealed.len())
            .field("attributes_len", &self.attributes.len())
            .field("index", &self.index)
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}
