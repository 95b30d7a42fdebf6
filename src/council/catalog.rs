//! What each council table holds in SQLite and in PostgreSQL: the columns,
//! the target type of each, its constraints, and the parent a row hangs off.
//! The import, the verification and the quarantine all read these specs.

/// How a source value becomes a target value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// conversations.id: a UUID, or a legacy text id mapped to UUID v5; fills
    /// two target columns (id, legacy_id).
    ConversationId,
    /// a reference to conversations.id, mapped the same way
    ConversationRef,
    BigInt,
    Integer,
    Double,
    Boolean,
    /// text, optionally limited to a number of characters and a set of values
    Text {
        max_chars: Option<usize>,
        allowed: Option<&'static [&'static str]>,
    },
    Timestamp,
    Json,
}

impl Kind {
    const TEXT: Kind = Kind::Text {
        max_chars: None,
        allowed: None,
    };

    /// The PostgreSQL type, for casts in comparison queries.
    pub fn sql_type(self) -> &'static str {
        match self {
            Kind::ConversationId | Kind::ConversationRef => "uuid",
            Kind::BigInt => "bigint",
            Kind::Integer => "integer",
            Kind::Double => "double precision",
            Kind::Boolean => "boolean",
            Kind::Text {
                max_chars: Some(_), ..
            } => "varchar",
            Kind::Text { .. } => "text",
            Kind::Timestamp => "timestamptz",
            Kind::Json => "jsonb",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub not_null: bool,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        not_null: false,
    }
}

const fn required(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        not_null: true,
    }
}

/// The table a row refers to through one of its columns.
#[derive(Clone, Copy, Debug)]
pub struct Parent {
    pub column: &'static str,
    pub table: &'static str,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// Source columns, in the order the import reads and writes them. The
    /// first is the primary key.
    pub columns: &'static [Column],
    pub parent: Option<Parent>,
    /// Columns besides the key whose values must be unique in the target.
    pub unique: Option<&'static str>,
    /// Only in schema version 2 files.
    pub v2_only: bool,
}

impl Table {
    pub fn key(&self) -> &Column {
        &self.columns[0]
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The target's column names in COPY order: a conversation's id fills
    /// both `id` and `legacy_id`.
    pub fn target_columns(&self) -> Vec<&'static str> {
        let mut names = Vec::with_capacity(self.columns.len() + 1);
        for column in self.columns {
            names.push(column.name);
            if column.kind == Kind::ConversationId {
                names.push("legacy_id");
            }
        }
        names
    }
}

const ROLES: &[&str] = &["user", "assistant"];

/// The council tables in dependency order: parents before children.
pub static TABLES: [Table; 8] = [
    Table {
        name: "conversations",
        columns: &[
            required("id", Kind::ConversationId),
            col("title", Kind::TEXT),
            col("created_at", Kind::Timestamp),
            col("updated_at", Kind::Timestamp),
            col("is_pinned", Kind::Boolean),
            col("is_hidden", Kind::Boolean),
            col("message_count", Kind::Integer),
        ],
        parent: None,
        unique: None,
        v2_only: false,
    },
    Table {
        name: "messages",
        columns: &[
            required("id", Kind::BigInt),
            required("conversation_id", Kind::ConversationRef),
            required(
                "role",
                Kind::Text {
                    max_chars: None,
                    allowed: Some(ROLES),
                },
            ),
            col("content", Kind::TEXT),
            col("created_at", Kind::Timestamp),
        ],
        parent: Some(Parent {
            column: "conversation_id",
            table: "conversations",
        }),
        unique: None,
        v2_only: false,
    },
    Table {
        name: "stage1_responses",
        columns: &[
            required("id", Kind::BigInt),
            required("message_id", Kind::BigInt),
            required("model", Kind::TEXT),
            required("response", Kind::TEXT),
            col("confidence", Kind::Double),
            col("base_model", Kind::TEXT),
            col("sample_id", Kind::Integer),
            col("created_at", Kind::Timestamp),
        ],
        parent: Some(Parent {
            column: "message_id",
            table: "messages",
        }),
        unique: None,
        v2_only: false,
    },
    Table {
        name: "stage2_rankings",
        columns: &[
            required("id", Kind::BigInt),
            required("message_id", Kind::BigInt),
            required("evaluator_model", Kind::TEXT),
            required("raw_ranking", Kind::TEXT),
            col("parsed_ranking", Kind::Json),
            col("debate_round", Kind::Integer),
            col("rubric_scores", Kind::Json),
            col("created_at", Kind::Timestamp),
        ],
        parent: Some(Parent {
            column: "message_id",
            table: "messages",
        }),
        unique: None,
        v2_only: false,
    },
    Table {
        name: "stage3_synthesis",
        columns: &[
            required("id", Kind::BigInt),
            required("message_id", Kind::BigInt),
            required("chairman_model", Kind::TEXT),
            required("response", Kind::TEXT),
            col("meta_evaluation", Kind::TEXT),
            col("created_at", Kind::Timestamp),
        ],
        parent: Some(Parent {
            column: "message_id",
            table: "messages",
        }),
        unique: None,
        v2_only: false,
    },
    Table {
        name: "deliberation_metadata",
        columns: &[
            required("id", Kind::BigInt),
            required("message_id", Kind::BigInt),
            required("label_to_model", Kind::Json),
            col("aggregate_rankings", Kind::Json),
            col("consensus", Kind::Json),
            col("features", Kind::Json),
            col("stage1_consensus", Kind::Json),
            col("debate_history", Kind::Json),
            col("voting_method", Kind::TEXT),
            col("created_at", Kind::Timestamp),
        ],
        parent: Some(Parent {
            column: "message_id",
            table: "messages",
        }),
        unique: Some("message_id"),
        v2_only: false,
    },
    Table {
        name: "api_keys",
        columns: &[
            required("id", Kind::BigInt),
            required("key_hash", Kind::TEXT),
            required(
                "key_prefix",
                Kind::Text {
                    max_chars: Some(12),
                    allowed: None,
                },
            ),
            required("name", Kind::TEXT),
            col("created_at", Kind::Timestamp),
            col("last_used_at", Kind::Timestamp),
            col("expires_at", Kind::Timestamp),
            col("is_active", Kind::Boolean),
            col("rate_limit_override", Kind::Integer),
            col("permissions", Kind::Json),
            col("metadata", Kind::Json),
        ],
        parent: None,
        unique: Some("key_hash"),
        v2_only: true,
    },
    Table {
        name: "api_key_audit_log",
        columns: &[
            required("id", Kind::BigInt),
            required("api_key_id", Kind::BigInt),
            required("action", Kind::TEXT),
            col("endpoint", Kind::TEXT),
            col("ip_address", Kind::TEXT),
            col("user_agent", Kind::TEXT),
            col("request_id", Kind::TEXT),
            col("created_at", Kind::Timestamp),
        ],
        parent: Some(Parent {
            column: "api_key_id",
            table: "api_keys",
        }),
        unique: None,
        v2_only: true,
    },
];

#[cfg(test)]
pub fn by_name(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_are_the_apps_tables_in_its_order() {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(names, council_app::tables::COUNCIL);
    }

    /// The table list names the app's columns, every one and no other. Its
    /// order is the extension's (checked against pg_attribute), which for
    /// deliberation_metadata is not the app's; the export writes by name
    /// into the app's own layout. (Its NOT NULLs are PostgreSQL's, which
    /// accepts what the app's older files hold; the export reads the app's
    /// own off its script.)
    #[test]
    fn every_table_has_the_apps_columns() {
        let app = rusqlite::Connection::open_in_memory().expect("sqlite");
        app.execute_batch(council_app::ddl::SCHEMA)
            .expect("the app's schema.sql");
        for table in &TABLES {
            let mut statement = app
                .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY name")
                .expect("table_info");
            let declared: Vec<String> = statement
                .query_map([table.name], |row| row.get(0))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("columns");
            let mut listed: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            listed.sort_unstable();
            assert_eq!(declared, listed, "the columns of {}", table.name);
        }
    }

    #[test]
    fn parents_come_before_their_children() {
        for (i, table) in TABLES.iter().enumerate() {
            if let Some(parent) = table.parent {
                let p = TABLES.iter().position(|t| t.name == parent.table);
                assert!(
                    p.is_some_and(|p| p < i),
                    "{} before {}",
                    parent.table,
                    table.name
                );
                assert!(table.column_index(parent.column).is_some());
            }
        }
    }

    #[test]
    fn the_key_comes_first_and_is_required() {
        for table in &TABLES {
            assert_eq!(table.key().name, "id");
            assert!(table.key().not_null);
        }
    }

    #[test]
    fn a_conversation_id_fills_id_and_legacy_id() {
        let conversations = by_name("conversations").map(Table::target_columns);
        assert_eq!(
            conversations.as_deref().map(|c| &c[..3]),
            Some(&["id", "legacy_id", "title"][..])
        );
    }
}
