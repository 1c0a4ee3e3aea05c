//! Every Request/Response Message of the OASIS KMIP 1.0–1.4 XML test cases
//! parses into the message model — and, for the operations `kmip::payload`
//! models, into the typed payload — and writes back the same tree.
//!
//! The test cases live in `tests/data/kmip-test-cases` (relative to the crate),
//! or wherever `KEYWARD_KMIP_TEST_CASES` points. The XML is read by the small
//! reader below until `kmip::xml` has one; then `read_messages` should call it.

use crate::common;

use std::path::PathBuf;

use keyward::kmip::message::{RequestMessage, ResponseMessage};
use keyward::kmip::names::collapse_whitespace;
use keyward::kmip::payload::*;
use keyward::kmip::{KmipTagExt, MessageError, Operation, tags};
use keyward::ttlv::{Item, Value};

/// Attribute names in the 1.0–1.2 files carry runs of spaces; the model
/// collapses them, so the expected tree does too.
fn normalize(item: &mut Item) {
    match &mut item.value {
        Value::TextString(s) if item.tag == tags::ATTRIBUTE_NAME => *s = collapse_whitespace(s).into_owned(),
        Value::Structure(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Typed round trip of one payload: `Ok(None)` for operations not modelled,
/// else the tags of the fields the model kept as `extra`.
fn typed(op: Operation, payload: &Item) -> Result<Option<Vec<String>>, MessageError> {
    fn rt<P: Payload>(item: &Item) -> Result<Option<Vec<String>>, MessageError> {
        let typed = P::from_payload(item)?;
        if &typed.to_payload() != item {
            return Err(MessageError::InvalidValue {
                tag: item.tag,
                reason: "typed payload does not round-trip",
            });
        }
        Ok(Some(
            typed
                .extra()
                .iter()
                .map(|i| keyward::kmip::tag::tag_label(i.tag).into_owned())
                .collect(),
        ))
    }
    let request = payload.tag == tags::REQUEST_PAYLOAD;
    macro_rules! ops {
        ($($konst:ident => $m:ident),* $(,)?) => {
            match op {
                $(Operation::$konst if request => rt::<$m::Request>(payload),
                  Operation::$konst => rt::<$m::Response>(payload),)*
                _ => Ok(None),
            }
        };
    }
    ops!(
        DISCOVER_VERSIONS => discover_versions, QUERY => query, CREATE => create, REGISTER => register,
        GET => get, GET_ATTRIBUTES => get_attributes, GET_ATTRIBUTE_LIST => get_attribute_list,
        ADD_ATTRIBUTE => add_attribute, MODIFY_ATTRIBUTE => modify_attribute,
        DELETE_ATTRIBUTE => delete_attribute, LOCATE => locate, ACTIVATE => activate, REVOKE => revoke,
        DESTROY => destroy, RE_KEY => rekey, CHECK => check,
    )
}

/// Where two trees first differ, by tag path, for the failure report.
fn first_difference(a: &Item, b: &Item) -> String {
    use keyward::kmip::tag::tag_label;
    if a.tag != b.tag {
        return format!("{} vs {}", tag_label(a.tag), tag_label(b.tag));
    }
    match (&a.value, &b.value) {
        (Value::Structure(x), Value::Structure(y)) => {
            for (i, (cx, cy)) in x.iter().zip(y).enumerate() {
                if cx != cy {
                    return format!("{}[{i}]/{}", tag_label(a.tag), first_difference(cx, cy));
                }
            }
            format!("{}: {} vs {} children", tag_label(a.tag), x.len(), y.len())
        }
        (x, y) => format!("{}: {:?} vs {:?}", tag_label(a.tag), x.item_type(), y.item_type()),
    }
}

#[derive(Default)]
struct Counts {
    files: usize,
    requests: usize,
    responses: usize,
    typed_payloads: usize,
    untyped_payloads: usize,
    /// Fields of typed payloads that the model does not know (kept as extra).
    extra_fields: Vec<String>,
    untyped_ops: std::collections::BTreeMap<String, usize>,
    failures: Vec<String>,
}

fn check_message(tree: &Item, counts: &mut Counts) -> Result<(), String> {
    // The envelope leaves payloads untouched, so it must give back the tree
    // exactly; only the typed payloads collapse attribute names.
    let expected = tree;
    let (written, payloads) = if tree.tag == tags::REQUEST_MESSAGE {
        counts.requests += 1;
        let m = RequestMessage::from_item(tree).map_err(|e| e.to_string())?;
        let p = m
            .batch_items
            .iter()
            .filter_map(|b| b.payload.clone().map(|p| (b.operation, p)))
            .collect::<Vec<_>>();
        (m.to_item(), p)
    } else if tree.tag == tags::RESPONSE_MESSAGE {
        counts.responses += 1;
        let m = ResponseMessage::from_item(tree).map_err(|e| e.to_string())?;
        let p = m
            .batch_items
            .iter()
            .filter_map(|b| Some((b.operation?, b.payload.clone()?)))
            .collect::<Vec<_>>();
        (m.to_item(), p)
    } else {
        return Err(format!("unexpected top-level {:?}", tree.tag));
    };
    if &written != expected {
        return Err(format!(
            "message does not round-trip: {}",
            first_difference(expected, &written)
        ));
    }
    for (op, mut payload) in payloads {
        normalize(&mut payload);
        match typed(op, &payload) {
            Ok(Some(extra)) => {
                counts.typed_payloads += 1;
                for tag in extra {
                    counts
                        .extra_fields
                        .push(format!("{op:?} {}: {tag}", payload.tag.kmip_label()));
                }
            }
            Ok(None) => {
                counts.untyped_payloads += 1;
                *counts.untyped_ops.entry(format!("{op:?}")).or_default() += 1;
            }
            Err(e) => return Err(format!("{op:?} payload: {e}")),
        }
    }
    Ok(())
}

#[test]
fn oasis_1x_messages_round_trip() {
    let root = common::kmip_test_cases();
    let mut counts = Counts::default();
    for version in ["v1.0", "v1.1", "v1.2", "v1.3", "v1.4"] {
        let dir = root.join(version);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!(
                "test cases not found at {} (set KEYWARD_KMIP_TEST_CASES)",
                dir.display()
            );
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for path in files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        {
            counts.files += 1;
            let name = format!("{version}/{}", path.file_name().unwrap().to_string_lossy());
            let xml = std::fs::read_to_string(&path).unwrap();
            let messages =
                match keyward::kmip::xml::read_messages(&xml, &mut keyward::kmip::Placeholders::new()) {
                    Ok(m) => m,
                    Err(e) => {
                        counts.failures.push(format!("{name}: xml: {e}"));
                        continue;
                    }
                };
            for (i, m) in messages.iter().enumerate() {
                if let Err(e) = check_message(m, &mut counts) {
                    counts.failures.push(format!("{name} #{i}: {e}"));
                }
            }
        }
    }
    eprintln!(
        "OASIS 1.x: {} files, {} requests, {} responses, {} typed payloads round-tripped, {} payloads of \
         operations not modelled, {} failures",
        counts.files,
        counts.requests,
        counts.responses,
        counts.typed_payloads,
        counts.untyped_payloads,
        counts.failures.len()
    );
    counts.extra_fields.sort();
    counts.extra_fields.dedup();
    eprintln!("operations not modelled: {:?}", counts.untyped_ops);
    assert!(
        counts.extra_fields.is_empty(),
        "fields the payload model does not know: {:?}",
        counts.extra_fields
    );
    assert!(counts.requests > 1000, "too few messages found");
    assert!(counts.failures.is_empty(), "{}", counts.failures.join("\n"));
}
