//! The app's own DDL, as its `init_db` runs it: the sample generator writes
//! files with it, and `council_export` writes the file the app returns to,
//! whose `sqlite_schema` must be the app's, text for text.

/// The app's DDL for the v1 tables, as its `init_db` creates them.
pub const DDL_V1: &str = r#"
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT DEFAULT 'New Conversation',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    is_pinned INTEGER DEFAULT 0,
    is_hidden INTEGER DEFAULT 0,
    message_count INTEGER DEFAULT 0
);

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT,
    created_at TEXT NOT NULL,
    FOREIGN KEY (conversation_id) REFERENCES conversations(id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS stage1_responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    confidence REAL,
    base_model TEXT,
    sample_id INTEGER,
    created_at TEXT NOT NULL,
    FOREIGN KEY (message_id) REFERENCES messages(id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS stage2_rankings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL,
    evaluator_model TEXT NOT NULL,
    raw_ranking TEXT NOT NULL,
    parsed_ranking TEXT,
    debate_round INTEGER DEFAULT 1,
    rubric_scores TEXT,
    created_at TEXT NOT NULL,
    FOREIGN KEY (message_id) REFERENCES messages(id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS stage3_synthesis (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL,
    chairman_model TEXT NOT NULL,
    response TEXT NOT NULL,
    meta_evaluation TEXT,
    created_at TEXT NOT NULL,
    FOREIGN KEY (message_id) REFERENCES messages(id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS deliberation_metadata (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL UNIQUE,
    label_to_model TEXT NOT NULL,
    aggregate_rankings TEXT,
    consensus TEXT,
    features TEXT,
    stage1_consensus TEXT,
    debate_history TEXT,
    voting_method TEXT,
    created_at TEXT NOT NULL,
    FOREIGN KEY (message_id) REFERENCES messages(id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS idx_messages_conversation_id ON messages(conversation_id);
CREATE INDEX IF NOT EXISTS idx_stage1_message_id ON stage1_responses(message_id);
CREATE INDEX IF NOT EXISTS idx_stage2_message_id ON stage2_rankings(message_id);
CREATE INDEX IF NOT EXISTS idx_stage3_message_id ON stage3_synthesis(message_id);
"#;

/// The tables v2 adds for API keys.
pub const DDL_V2_EXTRA: &str = r#"
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP,
    last_used_at TEXT,
    expires_at TEXT,
    is_active INTEGER DEFAULT 1,
    rate_limit_override INTEGER,
    permissions TEXT DEFAULT '["read", "write", "stream"]',
    metadata TEXT
);

CREATE TABLE IF NOT EXISTS api_key_audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    api_key_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    endpoint TEXT,
    ip_address TEXT,
    user_agent TEXT,
    request_id TEXT,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (api_key_id) REFERENCES api_keys(id) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS idx_api_key_audit_log_api_key_id ON api_key_audit_log(api_key_id);
"#;

/// Whether the app declares `table.column` NOT NULL, read off its DDL; None
/// for a column it does not have.
#[must_use]
pub fn declared_not_null(table: &str, column: &str) -> Option<bool> {
    let opening = format!("CREATE TABLE IF NOT EXISTS {table} (");
    let ddl = [DDL_V1, DDL_V2_EXTRA]
        .into_iter()
        .find_map(|ddl| ddl.split_once(&opening).map(|(_, rest)| rest))?;
    let body = ddl.split_once("\n);").map_or(ddl, |(body, _)| body);
    body.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix(column)?;
        rest.starts_with(' ').then(|| rest.contains("NOT NULL"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_null_is_read_off_the_apps_ddl() {
        assert_eq!(declared_not_null("conversations", "created_at"), Some(true));
        assert_eq!(declared_not_null("conversations", "title"), Some(false));
        assert_eq!(declared_not_null("messages", "content"), Some(false));
        assert_eq!(
            declared_not_null("deliberation_metadata", "message_id"),
            Some(true)
        );
        assert_eq!(declared_not_null("api_keys", "created_at"), Some(false));
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
