//! Conversation ids: council.db keeps them as TEXT (normally `str(uuid4())`),
//! PostgreSQL as `uuid`. Any text maps to a uuid deterministically, and
//! whatever a uuid cannot show exactly is kept in `legacy_id`.

use uuid::Uuid;

/// Namespace for ids that are not UUIDs:
/// `Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:llm_council:conversation-id")`,
/// written out so it is a `const` (checked by a test).
pub const LEGACY_NAMESPACE: Uuid = Uuid::from_u128(0x5b46661e_44b7_5416_8dff_6c1b88b94962);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mapped {
    pub id: Uuid,
    /// The original text whenever it is not exactly `id` in canonical form.
    pub legacy_id: Option<String>,
}

/// Maps a conversation id. Never fails: the same text always gives the same
/// uuid, so messages referring to a conversation map to the same id too.
#[must_use]
pub fn map(text: &str) -> Mapped {
    if let Ok(id) = Uuid::try_parse(text) {
        let mut buffer = Uuid::encode_buffer();
        let canonical = id.hyphenated().encode_lower(&mut buffer) == text;
        return Mapped {
            id,
            legacy_id: (!canonical).then(|| text.to_owned()),
        };
    }
    Mapped {
        id: Uuid::new_v5(&LEGACY_NAMESPACE, text.as_bytes()),
        legacy_id: Some(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANONICAL: &str = "3f2a8c1e-5b7d-4e9f-a0b1-c2d3e4f5a6b7";

    fn uuid(text: &str) -> Uuid {
        Uuid::parse_str(text).expect("test value")
    }

    #[test]
    fn namespace_literal_matches_its_definition() {
        assert_eq!(
            LEGACY_NAMESPACE,
            Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:llm_council:conversation-id")
        );
        assert_eq!(
            LEGACY_NAMESPACE.to_string(),
            "5b46661e-44b7-5416-8dff-6c1b88b94962"
        );
    }

    #[test]
    fn canonical_uuid_is_kept_as_is() {
        assert_eq!(
            map(CANONICAL),
            Mapped {
                id: uuid(CANONICAL),
                legacy_id: None
            }
        );
        let nil = "00000000-0000-0000-0000-000000000000";
        assert_eq!(
            map(nil),
            Mapped {
                id: Uuid::nil(),
                legacy_id: None
            }
        );
        let v7 = "01890a5d-ac96-774b-bcce-b302099a8057";
        assert_eq!(map(v7).legacy_id, None);
    }

    #[test]
    fn other_spellings_keep_the_uuid_and_the_text() {
        for text in [
            "3F2A8C1E-5B7D-4E9F-A0B1-C2D3E4F5A6B7",
            "3f2a8c1e-5b7d-4e9f-a0b1-C2D3E4F5A6B7",
            "{3f2a8c1e-5b7d-4e9f-a0b1-c2d3e4f5a6b7}",
            "{3F2A8C1E-5B7D-4E9F-A0B1-C2D3E4F5A6B7}",
            "3f2a8c1e5b7d4e9fa0b1c2d3e4f5a6b7",
            "3F2A8C1E5B7D4E9FA0B1C2D3E4F5A6B7",
            "urn:uuid:3f2a8c1e-5b7d-4e9f-a0b1-c2d3e4f5a6b7",
        ] {
            assert_eq!(
                map(text),
                Mapped {
                    id: uuid(CANONICAL),
                    legacy_id: Some(text.to_owned())
                },
                "{text}"
            );
        }
    }

    #[test]
    fn other_text_gets_a_v5_uuid() {
        // Expected values from Python: uuid.uuid5(namespace, text).
        let cases = [
            ("conv-1", "494389e1-0c5b-58cd-ac6a-14ea5185fea1"),
            ("abc", "b72e4754-69ac-50a8-8a67-ee7af8e3f2a8"),
            ("", "b84544e8-02d6-55de-8deb-e2e957bc2d2d"),
        ];
        for (text, expected) in cases {
            let mapped = map(text);
            assert_eq!(mapped.id, uuid(expected), "{text:?}");
            assert_eq!(mapped.id.get_version_num(), 5);
            assert_eq!(mapped.legacy_id.as_deref(), Some(text));
        }
    }

    #[test]
    fn near_uuids_are_not_uuids() {
        for text in [
            " 3f2a8c1e-5b7d-4e9f-a0b1-c2d3e4f5a6b7",
            "3f2a8c1e-5b7d-4e9f-a0b1-c2d3e4f5a6b7\n",
            "3f2a8c1e-5b7d-4e9f-a0b1-c2d3e4f5a6b",
            "3f2a8c1e-5b7d-4e9f-a0b1-c2d3e4f5a6b7a",
            "3f2a8c1e-5b7d-4e9f-a0b1-c2d3e4f5a6bg",
            "3f2a8c1e5b7d-4e9f-a0b1-c2d3e4f5a6b7",
        ] {
            let mapped = map(text);
            assert_eq!(
                mapped.id,
                Uuid::new_v5(&LEGACY_NAMESPACE, text.as_bytes()),
                "{text:?}"
            );
            assert_eq!(mapped.legacy_id.as_deref(), Some(text));
        }
    }

    #[test]
    fn mapping_is_deterministic_and_distinct() {
        assert_eq!(map("conv-1"), map("conv-1"));
        assert_ne!(map("conv-1").id, map("conv-2").id);
        assert_ne!(map("conv-1").id, map("Conv-1").id);
        assert_ne!(map("").id, map(" ").id);
    }
}
