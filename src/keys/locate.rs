//! Locate: which stored objects match a list of attributes (KMIP 1.4 §4.9).
//!
//! The store narrows the candidates by its index (names, groups, custom tags,
//! algorithm, length, object type); every candidate is then checked here against
//! the whole filter, so an index that is too wide costs time, never correctness.

use std::collections::BTreeMap;

use crate::kmip::attribute::Attribute;
use crate::kmip::{State, tags};
use crate::store::Query;
use crate::ttlv::Value;

use super::object::{StoredObject, index_entries, is_custom, names};

/// The store query that narrows candidates for `filter`, and whether it says
/// all of it: when it does, the store's answer is exactly the matches (no
/// record needs loading, offset and limit go into the query); when not, each
/// candidate is checked here with [`matches_filter`].
pub(super) fn store_query(filter: &[Attribute]) -> (Query, bool) {
    let mut query = Query::default();
    // Only single-instance filters narrow by index: two instances of one name
    // mean "either" for multi-valued attributes, or a range for dates.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in filter {
        *counts.entry(a.name.as_str()).or_default() += 1;
    }
    let mut exact = true;
    for a in filter {
        let once = counts.get(a.name.as_str()) == Some(&1);
        if a.name == names::OBJECT_TYPE {
            match a.value.as_enum() {
                Some(t) if once => query.object_type = Some(t),
                _ => exact = false,
            }
            continue;
        }
        if a.name == names::STATE {
            // The stored state lags time-driven transitions (an Activation Date
            // that passed): narrow to the states that can look like the one
            // asked for, and check each candidate.
            exact = false;
            if let (Some(s), true) = (a.value.as_enum(), once) {
                query.state_in = stored_states_for(State(s));
            }
            continue;
        }
        let entries = index_entries(std::slice::from_ref(a));
        let indexed_exactly = matches!(
            a.name.as_str(),
            names::OBJECT_GROUP | names::CRYPTOGRAPHIC_ALGORITHM | names::CRYPTOGRAPHIC_LENGTH
        ) || is_custom(&a.name);
        match entries.into_iter().next() {
            Some(entry) if once => {
                query.index.push(entry);
                exact &= indexed_exactly;
            }
            _ => exact = false,
        }
    }
    if !counts.contains_key(names::STATE) {
        // Destroyed objects match only a filter that names their State, and
        // nothing moves an object into or out of them with time.
        query.state_not_in = vec![State::DESTROYED.0, State::DESTROYED_COMPROMISED.0];
    }
    (query, exact)
}

/// The stored states of objects whose state, time-driven transitions applied,
/// may be `state` (see `lifecycle::effective_state`).
fn stored_states_for(state: State) -> Vec<u32> {
    let chain = [State::PRE_ACTIVE, State::ACTIVE, State::DEACTIVATED];
    match chain.iter().position(|s| *s == state) {
        Some(at) => chain[..=at].iter().map(|s| s.0).collect(),
        None => vec![state.0],
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::attribute::Attribute;

    #[test]
    fn the_store_query_says_the_whole_filter_only_for_exact_attributes() {
        let tag = Attribute::new("x-Name", Value::TextString("vm".into()));
        let kind = Attribute::new(names::OBJECT_TYPE, Value::Enumeration(2));
        let (query, exact) = store_query(&[tag.clone(), kind.clone()]);
        assert!(exact);
        assert_eq!(query.object_type, Some(2));
        assert_eq!(query.index.len(), 1);
        assert_eq!(
            query.state_not_in,
            [State::DESTROYED.0, State::DESTROYED_COMPROMISED.0]
        );
        // Empty filter: every live object of the group.
        assert!(store_query(&[]).1);
        // Two instances of one name mean "either": checked on each candidate.
        assert!(!store_query(&[tag.clone(), tag.clone()]).1);
        // A State is narrowed, not said: the stored state lags time.
        let active = Attribute::new(names::STATE, Value::Enumeration(State::ACTIVE.0));
        let (query, exact) = store_query(&[active]);
        assert!(!exact);
        assert_eq!(query.state_in, [State::PRE_ACTIVE.0, State::ACTIVE.0]);
        assert!(query.state_not_in.is_empty());
        // A usage mask is not in the index.
        let mask = Attribute::new(names::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(12));
        assert!(!store_query(&[tag, mask]).1);
    }
}
