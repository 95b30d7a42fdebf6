//! The app's own start-up script, `schema.sql`, which it runs with
//! `executescript` at every start: the sample generator lays files out with
//! it, and `council_export` writes the file the app returns to, whose
//! `sqlite_schema` must be the app's, text for text, so that the app's next
//! start finds every table and index already there and adds nothing.

use crate::tables::COUNCIL;

/// The app's `schema.sql` (schema version 2): eight tables, then their
/// twelve indexes, every statement `IF NOT EXISTS`.
pub const SCHEMA: &str = include_str!("../schema.sql");

/// The tables schema version 2 added: the last two of [`COUNCIL`].
const V2_TABLES: [&str; 2] = [COUNCIL[6], COUNCIL[7]];

/// The script of an app at schema version 1: [`SCHEMA`] without the
/// statements on the API-key tables, which that version did not have.
#[must_use]
pub fn schema_v1() -> String {
    statements(SCHEMA)
        .filter(|statement| !V2_TABLES.iter().any(|table| names_table(statement, table)))
        .collect()
}

/// The script's statements, each with the comments and blank lines before
/// it and its closing `;` and newline.
fn statements(script: &str) -> impl Iterator<Item = &str> {
    script.split_inclusive(";\n")
}

/// Whether `statement` creates `table` or an index on it.
fn names_table(statement: &str, table: &str) -> bool {
    let code = without_comments(statement);
    code.contains(&format!("CREATE TABLE IF NOT EXISTS {table} ("))
        || code.contains(&format!(" ON {table}("))
}

/// The text with every `--` comment cut off its line.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the app declares `table.column` NOT NULL, read off its script;
/// None for a column it does not have.
#[must_use]
pub fn declared_not_null(table: &str, column: &str) -> Option<bool> {
    let opening = format!("CREATE TABLE IF NOT EXISTS {table} (");
    let code = without_comments(SCHEMA);
    let rest = code.split_once(&opening).map(|(_, rest)| rest)?;
    let body = rest.split_once("\n);").map_or(rest, |(body, _)| body);
    body.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix(column)?;
        rest.starts_with(' ').then(|| rest.contains("NOT NULL"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(script: &str, what: &str) -> usize {
        without_comments(script).matches(what).count()
    }

    #[test]
    fn the_script_has_eight_tables_and_twelve_indexes() {
        assert_eq!(count(SCHEMA, "CREATE TABLE IF NOT EXISTS "), 8);
        assert_eq!(count(SCHEMA, "CREATE INDEX IF NOT EXISTS "), 12);
    }

    #[test]
    fn version_1_is_the_first_six_tables_and_their_seven_indexes() {
        let v1 = schema_v1();
        assert_eq!(count(&v1, "CREATE TABLE IF NOT EXISTS "), 6);
        assert_eq!(count(&v1, "CREATE INDEX IF NOT EXISTS "), 7);
        assert!(!without_comments(&v1).contains("api_key"), "{v1}");
        for table in &COUNCIL[..6] {
            assert!(v1.contains(&format!("CREATE TABLE IF NOT EXISTS {table} (")));
        }
    }

    #[test]
    fn not_null_is_read_off_the_apps_script() {
        assert_eq!(declared_not_null("conversations", "created_at"), Some(true));
        assert_eq!(declared_not_null("conversations", "title"), Some(false));
        assert_eq!(declared_not_null("messages", "content"), Some(false));
        assert_eq!(
            declared_not_null("deliberation_metadata", "message_id"),
            Some(true)
        );
        assert_eq!(declared_not_null("api_keys", "created_at"), Some(false));
        assert_eq!(declared_not_null("api_keys", "key_hash"), Some(true));
        assert_eq!(declared_not_null("api_keys", "last_used_at"), Some(false));
        assert_eq!(
            declared_not_null("api_key_audit_log", "created_at"),
            Some(false)
        );
        assert_eq!(declared_not_null("api_key_audit_log", "action"), Some(true));
        // "id" must not match "is_pinned" or "ip_address" by prefix.
        assert_eq!(declared_not_null("conversations", "is"), None);
        assert_eq!(declared_not_null("messages", "legacy_id"), None);
        assert_eq!(declared_not_null("response_cache", "key"), None);
    }
}
