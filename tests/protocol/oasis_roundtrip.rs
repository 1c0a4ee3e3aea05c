//! Every message of the OASIS KMIP XML test cases, through every encoding:
//! XML → tree → TTLV → tree → XML → tree, and tree → JSON → tree, asserting the
//! trees agree at each step and that re-encoding gives identical TTLV bytes.
//!
//! The files live in `tests/data/kmip-test-cases` (or where
//! `KEYWARD_KMIP_TEST_CASES` points). Run with `--nocapture` to see the counts.

use crate::common;

use std::path::{Path, PathBuf};

use keyward::kmip::{Placeholders, json, xml};
use keyward::ttlv::{Item, decode, encode_to_vec};

/// Runs one message through every conversion; the error says which step broke.
fn round_trip(msg: &Item, placeholders: &Placeholders) -> Result<(), String> {
    let bytes = encode_to_vec(msg);
    let decoded = decode(&bytes).map_err(|e| format!("TTLV decode: {e}"))?;
    if &decoded != msg {
        return Err("tree differs after TTLV".into());
    }
    if encode_to_vec(&decoded) != bytes {
        return Err("TTLV re-encoding differs".into());
    }
    let text = xml::write_item(&decoded, placeholders).map_err(|e| format!("XML write: {e}"))?;
    // Re-read with a clone: reading must not need anything the first read did
    // not record.
    let mut ph = placeholders.clone();
    let again = xml::read_item(&text, &mut ph).map_err(|e| format!("XML re-read: {e}\n{text}"))?;
    if &again != msg {
        return Err(format!("tree differs after XML write/read:\n{text}"));
    }
    if encode_to_vec(&again) != bytes {
        return Err("TTLV bytes differ after XML write/read".into());
    }
    let js = json::write_item(msg, placeholders);
    let mut ph = placeholders.clone();
    let from_json = json::read_item(&js, &mut ph).map_err(|e| format!("JSON re-read: {e}\n{js}"))?;
    if &from_json != msg {
        return Err(format!("tree differs after JSON write/read:\n{js}"));
    }
    Ok(())
}

struct Tally {
    files: usize,
    files_ok: usize,
    messages: usize,
    failures: Vec<String>,
}

fn run_version(dir: &Path, version: &str) -> Tally {
    let mut t = Tally {
        files: 0,
        files_ok: 0,
        messages: 0,
        failures: Vec::new(),
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join(version))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "xml"));
    paths.sort();
    for path in paths {
        t.files += 1;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                t.failures.push(format!("{version}/{name}: unreadable: {e}"));
                continue;
            }
        };
        let mut ph = Placeholders::new();
        let messages = match xml::read_messages(&text, &mut ph) {
            Ok(m) => m,
            Err(e) => {
                t.failures.push(format!("{version}/{name}: {e}"));
                continue;
            }
        };
        let mut ok = true;
        for (i, msg) in messages.iter().enumerate() {
            match round_trip(msg, &ph) {
                Ok(()) => t.messages += 1,
                Err(e) => {
                    ok = false;
                    t.failures.push(format!("{version}/{name} message {i}: {e}"));
                }
            }
        }
        // The whole document back to text and in again.
        if ok {
            match xml::write_messages(&messages, &ph)
                .map_err(|e| e.to_string())
                .and_then(|doc| {
                    let mut ph2 = ph.clone();
                    xml::read_messages(&doc, &mut ph2).map_err(|e| e.to_string())
                }) {
                Ok(again) if again == messages => t.files_ok += 1,
                Ok(_) => t
                    .failures
                    .push(format!("{version}/{name}: document differs after write/read")),
                Err(e) => t.failures.push(format!("{version}/{name}: document: {e}")),
            }
        }
    }
    t
}

#[test]
fn oasis_test_cases_round_trip() {
    let dir = common::kmip_test_cases();
    let mut required_failures = Vec::new();
    let started = std::time::Instant::now();
    for version in ["v1.0", "v1.1", "v1.2", "v1.3", "v1.4", "v2.1"] {
        let t = run_version(&dir, version);
        println!(
            "{version}: {}/{} files, {} messages round-tripped, {} left out",
            t.files_ok,
            t.files,
            t.messages,
            t.failures.len()
        );
        for f in &t.failures {
            println!("  left out: {}", f.lines().next().unwrap_or(""));
        }
        if version != "v2.1" {
            assert!(t.files > 0, "no files in {version}");
            required_failures.extend(t.failures);
        }
    }
    println!("all conversions took {:?}", started.elapsed());
    assert!(required_failures.is_empty(), "{}", required_failures.join("\n\n"));
}
