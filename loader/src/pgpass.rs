//! Passwords from a password file, as libpq reads them: `passfile=` in the
//! connection string, else `PGPASSFILE`, else `~/.pgpass`. Lines are
//! `host:port:database:username:password`, `*` matches anything, `\` escapes
//! `:` and `\`. A file that others may read is ignored, as libpq does.

use std::path::{Path, PathBuf};

/// The file to read: the connection string's, `PGPASSFILE`, or `~/.pgpass`.
pub fn file(named: Option<&Path>) -> Option<PathBuf> {
    named
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("PGPASSFILE").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pgpass")))
}

/// The password for this host, port, database and user, if the file has one.
pub fn lookup(file: &Path, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = std::fs::metadata(file).ok()?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(fields)
        .find(|fields| {
            fields.len() == 5
                && fields
                    .iter()
                    .zip(wanted)
                    .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut fields| fields.swap_remove(4))
}

fn fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields
                .last_mut()
                .into_iter()
                .for_each(|f| f.extend(chars.next())),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().into_iter().for_each(|f| f.push(c)),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn passfile(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pgpass");
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (dir, path)
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let (_dir, path) = passfile(
            "# comment\ndb1:5432:council:dba:first\n*:*:*:postgres:pa\\:ss\\\\word\n*:*:*:*:fallback\n",
            0o600,
        );
        assert_eq!(
            lookup(&path, "db1", 5432, "council", "dba").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(&path, "127.0.0.1", 41000, "postgres", "postgres").as_deref(),
            Some("pa:ss\\word")
        );
        assert_eq!(
            lookup(&path, "db2", 5432, "x", "app").as_deref(),
            Some("fallback")
        );
    }

    #[test]
    fn a_file_others_may_read_is_ignored() {
        let (_dir, path) = passfile("*:*:*:*:secret\n", 0o644);
        assert_eq!(lookup(&path, "h", 1, "d", "u"), None);
    }
}
