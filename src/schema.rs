//! The council schema: tables, constraints and indexes live in
//! `sql/schema.sql`, created first so every other part can refer to them.

use pgrx::prelude::*;

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn count(query: &str) -> i64 {
        Spi::get_one::<i64>(query)
            .expect("count query failed")
            .expect("count returned NULL")
    }

    /// A table's columns as the catalog has them: name, type as
    /// `format_type` prints it, NOT NULL; in order.
    fn catalog_columns(table: &str) -> Vec<(String, String, bool)> {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull
                     FROM pg_attribute
                     WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
                     ORDER BY attnum",
                    None,
                    &[table.into()],
                )?
                .map(|row| {
                    Ok((
                        row.get::<String>(1)?.unwrap_or_default(),
                        row.get::<String>(2)?.unwrap_or_default(),
                        row.get::<bool>(3)?.unwrap_or_default(),
                    ))
                })
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .expect("reading the catalog failed")
    }

    /// The council tables are what the import's table list says, column
    /// for column: name, type, NOT NULL and order. (The list is checked
    /// against the app's DDL in `council::catalog`'s tests.)
    #[pg_test]
    fn every_council_table_is_its_table_list() {
        use crate::council::catalog::{Kind, TABLES};
        for table in &TABLES {
            let mut expected = Vec::new();
            for column in table.columns {
                let sql_type = match column.kind {
                    Kind::Text {
                        max_chars: Some(n), ..
                    } => format!("character varying({n})"),
                    Kind::Timestamp => "timestamp with time zone".to_owned(),
                    other => other.sql_type().to_owned(),
                };
                expected.push((column.name.to_owned(), sql_type, column.not_null));
                if column.kind == Kind::ConversationId {
                    expected.push(("legacy_id".to_owned(), "text".to_owned(), false));
                }
            }
            assert_eq!(
                catalog_columns(table.name),
                expected,
                "columns of {}",
                table.name
            );
        }
    }

    /// The tables of the extension's own, beside the council tables.
    #[pg_test]
    fn the_cache_and_rejects_tables_have_their_columns() {
        let expected: &[(&str, &[(&str, &str, bool)])] = &[
            (
                "response_cache",
                &[
                    ("id", "bigint", true),
                    ("cache_key", "text", true),
                    ("query_hash", "text", true),
                    ("stage1_data", "jsonb", false),
                    ("stage2_data", "jsonb", false),
                    ("stage3_data", "jsonb", false),
                    ("metadata", "jsonb", false),
                    ("created_at", "timestamp with time zone", true),
                    ("expires_at", "timestamp with time zone", false),
                    ("hit_count", "bigint", true),
                    ("last_hit_at", "timestamp with time zone", false),
                ],
            ),
            (
                "council_import_rejects",
                &[
                    ("id", "bigint", true),
                    ("source_table", "text", true),
                    ("source_id", "text", false),
                    ("reason", "text", true),
                    ("row", "jsonb", true),
                    ("rejected_at", "timestamp with time zone", true),
                ],
            ),
        ];
        for (table, columns) in expected {
            let expected: Vec<(String, String, bool)> = columns
                .iter()
                .map(|(c, t, n)| ((*c).to_owned(), (*t).to_owned(), *n))
                .collect();
            assert_eq!(catalog_columns(table), expected, "columns of {table}");
        }
    }

    #[pg_test]
    fn every_table_and_sequence_is_dumped_with_the_extension() {
        let config = count(
            "SELECT count(*) FROM pg_extension e, unnest(e.extconfig) c
             WHERE e.extname = 'llm_council'",
        );
        // eleven tables, and the ten sequences behind their identities
        assert_eq!(config, 21);
    }

    #[pg_test(
        error = "insert or update on table \"messages\" violates foreign key constraint \"messages_conversation_id_fkey\""
    )]
    fn a_message_of_an_unknown_conversation_is_refused() {
        Spi::run("INSERT INTO messages (conversation_id, role) VALUES (gen_random_uuid(), 'user')")
            .expect("the insert should have raised");
    }

    #[pg_test(
        error = "new row for relation \"messages\" violates check constraint \"messages_role_check\""
    )]
    fn a_role_outside_user_and_assistant_is_refused() {
        Spi::run(
            "WITH c AS (INSERT INTO conversations DEFAULT VALUES RETURNING id)
             INSERT INTO messages (conversation_id, role) SELECT id, 'system' FROM c",
        )
        .expect("the insert should have raised");
    }

    #[pg_test]
    fn deleting_a_conversation_cascades_to_messages_and_stages() {
        Spi::run(
            "INSERT INTO conversations (id) VALUES ('00000000-0000-4000-8000-000000000001');
             INSERT INTO messages (id, conversation_id, role)
                 VALUES (1, '00000000-0000-4000-8000-000000000001', 'user'),
                        (2, '00000000-0000-4000-8000-000000000001', 'assistant');
             INSERT INTO stage1_responses (message_id, model, response) VALUES (2, 'm', 'r');
             INSERT INTO stage2_rankings (message_id, evaluator_model, raw_ranking) VALUES (2, 'm', 'r');
             INSERT INTO stage3_synthesis (message_id, chairman_model, response) VALUES (2, 'm', 'r');
             INSERT INTO deliberation_metadata (message_id, label_to_model) VALUES (2, '{}');",
        )
        .expect("filling the tables failed");
        let dependent = "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM stage1_responses)
                         + (SELECT count(*) FROM stage2_rankings) + (SELECT count(*) FROM stage3_synthesis)
                         + (SELECT count(*) FROM deliberation_metadata)";
        assert_eq!(count(dependent), 6);
        Spi::run("DELETE FROM conversations").expect("delete failed");
        assert_eq!(count(dependent), 0);
    }

    #[pg_test]
    fn deleting_an_api_key_cascades_to_its_audit_log() {
        Spi::run(
            "INSERT INTO api_keys (id, key_hash, key_prefix, name) VALUES (7, 'h', 'llmc_abcdefg', 'ci');
             INSERT INTO api_key_audit_log (api_key_id, action) VALUES (7, 'request'), (7, 'revoked');",
        )
        .expect("filling the tables failed");
        assert_eq!(count("SELECT count(*) FROM api_key_audit_log"), 2);
        Spi::run("DELETE FROM api_keys WHERE id = 7").expect("delete failed");
        assert_eq!(count("SELECT count(*) FROM api_key_audit_log"), 0);
    }

    #[pg_test(error = "value too long for type character varying(12)")]
    fn a_key_prefix_longer_than_twelve_characters_is_refused() {
        Spi::run(
            "INSERT INTO api_keys (key_hash, key_prefix, name) VALUES ('h', 'llmc_abcdefgh', 'ci')",
        )
        .expect("the insert should have raised");
    }
}
