//! Search criteria for `Store::find`, and the reference matcher.

use super::record::{IndexEntry, Record};

/// All set criteria must hold (AND). Results are ordered by
/// `(created_at, uid)`, then `offset` records are skipped and at most `limit`
/// returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub object_type: Option<u32>,
    pub state: Option<u32>,
    /// When not empty, the record's state is one of these.
    pub state_in: Vec<u32>,
    /// The record's state is none of these.
    pub state_not_in: Vec<u32>,
    pub group: Option<String>,
    pub crk_version: Option<u32>,
    /// Every entry must be present in the record's index.
    pub index: Vec<IndexEntry>,
    /// Inclusive lower bound on `created_at` (unix seconds).
    pub created_after: Option<i64>,
    /// Inclusive upper bound on `created_at` (unix seconds).
    pub created_before: Option<i64>,
    pub offset: usize,
    pub limit: Option<usize>,
}

impl Query {
    /// True when `record` satisfies every criterion (ignores offset/limit).
    /// Backends that filter in memory use this; others must agree with it.
    pub fn matches(&self, record: &Record) -> bool {
        self.object_type.is_none_or(|t| record.object_type == t)
            && self.state.is_none_or(|s| record.state == s)
            && (self.state_in.is_empty() || self.state_in.contains(&record.state))
            && !self.state_not_in.contains(&record.state)
            && self.group.as_ref().is_none_or(|g| &record.group == g)
            && self.crk_version.is_none_or(|v| record.crk_version == v)
            && self.created_after.is_none_or(|t| record.created_at >= t)
            && self.created_before.is_none_or(|t| record.created_at <= t)
            && self.index.iter().all(|want| record.index.contains(want))
    }
}
