//! Real text that nobody here wrote: what a Debian machine carries. English
//! documentation under /usr/share/doc (code, URLs, e-mail addresses,
//! numbers, hyphenated words), translated manual pages (Russian, Ukrainian,
//! Japanese, Chinese, Korean) and the Greek translations of its programs'
//! messages. The same machine gives the same paragraphs, in the same order.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paragraphs of at least 40 and at most 4,000 characters, without NUL,
/// taken in turn from each source (English documentation, then the manual
/// pages of each language, then Greek messages), so that any prefix of a
/// few dozen paragraphs holds every script.
pub fn paragraphs() -> Vec<String> {
    let mut sources: Vec<Vec<String>> = Vec::new();
    let mut english = Vec::new();
    for file in files_under(Path::new("/usr/share/doc"), is_plain_documentation)
        .into_iter()
        .take(60)
    {
        if let Ok(text) = std::fs::read(&file) {
            english.extend(split(&String::from_utf8_lossy(&text)));
        }
    }
    sources.push(english);
    for language in ["ru", "uk", "ja", "zh_CN", "ko"] {
        let pages = Path::new("/usr/share/man").join(language).join("man1");
        let mut text = Vec::new();
        for page in files_under(&pages, |p| p.extension().is_some_and(|e| e == "gz"))
            .into_iter()
            .take(3)
        {
            text.extend(split(&gunzipped(&page)));
        }
        sources.push(text);
    }
    let greek = Path::new("/usr/share/locale/el/LC_MESSAGES");
    let mut messages = Vec::new();
    for catalog in files_under(greek, |p| p.extension().is_some_and(|e| e == "mo"))
        .into_iter()
        .take(4)
    {
        let translated = translations(&std::fs::read(&catalog).unwrap_or_default());
        messages.extend(translated.chunks(8).map(|chunk| chunk.join(" ")));
    }
    sources.push(messages);

    let usable = |p: &String| (40..=4000).contains(&p.chars().count());
    let mut sources: Vec<_> = sources
        .into_iter()
        .map(|source| source.into_iter().filter(usable))
        .collect();
    let mut found = Vec::new();
    loop {
        let before = found.len();
        found.extend(sources.iter_mut().filter_map(Iterator::next));
        if found.len() == before {
            return found;
        }
    }
}

fn is_plain_documentation(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    (name.starts_with("readme") || name.ends_with(".md") || name.ends_with(".txt"))
        && !name.ends_with(".gz")
        && !name.contains("changelog")
        && !name.contains("copyright")
}

/// The files below `dir` that `keep` takes, in path order.
fn files_under(dir: &Path, keep: impl Fn(&Path) -> bool + Copy) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(files_under(&path, keep));
        } else if path.is_file() && keep(&path) {
            files.push(path);
        }
    }
    files
}

/// Text split at blank lines and at troff's paragraph and section macros.
fn split(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let breaks = line.trim().is_empty()
            || [".PP", ".SH", ".SS", ".TP", ".P", ".LP"].contains(&line.trim_end());
        if breaks {
            if !current.trim().is_empty() {
                out.push(std::mem::take(&mut current).replace('\0', " "));
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        out.push(current.replace('\0', " "));
    }
    out
}

fn gunzipped(path: &Path) -> String {
    Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The translated strings of a GNU gettext catalog (.mo), plural forms
/// joined by spaces.
fn translations(mo: &[u8]) -> Vec<String> {
    let word = |at: usize| -> Option<usize> {
        let bytes: [u8; 4] = mo.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(bytes) as usize)
    };
    // Little-endian catalogs only: the ones Debian builds on amd64.
    if word(0) != Some(0x9504_12de) {
        return Vec::new();
    }
    let (Some(count), Some(table)) = (word(8), word(16)) else {
        return Vec::new();
    };
    (0..count)
        .filter_map(|i| {
            let length = word(table + 8 * i)?;
            let offset = word(table + 8 * i + 4)?;
            let text = mo.get(offset..offset + length)?;
            Some(String::from_utf8_lossy(text).replace('\0', " "))
        })
        // Entry 0 is the catalog's header, not a translation.
        .filter(|text| !text.is_empty() && !text.starts_with("Project-Id-Version"))
        .collect()
}
