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

    #[pg_test]
    fn every_table_has_its_column_types() {
        let expected: &[(&str, &[(&str, &str)])] = &[
            (
                "conversations",
                &[
                    ("id", "uuid"),
                    ("legacy_id", "text"),
                    ("title", "text"),
                    ("created_at", "timestamp with time zone"),
                    ("updated_at", "timestamp with time zone"),
                    ("is_pinned", "boolean"),
                    ("is_hidden", "boolean"),
                    ("message_count", "integer"),
                ],
            ),
            (
                "messages",
                &[
                    ("id", "bigint"),
                    ("conversation_id", "uuid"),
                    ("role", "text"),
                    ("content", "text"),
                    ("created_at", "timestamp with time zone"),
                ],
            ),
            (
                "stage1_responses",
                &[
                    ("id", "bigint"),
                    ("message_id", "bigint"),
                    ("model", "text"),
                    ("response", "text"),
                    ("confidence", "double precision"),
                    ("base_model", "text"),
                    ("sample_id", "integer"),
                    ("created_at", "timestamp with time zone"),
                ],
            ),
            (
                "stage2_rankings",
                &[
                    ("id", "bigint"),
                    ("message_id", "bigint"),
                    ("evaluator_model", "text"),
                    ("raw_ranking", "text"),
                    ("parsed_ranking", "jsonb"),
                    ("debate_round", "integer"),
                    ("rubric_scores", "jsonb"),
                    ("created_at", "timestamp with time zone"),
                ],
            ),
            (
                "stage3_synthesis",
                &[
                    ("id", "bigint"),
                    ("message_id", "bigint"),
                    ("chairman_model", "text"),
                    ("response", "text"),
                    ("meta_evaluation", "text"),
                    ("created_at", "timestamp with time zone"),
                ],
            ),
            (
                "deliberation_metadata",
                &[
                    ("id", "bigint"),
                    ("message_id", "bigint"),
                    ("label_to_model", "jsonb"),
                    ("aggregate_rankings", "jsonb"),
                    ("consensus", "jsonb"),
                    ("features", "jsonb"),
                    ("stage1_consensus", "jsonb"),
                    ("debate_history", "jsonb"),
                    ("voting_method", "text"),
                    ("created_at", "timestamp with time zone"),
                ],
            ),
            (
                "api_keys",
                &[
                    ("id", "bigint"),
                    ("key_hash", "text"),
                    ("key_prefix", "character varying(12)"),
                    ("name", "text"),
                    ("created_at", "timestamp with time zone"),
                    ("last_used_at", "timestamp with time zone"),
                    ("expires_at", "timestamp with time zone"),
                    ("is_active", "boolean"),
                    ("rate_limit_override", "integer"),
                    ("permissions", "jsonb"),
                    ("metadata", "jsonb"),
                ],
            ),
            (
                "api_key_audit_log",
                &[
                    ("id", "bigint"),
                    ("api_key_id", "bigint"),
                    ("action", "text"),
                    ("endpoint", "text"),
                    ("ip_address", "text"),
                    ("user_agent", "text"),
                    ("request_id", "text"),
                    ("created_at", "timestamp with time zone"),
                ],
            ),
            (
                "response_cache",
                &[
                    ("id", "bigint"),
                    ("cache_key", "text"),
                    ("query_hash", "text"),
                    ("stage1_data", "jsonb"),
                    ("stage2_data", "jsonb"),
                    ("stage3_data", "jsonb"),
                    ("metadata", "jsonb"),
                    ("created_at", "timestamp with time zone"),
                    ("expires_at", "timestamp with time zone"),
                    ("hit_count", "bigint"),
                    ("last_hit_at", "timestamp with time zone"),
                ],
            ),
            (
                "council_import_rejects",
                &[
                    ("id", "bigint"),
                    ("source_table", "text"),
                    ("source_id", "text"),
                    ("reason", "text"),
                    ("row", "jsonb"),
                    ("rejected_at", "timestamp with time zone"),
                ],
            ),
        ];
        for (table, columns) in expected {
            let actual: Vec<(String, String)> = Spi::connect(|client| {
                client
                    .select(
                        "SELECT attname::text, format_type(atttypid, atttypmod)
                         FROM pg_attribute
                         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
                         ORDER BY attnum",
                        None,
                        &[(*table).into()],
                    )?
                    .map(|row| {
                        Ok((
                            row.get::<String>(1)?.unwrap_or_default(),
                            row.get::<String>(2)?.unwrap_or_default(),
                        ))
                    })
                    .collect::<Result<Vec<_>, pgrx::spi::Error>>()
            })
            .expect("reading the catalog failed");
            let expected: Vec<(String, String)> = columns
                .iter()
                .map(|(c, t)| ((*c).to_owned(), (*t).to_owned()))
                .collect();
            assert_eq!(actual, expected, "columns of {table}");
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
