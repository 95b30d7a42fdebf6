//! The tables of a council.db and of the extension, parents before
//! children: the order in which an import fills them and a report lists them.

/// The app's eight tables (its schema version 2), parents before children.
pub const COUNCIL: [&str; 8] = [
    "conversations",
    "messages",
    "stage1_responses",
    "stage2_rankings",
    "stage3_synthesis",
    "deliberation_metadata",
    "api_keys",
    "api_key_audit_log",
];

/// The tables of the app's schema version 1: the first six of [`COUNCIL`].
pub const COUNCIL_V1: [&str; 6] = [
    COUNCIL[0], COUNCIL[1], COUNCIL[2], COUNCIL[3], COUNCIL[4], COUNCIL[5],
];

/// Every table the extension creates: the council tables, the response
/// cache and the import's quarantine.
pub const EXTENSION: [&str; 10] = [
    COUNCIL[0],
    COUNCIL[1],
    COUNCIL[2],
    COUNCIL[3],
    COUNCIL[4],
    COUNCIL[5],
    COUNCIL[6],
    COUNCIL[7],
    "response_cache",
    "council_import_rejects",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_list_extends_the_one_before() {
        assert_eq!(COUNCIL[..6], COUNCIL_V1);
        assert_eq!(EXTENSION[..8], COUNCIL);
    }
}
