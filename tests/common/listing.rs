//! What a directory holds, to prove that a tool left nothing beside a file.
//! The extension's tests and council-loader's share it.

use std::path::Path;
use std::time::SystemTime;

/// Names, sizes and modification times of what lies in `dir`.
pub fn listing(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| {
            let entry = entry.expect("entry");
            let metadata = entry.metadata().expect("metadata");
            (
                entry.file_name().to_string_lossy().into_owned(),
                metadata.len(),
                metadata.modified().expect("mtime"),
            )
        })
        .collect();
    entries.sort();
    entries
}
