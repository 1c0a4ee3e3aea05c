//! When each trusted client last connected: an in-memory map updated once per verified
//! handshake, persisted now and then as JSON so `keyward clients list` can show it.
//!
//! The file is `<clients_dir>/.last-seen`:
//!
//! ```json
//! {"vcenter-prod": {"unix": 1767225600, "fingerprint": "AB:CD:…"}}
//! ```
//!
//! keyed by trust-entry name (`tls.client_ca …` / `tls.client_pins[i]` for trust listed
//! in the config file), holding the time in Unix seconds and the SHA-256 of the
//! certificate last presented under that entry. It is advisory: a lost update costs an
//! administrator a slightly older "last seen", nothing else.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::pki::Fingerprint;

use crate::limits::LAST_SEEN_FILE_MAX_BYTES as MAX_FILE_BYTES;

/// One client's last connection, as stored in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenRecord {
    /// Seconds since the Unix epoch.
    pub unix: i64,
    /// Colon-hex SHA-256 of the certificate presented.
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    unix: i64,
    fingerprint: [u8; 32],
}

/// The live map. Recording costs one uncontended lock and, for a client already seen,
/// no allocation.
#[derive(Debug, Default)]
pub struct LastSeen {
    map: Mutex<HashMap<String, Seen>>,
    dirty: AtomicBool,
}

impl LastSeen {
    /// Notes that trust entry `name` accepted certificate `fingerprint` at `unix`.
    pub fn record(&self, name: &str, fingerprint: [u8; 32], unix: i64) {
        let seen = Seen { unix, fingerprint };
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(name) {
            Some(old) if *old == seen => return,
            Some(old) => *old = seen,
            None => {
                map.insert(name.to_owned(), seen);
            }
        }
        drop(map);
        self.dirty.store(true, Ordering::Release);
    }

    /// The last connection recorded for `name`.
    pub fn get(&self, name: &str) -> Option<SeenRecord> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(name).map(|s| SeenRecord {
            unix: s.unix,
            fingerprint: Fingerprint(s.fingerprint).to_colon_hex(),
        })
    }

    /// Merges a file written earlier (by this or a previous server process), keeping
    /// the newer time per client. A missing file is no error.
    pub fn load_file(&self, path: &Path) -> Result<(), String> {
        let records = read_file(path)?;
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, record) in records {
            let Ok(fingerprint) = record.fingerprint.parse::<Fingerprint>() else {
                continue;
            };
            let seen = Seen {
                unix: record.unix,
                fingerprint: fingerprint.0,
            };
            match map.get(&name) {
                Some(old) if old.unix >= seen.unix => {}
                _ => {
                    map.insert(name, seen);
                }
            }
        }
        Ok(())
    }

    /// Writes the map to `path` (atomically) if it changed since the last save; returns
    /// whether it wrote.
    pub fn save_if_changed(&self, path: &Path) -> std::io::Result<bool> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let records: BTreeMap<String, SeenRecord> = {
            let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            map.iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        SeenRecord {
                            unix: s.unix,
                            fingerprint: Fingerprint(s.fingerprint).to_colon_hex(),
                        },
                    )
                })
                .collect()
        };
        let result = write_atomically(path, &records);
        if result.is_err() {
            // Try again on the next save.
            self.dirty.store(true, Ordering::Release);
        }
        result.map(|()| true)
    }
}

/// Reads a `.last-seen` file; a missing file is an empty map.
pub fn read_file(path: &Path) -> Result<BTreeMap<String, SeenRecord>, String> {
    let text = match crate::config::read_bounded(path, MAX_FILE_BYTES) {
        Ok(text) => text,
        Err(_) if !path.exists() => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.to_string()),
    };
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_atomically(path: &Path, records: &BTreeMap<String, SeenRecord>) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(records).map_err(std::io::Error::other)?;
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&json)?;
    file.write_all(b"\n")?;
    drop(file);
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_persist_and_merge_newest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".last-seen");
        let seen = LastSeen::default();
        assert!(!seen.save_if_changed(&file).unwrap(), "nothing recorded yet");
        seen.record("vc1", [1; 32], 100);
        seen.record("vc2", [2; 32], 200);
        assert!(seen.save_if_changed(&file).unwrap());
        assert!(!seen.save_if_changed(&file).unwrap());
        seen.record("vc1", [1; 32], 100);
        assert!(
            !seen.save_if_changed(&file).unwrap(),
            "same record is not a change"
        );

        let read = read_file(&file).unwrap();
        assert_eq!(read["vc2"].unix, 200);
        assert!(read["vc1"].fingerprint.starts_with("01:01"));

        let later = LastSeen::default();
        later.record("vc1", [3; 32], 300);
        later.load_file(&file).unwrap();
        assert_eq!(later.get("vc1").unwrap().unix, 300, "newer in memory wins");
        assert_eq!(later.get("vc2").unwrap().unix, 200);
        assert!(read_file(&dir.path().join("none")).unwrap().is_empty());
        std::fs::write(&file, "not json").unwrap();
        assert!(later.load_file(&file).is_err());
    }
}
