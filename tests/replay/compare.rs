//! How a server's response is compared with an OASIS test case's expected
//! ResponseMessage. The rules are those of `tests/oasis_replay.rs`'s
//! documentation; this file is their one implementation.

use std::collections::HashMap;

use keyward::kmip::placeholders::Placeholder;
use keyward::kmip::{Operation, Placeholders, WriteOptions, tag_name, tags, xml};
use keyward::ttlv::{Item, Tag, Value};

/// Attributes a server may leave out of Get Attributes / Get Attribute List
/// although the test case's reference server returned them: KMIP lets a server
/// choose whether it keeps them (KMIP 1.4 §3: "server-specific" or optional
/// attributes), and keyward does not.
pub(crate) const SERVER_OPTIONAL_ATTRIBUTES: &[&str] = &[
    // A digest of the key material (§3.17) would publish a fingerprint of a
    // KEK; keyward does not keep one.
    "Digest",
    // Which generator made the key (§3.44, 1.3+): keyward's come from the HSM.
    "Random Number Generator",
    // Leases (§3.20) are not managed.
    "Lease Time",
    // Whether the object was ever given out (§3.34) is not tracked.
    "Fresh",
    // PKCS#11-style protection flags (1.4 §3.48–3.51): every KEK is sealed and
    // extractable by Get; keyward does not model them.
    "Sensitive",
    "Always Sensitive",
    "Extractable",
    "Never Extractable",
    // Set once at creation by some servers (§3.43); keyward keeps Initial Date.
    "Original Creation Date",
    // A default group a server may put new objects in (1.1 §3.33, "Default
    // Object Group"): keyward sets Object Group only when the client asks.
    "Object Group",
];

/// Slack, in seconds, around the window a `$NOW` date must fall in (dates have
/// one-second resolution and the clocks are read on both sides).
const NOW_SLACK: i64 = 2;

/// What the comparison needs to know about the test case being replayed.
pub(crate) struct Rules<'a> {
    /// The table the expected response was read with: it recognises the
    /// sentinels of unbound `$NOW` placeholders.
    pub placeholders: &'a Placeholders,
    /// First and last second of the run so far: a `$NOW+k` date matches a
    /// value in `[first + k, last + k]` (plus [`NOW_SLACK`]).
    pub window: (i64, i64),
    /// Key material and Date-Times the client sent earlier in the test case:
    /// they must come back exactly.
    pub client_values: &'a [Value],
}

/// Compares one response message and learns unbound `$UNIQUE_IDENTIFIER_n`
/// placeholders from it.
pub(crate) struct Comparer<'a> {
    pub rules: Rules<'a>,
    pub bindings: &'a mut HashMap<String, Value>,
}

fn label(tag: Tag) -> String {
    tag_name(tag).map_or_else(|| format!("{:#08x}", tag.0), str::to_owned)
}

/// An item as one line of XML, secrets redacted.
fn show(item: &Item, placeholders: &Placeholders) -> String {
    let opts = WriteOptions { redact: true };
    let text =
        xml::write_item_with(item, placeholders, &opts).unwrap_or_else(|e| format!("<unprintable: {e}>"));
    let one_line: Vec<&str> = text.lines().map(str::trim).collect();
    let joined = one_line.join("");
    if joined.chars().count() > 300 {
        format!("{}…", joined.chars().take(300).collect::<String>())
    } else {
        joined
    }
}

fn attribute_name(attr: &Item) -> String {
    attr.child(tags::ATTRIBUTE_NAME)
        .and_then(Item::as_text)
        .unwrap_or("")
        .to_owned()
}

impl Comparer<'_> {
    fn show(&self, item: &Item) -> String {
        show(item, self.rules.placeholders)
    }

    pub(crate) fn message(&mut self, expected: &Item, actual: &Item) -> Result<(), String> {
        if expected.tag != actual.tag {
            return Err(format!(
                "expected a {}, got a {}",
                label(expected.tag),
                label(actual.tag)
            ));
        }
        match (
            expected.child(tags::RESPONSE_HEADER),
            actual.child(tags::RESPONSE_HEADER),
        ) {
            (Some(e), Some(a)) => {
                // Server Correlation Value (2.1) is the reference server's own
                // tracking number, optional for a server: not compared.
                let mut e = e.clone();
                if let Value::Structure(children) = &mut e.value {
                    children.retain(|c| c.tag != tags::SERVER_CORRELATION_VALUE);
                }
                self.generic(&e, a, "header")?
            }
            (Some(_), None) => return Err("response has no header".into()),
            _ => {}
        }
        let e_items: Vec<&Item> = expected.children_with(tags::BATCH_ITEM).collect();
        let a_items: Vec<&Item> = actual.children_with(tags::BATCH_ITEM).collect();
        for (i, (e, a)) in e_items.iter().zip(&a_items).enumerate() {
            self.batch_item(i, e, a)?;
        }
        if e_items.len() != a_items.len() {
            return Err(format!(
                "expected {} batch items, got {}",
                e_items.len(),
                a_items.len()
            ));
        }
        Ok(())
    }

    fn batch_item(&mut self, i: usize, e: &Item, a: &Item) -> Result<(), String> {
        let op = e.child(tags::OPERATION).and_then(Item::as_enum).map(Operation);
        let where_ = format!(
            "item {i} ({})",
            op.and_then(|o| o.name()).unwrap_or("no operation")
        );
        // Exact: operation, batch item id, status, reason.
        for tag in [
            tags::OPERATION,
            tags::UNIQUE_BATCH_ITEM_ID,
            tags::RESULT_STATUS,
            tags::RESULT_REASON,
        ] {
            let (ev, av) = (e.child(tag), a.child(tag));
            if ev.map(|x| &x.value) != av.map(|x| &x.value) {
                return Err(format!(
                    "{where_}: {}: expected {}, got {}",
                    label(tag),
                    ev.map_or("nothing".into(), |x| self.show(x)),
                    av.map_or("nothing".into(), |x| self.show(x)),
                ));
            }
        }
        // Result Message is free text chosen by each server: not compared.
        // Anything else the expected item holds is compared generically.
        let handled = [
            tags::OPERATION,
            tags::UNIQUE_BATCH_ITEM_ID,
            tags::RESULT_STATUS,
            tags::RESULT_REASON,
            tags::RESULT_MESSAGE,
            tags::RESPONSE_PAYLOAD,
        ];
        for child in e.children().iter().filter(|c| !handled.contains(&c.tag)) {
            match a.child(child.tag) {
                Some(ac) => self.generic(child, ac, &where_)?,
                None => return Err(format!("{where_}: {} missing", label(child.tag))),
            }
        }
        match (e.child(tags::RESPONSE_PAYLOAD), a.child(tags::RESPONSE_PAYLOAD)) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(format!("{where_}: no Response Payload")),
            (None, Some(_)) => Err(format!("{where_}: a Response Payload where none was expected")),
            (Some(ep), Some(ap)) => match op {
                Some(Operation::GET_ATTRIBUTES) => self.get_attributes(&v1_form(ep)?, &v1_form(ap)?, &where_),
                Some(Operation::GET_ATTRIBUTE_LIST) => {
                    self.get_attribute_list(&v1_form(ep)?, &v1_form(ap)?, &where_)
                }
                _ => self.generic(ep, ap, &format!("{where_} payload")),
            },
        }
    }

    /// Get Attributes: every expected attribute the server returns must be
    /// equal (instances paired by index, or by order of appearance); a missing
    /// one fails unless it is in [`SERVER_OPTIONAL_ATTRIBUTES`]; extra
    /// attributes are allowed; attribute order is not significant.
    fn get_attributes(&mut self, e: &Item, a: &Item, where_: &str) -> Result<(), String> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for child in e.children() {
            if child.tag != tags::ATTRIBUTE {
                let ac = a
                    .child(child.tag)
                    .ok_or_else(|| format!("{where_}: {} missing", label(child.tag)))?;
                self.generic(child, ac, where_)?;
                continue;
            }
            let name = attribute_name(child);
            let nth = seen.entry(name.clone()).or_default();
            let position = *nth;
            *nth += 1;
            let instances: Vec<&Item> = a
                .children_with(tags::ATTRIBUTE)
                .filter(|x| attribute_name(x) == name)
                .collect();
            let index = child.child(tags::ATTRIBUTE_INDEX).and_then(Item::as_i32);
            let found = match index {
                Some(ix) => instances
                    .iter()
                    .copied()
                    .find(|x| x.child(tags::ATTRIBUTE_INDEX).and_then(Item::as_i32).unwrap_or(0) == ix),
                None => instances.get(position).copied(),
            };
            let Some(found) = found else {
                if SERVER_OPTIONAL_ATTRIBUTES.contains(&name.as_str()) {
                    continue;
                }
                return Err(format!("{where_}: attribute {name:?} missing"));
            };
            let path = format!("{where_} attribute {name:?}");
            let (ev, av) = (
                child.child(tags::ATTRIBUTE_VALUE),
                found.child(tags::ATTRIBUTE_VALUE),
            );
            match (ev, av) {
                (Some(ev), Some(av)) => self.generic(ev, av, &path)?,
                (Some(_), None) => return Err(format!("{path}: no value")),
                _ => {}
            }
        }
        Ok(())
    }

    /// Get Attribute List: every expected name must be listed unless it is in
    /// [`SERVER_OPTIONAL_ATTRIBUTES`]; extra names are allowed; order is not
    /// significant (KMIP defines none).
    fn get_attribute_list(&mut self, e: &Item, a: &Item, where_: &str) -> Result<(), String> {
        let listed: Vec<&str> = a
            .children_with(tags::ATTRIBUTE_NAME)
            .filter_map(Item::as_text)
            .collect();
        for child in e.children() {
            if child.tag == tags::ATTRIBUTE_NAME {
                let name = child.as_text().unwrap_or("");
                if !listed.contains(&name) && !SERVER_OPTIONAL_ATTRIBUTES.contains(&name) {
                    return Err(format!("{where_}: attribute name {name:?} not listed"));
                }
                continue;
            }
            let ac = a
                .child(child.tag)
                .ok_or_else(|| format!("{where_}: {} missing", label(child.tag)))?;
            self.generic(child, ac, where_)?;
        }
        Ok(())
    }

    /// Tag by tag, value by value, in order, with the placeholder rules.
    fn generic(&mut self, e: &Item, a: &Item, path: &str) -> Result<(), String> {
        let here = format!("{path}/{}", label(e.tag));
        if e.tag != a.tag {
            return Err(format!("{path}: expected {}, got {}", self.show(e), self.show(a)));
        }
        let differ = |this: &Self| Err(format!("{here}: expected {}, got {}", this.show(e), this.show(a)));
        match (&e.value, &a.value) {
            (Value::Structure(ec), Value::Structure(ac)) => {
                for (ei, ai) in ec.iter().zip(ac) {
                    self.generic(ei, ai, &here)?;
                }
                if ec.len() > ac.len() {
                    return Err(format!("{here}: {} missing", self.show(&ec[ac.len()])));
                }
                if ac.len() > ec.len() {
                    return Err(format!("{here}: unexpected {}", self.show(&ac[ec.len()])));
                }
                Ok(())
            }
            (Value::TextString(t), actual) if Placeholder::parse(t).is_some_and(|p| p.offset == 0) => {
                let Some(p) = Placeholder::parse(t) else {
                    return differ(self);
                };
                if !matches!(actual, Value::TextString(_)) {
                    return differ(self);
                }
                match self.bindings.get(p.name) {
                    Some(bound) if bound == actual => Ok(()),
                    Some(bound) => Err(format!(
                        "{here}: expected ${} = {bound:?}, got {actual:?}",
                        p.name
                    )),
                    None => {
                        self.bindings.insert(p.name.to_owned(), actual.clone());
                        Ok(())
                    }
                }
            }
            (Value::ByteString(b), Value::ByteString(_))
                if Placeholders::bytes_placeholder(b.expose())
                    .and_then(Placeholder::parse)
                    .is_some_and(|p| p.offset == 0) =>
            {
                // `$SIGNATURE_DATA` and the like: bytes the server makes
                // (a randomized signature), bound at first sight like an
                // identifier and sent back as bound in later requests.
                let Some(p) = Placeholders::bytes_placeholder(b.expose()).and_then(Placeholder::parse) else {
                    return differ(self);
                };
                match self.bindings.get(p.name) {
                    Some(bound) if bound == &a.value => Ok(()),
                    Some(_) => Err(format!("{here}: ${} differs from its first value", p.name)),
                    None => {
                        self.bindings.insert(p.name.to_owned(), a.value.clone());
                        Ok(())
                    }
                }
            }
            (Value::DateTime(_), Value::DateTime(t)) if !self.rules.client_values.contains(&e.value) => {
                // `$NOW±k`, or a literal time of the reference run (1.0–1.1
                // files) the client did not send: a reading of the server's clock.
                let (offset, text) = match self.rules.placeholders.placeholder_of(&e.value) {
                    Some(p) => (p.offset, p.text()),
                    None => (0, format!("{} (the reference run's clock)", self.show(e))),
                };
                let (lo, hi) = self.rules.window;
                let (lo, hi) = (lo + offset - NOW_SLACK, hi + offset + NOW_SLACK);
                if (lo..=hi).contains(t) {
                    Ok(())
                } else {
                    Err(format!("{here}: {text} should be within [{lo}, {hi}], got {t}"))
                }
            }
            (Value::ByteString(_), Value::ByteString(_))
                if e.tag == tags::SIGNATURE_DATA && !self.rules.client_values.contains(&e.value) =>
            {
                // A signature of the reference run (1.3 files): PSS and ECDSA
                // signatures are randomized, so any byte string stands.
                Ok(())
            }
            (Value::ByteString(eb), Value::ByteString(ab))
                if (e.tag == tags::KEY_MATERIAL || e.tag == tags::KEY || e.tag == tags::DIGEST_VALUE)
                    && !self.rules.client_values.contains(&e.value) =>
            {
                // Material the server generated (and its digest) cannot be
                // predicted: same type and length.
                if eb.expose().len() == ab.expose().len() {
                    Ok(())
                } else {
                    Err(format!(
                        "{here}: expected {} bytes, got {}",
                        eb.expose().len(),
                        ab.expose().len()
                    ))
                }
            }
            (ev, av) if ev == av => Ok(()),
            _ => differ(self),
        }
    }
}

/// A 2.x Get Attributes or Get Attribute List payload in the 1.x form (an
/// Attributes structure as Attribute items, Attribute References as names),
/// so both versions are compared by the same rules; a 1.x payload as it is.
fn v1_form(payload: &Item) -> Result<Item, String> {
    use keyward::kmip::v2;
    let mut out = Vec::new();
    for child in payload.children() {
        if child.tag == tags::ATTRIBUTES {
            for a in child.children() {
                let a = v2::attribute_from_v2(a).map_err(|e| format!("2.x attribute: {e}"))?;
                out.push(a.to_item());
            }
        } else if child.tag == tags::ATTRIBUTE_REFERENCE {
            out.push(v2::reference_to_name(child).map_err(|e| format!("2.x reference: {e}"))?);
        } else {
            out.push(child.clone());
        }
    }
    Ok(Item::structure(payload.tag, out))
}
