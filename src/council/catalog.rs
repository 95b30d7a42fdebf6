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

    const fn one_of(allowed: &'static [&'static str]) -> Kind {
        Kind::Text {
            max_chars: None,
            allowed: Some(allowed),
        }
    }

    const fn up_to(max_chars: usize) -> Kind {
        Kind::Text {
            max_chars: Some(max_chars),
            allowed: None,
        }
    }

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

/// A table no other row hangs off, in both schema versions, with no unique
/// column besides its key; the methods below say where it differs.
const fn table(name: &'static str, columns: &'static [Column]) -> Table {
    Table {
        name,
        columns,
        parent: None,
        unique: None,
        v2_only: false,
    }
}

impl Table {
    const fn child_of(self, column: &'static str, table: &'static str) -> Table {
        Table {
            parent: Some(Parent { column, table }),
            ..self
        }
    }

    const fn unique(self, column: &'static str) -> Table {
        Table {
            unique: Some(column),
            ..self
        }
    }

    const fn v2_only(self) -> Table {
        Table {
            v2_only: true,
            ..self
        }
    }

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
    table(
        "conversations",
        &[
            required("id", Kind::ConversationId),
            col("title", Kind::TEXT),
            col("created_at", Kind::Timestamp),
            col("updated_at", Kind::Timestamp),
            col("is_pinned", Kind::Boolean),
            col("is_hidden", Kind::Boolean),
            col("message_count", Kind::Integer),
        ],
    ),
    table(
        "messages",
        &[
            required("id", Kind::BigInt),
            required("conversation_id", Kind::ConversationRef),
            required("role", Kind::one_of(ROLES)),
            col("content", Kind::TEXT),
            col("created_at", Kind::Timestamp),
        ],
    )
    .child_of("conversation_id", "conversations"),
    table(
        "stage1_responses",
        &[
            required("id", Kind::BigInt),
            required("message_id", Kind::BigInt),
            required("model", Kind::TEXT),
            required("response", Kind::TEXT),
            col("confidence", Kind::Double),
            col("base_model", Kind::TEXT),
            col("sample_id", Kind::Integer),
            col("created_at", Kind::Timestamp),
        ],
    )
    .child_of("message_id", "messages"),
    table(
        "stage2_rankings",
        &[
            required("id", Kind::BigInt),
            required("message_id", Kind::BigInt),
            required("evaluator_model", Kind::TEXT),
            required("raw_ranking", Kind::TEXT),
            col("parsed_ranking", Kind::Json),
            col("debate_round", Kind::Integer),
            col("rubric_scores", Kind::Json),
            col("created_at", Kind::Timestamp),
        ],
    )
    .child_of("message_id", "messages"),
    table(
        "stage3_synthesis",
        &[
            required("id", Kind::BigInt),
            required("message_id", Kind::BigInt),
            required("chairman_model", Kind::TEXT),
            required("response", Kind::TEXT),
            col("meta_evaluation", Kind::TEXT),
            col("created_at", Kind::Timestamp),
        ],
    )
    .child_of("message_id", "messages"),
    table(
        "deliberation_metadata",
        &[
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
    )
    .child_of("message_id", "messages")
    .unique("message_id"),
    table(
        "api_keys",
        &[
            required("id", Kind::BigInt),
            required("key_hash", Kind::TEXT),
            required("key_prefix", Kind::up_to(12)),
            required("name", Kind::TEXT),
            col("created_at", Kind::Timestamp),
            col("last_used_at", Kind::Timestamp),
            col("expires_at", Kind::Timestamp),
            col("is_active", Kind::Boolean),
            col("rate_limit_override", Kind::Integer),
            col("permissions", Kind::Json),
            col("metadata", Kind::Json),
        ],
    )
    .unique("key_hash")
    .v2_only(),
    table(
        "api_key_audit_log",
        &[
            required("id", Kind::BigInt),
            required("api_key_id", Kind::BigInt),
            required("action", Kind::TEXT),
            col("endpoint", Kind::TEXT),
            col("ip_address", Kind::TEXT),
            col("user_agent", Kind::TEXT),
            col("request_id", Kind::TEXT),
            col("created_at", Kind::Timestamp),
        ],
    )
    .child_of("api_key_id", "api_keys")
    .v2_only(),
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
