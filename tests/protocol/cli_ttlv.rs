//! `keyward ttlv decode` / `encode`, driven through the built binary.
//!
//! The captures are the OASIS KMIP v1.x test-case messages that hold no
//! placeholder, encoded to TTLV by the library: the CLI must take them
//! hex → JSON → hex and hex → XML → hex byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyward::kmip::{Placeholders, tags, xml};
use keyward::secret::SecretBytes;
use keyward::ttlv::{Item, Value, encode_to_vec};

fn keyward(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Write from another thread: the child may fill stdout before reading all.
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Runs and expects success; returns stdout.
fn ok(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = keyward(args, stdin);
    assert!(
        out.status.success(),
        "keyward {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs and expects failure; returns stderr.
fn fails(args: &[&str], stdin: &[u8]) -> String {
    let out = keyward(args, stdin);
    assert!(!out.status.success(), "keyward {args:?} succeeded");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err
}

fn cases_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KEYWARD_KMIP_TEST_CASES") {
        return PathBuf::from(dir);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kmip-test-cases");
    assert!(
        dir.is_dir(),
        "OASIS test cases not found at {} (set KEYWARD_KMIP_TEST_CASES)",
        dir.display()
    );
    dir
}

/// The placeholder-free messages of one version directory.
fn captures(version: &str) -> Vec<Item> {
    messages(version, false)
}

/// Every message of one version directory, placeholders read unbound: in
/// TTLV a Text String placeholder is the text `$UNIQUE_IDENTIFIER_0` itself,
/// as in a capture of a test suite's traffic.
fn messages(version: &str, with_placeholders: bool) -> Vec<Item> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir().join(version))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut ph = Placeholders::new();
        let Ok(messages) = xml::read_messages(&text, &mut ph) else {
            continue;
        };
        for m in messages {
            let text = xml::write_item(&m, &ph).unwrap();
            if with_placeholders || !text.contains("value=\"$") {
                out.push(m);
            }
        }
    }
    out
}

fn hex_lines(messages: &[Item]) -> String {
    messages
        .iter()
        .map(|m| hex::encode(encode_to_vec(m)) + "\n")
        .collect()
}

#[test]
fn decode_then_encode_reproduces_oasis_captures_byte_for_byte() {
    let mut total = 0;
    for version in ["v1.0", "v1.1", "v1.2", "v1.3", "v1.4"] {
        let messages = captures(version);
        assert!(!messages.is_empty(), "{version}: no placeholder-free message");
        total += messages.len();
        let capture = hex_lines(&messages);
        for format in ["json", "xml"] {
            let text = ok(
                &["ttlv", "decode", "--format", format, "--reveal"],
                capture.as_bytes(),
            );
            let back = ok(&["ttlv", "encode", "--format", format], &text);
            let back = String::from_utf8(back).unwrap();
            // Same bytes, and one line per message.
            assert!(back == capture, "{version} via {format}: bytes differ");
        }
    }
    println!("{total} placeholder-free OASIS v1.x messages round-tripped via JSON and XML");
    assert!(total > 400, "only {total} messages");
}

/// Bytes in, the same bytes out, whatever the text strings hold: a capture
/// whose text looks like a placeholder (`$UNIQUE_IDENTIFIER_0`, `$NOW`) is
/// decoded to `$$…` and encoded back to the same text.
#[test]
fn decode_then_encode_reproduces_captures_whose_text_looks_like_placeholders() {
    let mut looked_like = 0;
    for version in ["v1.0", "v1.1", "v1.2", "v1.3", "v1.4", "v2.1"] {
        let all = messages(version, true);
        let capture = hex_lines(&all);
        for format in ["json", "xml"] {
            let text = ok(
                &["ttlv", "decode", "--format", format, "--reveal"],
                capture.as_bytes(),
            );
            if format == "xml" {
                looked_like += String::from_utf8_lossy(&text).matches("value=\"$$").count();
            }
            let back = String::from_utf8(ok(&["ttlv", "encode", "--format", format], &text)).unwrap();
            assert!(back == capture, "{version} via {format}: bytes differ");
        }
    }
    println!("{looked_like} text strings that look like placeholders round-tripped");
    assert!(looked_like > 100, "only {looked_like}");
    // A literal `$$` survives too: it is written `$$$`.
    let doc = r#"<RequestMessage><Description type="TextString" value="$$$NOW"/></RequestMessage>"#;
    let h = ok(&["ttlv", "encode"], doc.as_bytes());
    let x = String::from_utf8(ok(&["ttlv", "decode", "--format", "xml"], &h)).unwrap();
    assert!(x.contains(r#"value="$$$NOW""#), "{x}");
    assert!(
        hex::decode(String::from_utf8(h).unwrap().trim())
            .unwrap()
            .windows(6)
            .any(|w| w == b"$$NOW\0" || w.starts_with(b"$$NOW"))
    );
}

#[test]
fn one_message_from_a_file_and_raw_bytes() {
    let msg = captures("v1.1").swap_remove(0);
    let bytes = encode_to_vec(&msg);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("capture.bin");
    std::fs::write(&raw, &bytes).unwrap();
    let raw = raw.to_str().unwrap();
    for args in [
        vec!["ttlv", "decode", "--format", "xml", raw],
        vec!["ttlv", "decode", "--format", "xml", "--input", "raw", raw],
    ] {
        let x = ok(&args, b"");
        assert!(x.starts_with(b"<RequestMessage>") || x.starts_with(b"<ResponseMessage>"));
        let back = ok(&["ttlv", "encode", "--output", "raw", "-"], &x);
        assert_eq!(back, bytes);
    }
}

#[test]
fn hex_input_tolerates_separators_and_reads_stdin() {
    let msg = captures("v1.2").swap_remove(0);
    let h = hex::encode(encode_to_vec(&msg));
    let pairs: Vec<&str> = (0..h.len()).step_by(2).map(|i| &h[i..i + 2]).collect();
    let want = ok(&["ttlv", "decode", "--format", "json"], h.as_bytes());
    for variant in [
        pairs.join(" "),
        pairs.join(":"),
        pairs
            .iter()
            .map(|p| format!("0x{p}"))
            .collect::<Vec<_>>()
            .join(", "),
        pairs
            .chunks(16)
            .map(|c| c.join(" "))
            .collect::<Vec<_>>()
            .join("\n"),
    ] {
        assert_eq!(
            ok(&["ttlv", "decode", "--format", "json", "-"], variant.as_bytes()),
            want
        );
        assert_eq!(
            ok(
                &["ttlv", "decode", "--format", "json", "--input", "hex"],
                variant.as_bytes()
            ),
            want
        );
    }
    let tree = String::from_utf8(ok(&["ttlv", "decode"], h.as_bytes())).unwrap();
    assert!(tree.contains("Message (Structure)\n  "), "{tree}");
    let e = fails(&["ttlv", "decode", "--input", "hex"], b"42 00 zz");
    assert!(e.contains("not hex") && e.contains("column 7"), "{e}");
}

fn message_with_key(key: &[u8]) -> Item {
    Item::structure(
        tags::RESPONSE_MESSAGE,
        vec![Item::structure(
            tags::BATCH_ITEM,
            vec![
                Item::new(tags::OPERATION, Value::Enumeration(0x0A)),
                Item::structure(
                    tags::RESPONSE_PAYLOAD,
                    vec![
                        Item::new(tags::UNIQUE_IDENTIFIER, Value::TextString("uid-42".into())),
                        Item::structure(
                            tags::KEY_VALUE,
                            vec![Item::new(
                                tags::KEY_MATERIAL,
                                Value::ByteString(SecretBytes::new(key.to_vec())),
                            )],
                        ),
                    ],
                ),
            ],
        )],
    )
}

#[test]
fn key_material_is_redacted_unless_revealed() {
    let key = [0xC3u8; 32];
    let key_hex = hex::encode(key);
    let capture = hex::encode(encode_to_vec(&message_with_key(&key)));
    for format in ["json", "xml", "tree"] {
        let shown =
            String::from_utf8(ok(&["ttlv", "decode", "--format", format], capture.as_bytes())).unwrap();
        assert!(!shown.contains(&key_hex), "{format} shows the key:\n{shown}");
        assert!(shown.contains("redacted 32 bytes"), "{format}:\n{shown}");
        assert!(shown.contains("uid-42"), "{format}:\n{shown}");
        let revealed = String::from_utf8(ok(
            &["ttlv", "decode", "--format", format, "--reveal"],
            capture.as_bytes(),
        ))
        .unwrap();
        assert!(revealed.contains(&key_hex), "{format} --reveal:\n{revealed}");
        if format != "tree" {
            // A redacted document must not encode to anything.
            let e = fails(&["ttlv", "encode"], shown.as_bytes());
            assert!(e.contains("redacted"), "{e}");
            assert!(!e.contains(&key_hex), "{e}");
            let back = ok(&["ttlv", "encode"], revealed.as_bytes());
            assert_eq!(String::from_utf8(back).unwrap().trim(), capture);
        }
    }
}

#[test]
fn malformed_input_names_offset_and_tag_path() {
    let bytes = encode_to_vec(&message_with_key(&[1; 5]));
    // Truncated: the last 8 bytes (the key and its padding) are gone.
    let truncated = hex::encode(&bytes[..bytes.len() - 8]);
    let e = fails(&["ttlv", "decode"], truncated.as_bytes());
    assert!(e.contains("at offset 0 (ResponseMessage): truncated"), "{e}");
    // An inner length that runs past its structure: KeyValue claims 8 more bytes.
    let mut overrun = bytes.clone();
    let kv = bytes.len() - 24;
    assert_eq!(overrun[kv..kv + 3], [0x42, 0x00, 0x45]);
    overrun[kv + 7] += 8;
    let e = fails(&["ttlv", "decode"], hex::encode(&overrun).as_bytes());
    assert!(
        e.contains(&format!(
            "at offset {kv} (ResponseMessage/BatchItem/ResponsePayload/KeyValue)"
        )),
        "{e}"
    );
    // Bad padding: the key is 5 bytes, so the last 3 are padding.
    let mut padded = bytes.clone();
    let last = padded.len() - 1;
    padded[last] = 0xEE;
    let e = fails(&["ttlv", "decode"], hex::encode(&padded).as_bytes());
    let key_at = bytes.len() - 16;
    assert!(
        e.contains(&format!(
            "at offset {key_at} (ResponseMessage/BatchItem/ResponsePayload/KeyValue/KeyMaterial)"
        )),
        "{e}"
    );
    assert!(e.contains("padding"), "{e}");
    // The second of two messages is broken: the offset counts from the start.
    let mut two = bytes.clone();
    two.extend(&padded);
    let e = fails(
        &["ttlv", "decode", "--format", "json"],
        hex::encode(&two).as_bytes(),
    );
    assert!(
        e.contains(&format!("message 2 (from byte {})", bytes.len())),
        "{e}"
    );
    assert!(e.contains(&format!("at offset {}", bytes.len() + key_at)), "{e}");
    // Not TTLV at all, and nothing at all.
    assert!(fails(&["ttlv", "decode"], b"").contains("no TTLV"));
    let e = fails(
        &["ttlv", "decode", "--input", "raw"],
        b"\x42\x00\x7b\x01\x00\x00\x00\x07",
    );
    assert!(e.contains("multiple of 8"), "{e}");
}

#[test]
fn placeholders_need_a_binding() {
    let doc = r#"<RequestMessage>
  <UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/>
</RequestMessage>"#;
    let e = fails(&["ttlv", "encode"], doc.as_bytes());
    assert!(e.contains("$UNIQUE_IDENTIFIER_0") && e.contains("--bind"), "{e}");
    let h = ok(
        &["ttlv", "encode", "--bind", "UNIQUE_IDENTIFIER_0=abc"],
        doc.as_bytes(),
    );
    let x = String::from_utf8(ok(&["ttlv", "decode", "--format", "xml"], &h)).unwrap();
    assert!(x.contains(r#"value="abc""#), "{x}");
}
