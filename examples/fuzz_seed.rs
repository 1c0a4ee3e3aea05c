//! Writes the fuzzing seed corpora from the OASIS KMIP test cases (used by
//! `fuzz/seed`): every v1.x message as binary TTLV for the TTLV and request
//! targets, and as KMIP XML for the XML target.
//!
//! Usage: `fuzz_seed <kmip-test-cases dir> <corpus dir>`; writes
//! `<corpus>/ttlv_decode/`, `<corpus>/kmip_request/` (requests only) and
//! `<corpus>/kmip_xml/`, one file per message, named after its source; and one
//! file per test case for the connection-level targets: `<corpus>/request_path/`
//! (the case's requests one after another, sent by the open client, and again
//! by the password-protected one with its credential in every header) and
//! `<corpus>/framing/` (all the case's messages as one stream).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use keyward::kmip::message::{Authentication, Credential, CredentialValue, RequestMessage};
use keyward::kmip::{CredentialType, Placeholders, tags, xml};
use keyward::secret::SecretString;
use keyward::ttlv::{Item, encode_to_vec};

/// The password-protected client of `fuzz/fuzz_targets/request_path.rs`.
const TENANT_USER: &str = "vcenter";
const TENANT_PASSWORD: &str = "fuzz-tenant-password";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cases, corpus] = args.as_slice() else {
        eprintln!("usage: fuzz_seed <kmip-test-cases dir> <corpus dir>");
        return ExitCode::from(2);
    };
    match run(Path::new(cases), Path::new(corpus)) {
        Ok((files, messages)) => {
            println!("fuzz_seed: {messages} messages from {files} files");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fuzz_seed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cases: &Path, corpus: &Path) -> Result<(usize, usize), String> {
    let dirs = [
        "ttlv_decode",
        "kmip_request",
        "kmip_xml",
        "request_path",
        "framing",
    ]
    .map(|d| corpus.join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let [ttlv_dir, request_dir, xml_dir, path_dir, framing_dir] = &dirs;
    let (mut files, mut messages) = (0, 0);
    for version in ["v1.0", "v1.1", "v1.2", "v1.3", "v1.4"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(cases.join(version))
            .map_err(|e| format!("{}/{version}: {e}", cases.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .collect();
        paths.sort();
        for path in paths {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut ph = Placeholders::new();
            let Ok(items) = xml::read_messages(&text, &mut ph) else {
                eprintln!("fuzz_seed: skipping unreadable {}", path.display());
                continue;
            };
            files += 1;
            let name = format!("{version}_{stem}");
            // Selector 0: the open client; then the requests as one connection.
            let mut open = vec![0u8];
            // Selector 1: the password-protected client, its credential in each.
            let mut tenant = vec![1u8];
            // Framing: the largest message size, pieces of 17, 249,856 (0xF4 KiB), 1 and 251 bytes.
            let mut stream = vec![5u8, 16, 0xF4, 0, 250];
            for item in &items {
                stream.extend_from_slice(&encode_to_vec(item));
                if item.tag == tags::REQUEST_MESSAGE {
                    open.extend_from_slice(&encode_to_vec(item));
                    if let Some(with) = with_credential(item) {
                        tenant.extend_from_slice(&encode_to_vec(&with));
                    }
                }
            }
            write(&path_dir.join(format!("{name}_open")), &open)?;
            write(&path_dir.join(format!("{name}_tenant")), &tenant)?;
            write(&framing_dir.join(&name), &stream)?;
            for (i, item) in items.iter().enumerate() {
                let name = format!("{version}_{stem}_{i:02}");
                let bytes = encode_to_vec(item);
                write(&ttlv_dir.join(&name), &bytes)?;
                if item.tag == tags::REQUEST_MESSAGE {
                    write(&request_dir.join(&name), &bytes)?;
                }
                if let Ok(x) = xml::write_item(item, &ph) {
                    write(&xml_dir.join(&name), x.as_bytes())?;
                }
                messages += 1;
            }
        }
    }
    Ok((files, messages))
}

/// The request with the tenant's Username/Password as its only credential.
fn with_credential(item: &Item) -> Option<Item> {
    let mut request = RequestMessage::from_item(item).ok()?;
    request.header.authentication = Some(Authentication {
        credentials: vec![Credential {
            credential_type: CredentialType::USERNAME_AND_PASSWORD,
            value: CredentialValue::UsernamePassword {
                username: TENANT_USER.to_owned(),
                password: Some(SecretString::new(TENANT_PASSWORD.to_owned())),
            },
        }],
    });
    Some(request.to_item())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}
