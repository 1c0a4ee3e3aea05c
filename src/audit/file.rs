//! The JSON-lines audit file: one event per line, appended.
//!
//! Durability policy: the writer hands over events in batches (whatever queued up
//! while the previous batch was written, at most [`super::sink::MAX_BATCH`]); each
//! batch goes out in one `write(2)` on an `O_APPEND` descriptor and is then
//! `fdatasync`ed. An event is therefore on disk within one batch of being written,
//! a burst costs one sync rather than one per event, and a crash loses at most the
//! events still queued in memory. The file is created `0600`; an existing file's
//! mode is left as the administrator set it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::event::AuditEvent;

pub struct JsonlFile {
    path: PathBuf,
    file: File,
}

impl JsonlFile {
    /// Opens (creating, mode 0600) `path` for appending. If a crash left a
    /// half-written last line, the next event starts on a line of its own.
    pub fn open(path: &Path) -> io::Result<JsonlFile> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(JsonlFile {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `events`, one line each, in one write, then syncs the data.
    pub fn append(&mut self, events: &[AuditEvent]) -> io::Result<()> {
        let mut lines = Vec::with_capacity(events.len() * 384);
        for event in events {
            serde_json::to_writer(&mut lines, event).map_err(io::Error::other)?;
            lines.push(b'\n');
        }
        self.file.write_all(&lines)?;
        self.file.sync_data()
    }
}
