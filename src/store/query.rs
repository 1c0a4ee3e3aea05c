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
    /// The uids of the `records` that match, ordered by `(created_at, uid)`,
    /// after `offset`, at most `limit`: `Store::find` for a backend that
    /// holds (or has just read) every record.
    pub fn select<'a>(&self, records: impl IntoIterator<Item = &'a Record>) -> Vec<String> {
        let mut hits: Vec<(i64, &str)> = records
            .into_iter()
            .filter(|r| self.matches(r))
            .map(|r| (r.created_at, r.uid.as_str()))
            .collect();
        hits.sort_unstable();
        hits.into_iter()
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
            .map(|(_, uid)| uid.to_owned())
            .collect()
    }

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

/// Records per CRK version: `Store::count_by_crk` for a backend that holds
/// (or has just read) every record.
pub(super) fn count_by_crk<'a>(
    records: impl IntoIterator<Item = &'a Record>,
) -> std::collections::BTreeMap<u32, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for record in records {
        *counts.entry(record.crk_version).or_insert(0u64) += 1;
    }
    counts
}
