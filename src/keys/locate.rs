//! Locate: which stored objects match a list of attributes (KMIP 1.4 §4.9).
//!
//! The store narrows the candidates by its index (names, groups, custom tags,
//! algorithm, length, object type); every candidate is then checked here against
//! the whole filter, so an index that is too wide costs time, never correctness.

use std::collections::BTreeMap;

use crate::kmip::attribute::Attribute;
use crate::kmip::{State, tags};
use crate::store::{IndexEntry, Query};
use crate::ttlv::Value;

use super::object::{StoredObject, index_entries, is_custom, names};

/// The store query that narrows candidates for `filter`.
pub(super) fn store_query(filter: &[Attribute]) -> Query {
    let mut query = Query::default();
    for a in filter {
        if a.name == names::OBJECT_TYPE {
            query.object_type = a.value.as_enum();
        }
    }
    // Only single-instance filters narrow by index: two instances of one name
    // mean "either" for multi-valued attributes.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in filter {
        *counts.entry(a.name.as_str()).or_default() += 1;
    }
    query.index = index_entries(filter)
        .into_iter()
        .filter(|e: &IndexEntry| counts.get(e.name.as_str()) == Some(&1))
        .collect();
    query
}

/// Whether `object` matches every attribute of `filter`. A destroyed object
/// (only metadata left) matches only a filter that names its State.
pub fn matches_filter(object: &StoredObject, filter: &[Attribute]) -> bool {
    let destroyed = object.state == State::DESTROYED || object.state == State::DESTROYED_COMPROMISED;
    if destroyed && !filter.iter().any(|a| a.name == names::STATE) {
        return false;
    }
    let mut by_name: BTreeMap<&str, Vec<&Attribute>> = BTreeMap::new();
    for a in filter {
        by_name.entry(a.name.as_str()).or_default().push(a);
    }
    by_name
        .into_iter()
        .all(|(name, wanted)| matches_name(object, name, &wanted))
}

fn matches_name(object: &StoredObject, name: &str, wanted: &[&Attribute]) -> bool {
    match name {
        names::OBJECT_TYPE => wanted
            .iter()
            .all(|w| w.value.as_enum() == Some(object.object_type.0)),
        names::STATE => wanted.iter().all(|w| w.value.as_enum() == Some(object.state.0)),
        names::CRYPTOGRAPHIC_USAGE_MASK => {
            let have = object.attribute(name).and_then(|a| a.value.as_i32()).unwrap_or(0);
            wanted
                .iter()
                .all(|w| w.value.as_i32().is_some_and(|m| have & m == m))
        }
        _ => {
            // Two instances of a date attribute give a range (inclusive).
            if wanted.len() == 2
                && let (Some(a), Some(b)) = (wanted[0].value.as_datetime(), wanted[1].value.as_datetime())
            {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                return object.date(name).is_some_and(|t| lo <= t && t <= hi);
            }
            wanted.iter().all(|w| {
                object
                    .attributes_named(name)
                    .any(|have| value_matches(name, have, w))
            })
        }
    }
}

fn value_matches(name: &str, have: &Attribute, wanted: &Attribute) -> bool {
    if name == names::NAME {
        let text = |a: &Attribute| {
            a.value
                .child(tags::NAME_VALUE)
                .and_then(|v| v.as_text())
                .map(str::to_owned)
        };
        let kind = |a: &Attribute| a.value.child(tags::NAME_TYPE).and_then(|v| v.as_enum());
        let name_ok = text(have) == text(wanted);
        let kind_ok = kind(wanted).is_none() || kind(have) == kind(wanted);
        return name_ok && kind_ok;
    }
    if is_custom(name)
        && let (Value::TextString(a), Value::TextString(b)) = (&have.value.value, &wanted.value.value)
    {
        return a == b;
    }
    have.value.value == wanted.value.value
}
