//! Cheap change detection for watched files: a stamp of size, modification time and
//! inode, compared between polls. Atomic replacement (write a temporary file, rename)
//! always changes the inode, so even a same-second, same-size rewrite is noticed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Most folder entries stamped; beyond it the folder counts as changed on every poll
/// rather than being read without bound (the loader refuses such a folder anyway).
const MAX_STAMPED_ENTRIES: usize = 8192;

/// What a set of files looked like at one poll. Equal stamps mean "nothing changed".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStamp(Vec<(String, u64, i64, i64, u64)>);

impl FileStamp {
    /// Stamps the given files; a missing or unreadable file is stamped as absent.
    pub fn of_files(paths: &[&Path]) -> FileStamp {
        FileStamp(
            paths
                .iter()
                .map(|p| stamp_one(p.display().to_string(), p))
                .collect(),
        )
    }

    /// Stamps every entry of `dir` whose name does not start with '.', so temporary
    /// files and the server's own `.last-seen` file do not count as changes. A missing
    /// folder has the empty stamp.
    pub fn of_dir(dir: &Path) -> FileStamp {
        let Ok(reader) = std::fs::read_dir(dir) else {
            return FileStamp::default();
        };
        let mut entries = Vec::new();
        for item in reader.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if entries.len() >= MAX_STAMPED_ENTRIES {
                entries.push(("…".to_string(), u64::MAX, i64::MIN, i64::MIN, u64::MAX));
                break;
            }
            entries.push(stamp_one(name, &item.path()));
        }
        entries.sort();
        FileStamp(entries)
    }
}

fn stamp_one(name: String, path: &Path) -> (String, u64, i64, i64, u64) {
    match std::fs::metadata(path) {
        Ok(m) => (name, m.len(), m.mtime(), m.mtime_nsec(), m.ino()),
        Err(_) => (name, 0, 0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_seen_and_dot_files_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let empty = FileStamp::of_dir(dir.path());
        assert_eq!(empty, FileStamp::of_dir(&dir.path().join("missing")));
        std::fs::write(dir.path().join(".last-seen"), "{}").unwrap();
        assert_eq!(FileStamp::of_dir(dir.path()), empty);
        let a = dir.path().join("a.toml");
        std::fs::write(&a, "x").unwrap();
        let one = FileStamp::of_dir(dir.path());
        assert_ne!(one, empty);
        // Same size, replaced by rename: a new inode.
        let tmp = dir.path().join(".a.toml.tmp");
        std::fs::write(&tmp, "y").unwrap();
        std::fs::rename(&tmp, &a).unwrap();
        assert_ne!(FileStamp::of_dir(dir.path()), one);
        let files = FileStamp::of_files(&[&a]);
        assert_eq!(files, FileStamp::of_files(&[&a]));
        std::fs::remove_file(&a).unwrap();
        assert_ne!(FileStamp::of_files(&[&a]), files);
    }
}
