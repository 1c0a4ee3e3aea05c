//! Writes the fuzzing seed corpora from the OASIS KMIP test cases (used by
//! `fuzz/seed`): every v1.x message as binary TTLV for the TTLV and request
//! targets, and as KMIP XML for the XML target.
//!
//! Usage: `fuzz_seed <kmip-test-cases dir> <corpus dir>`; writes
//! `<corpus>/ttlv_decode/`, `<corpus>/kmip_request/` (requests only) and
//! `<corpus>/kmip_xml/`, one file per message, named after its source.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use keyward::kmip::{Placeholders, tags, xml};
use keyward::ttlv::encode_to_vec;

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
    let dirs = ["ttlv_decode", "kmip_request", "kmip_xml"].map(|d| corpus.join(d));
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let [ttlv_dir, request_dir, xml_dir] = &dirs;
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

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}
