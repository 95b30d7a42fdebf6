//! SQL identifiers cannot be query parameters; they are quoted instead. A
//! [`QuotedIdentifier`] can only be made by quoting, so a name that reaches
//! SQL text unquoted does not type-check.

use std::fmt;

/// A name quoted for SQL text as PostgreSQL's `quote_ident` would always
/// quote it: in double quotes, with inner double quotes doubled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuotedIdentifier(String);

impl QuotedIdentifier {
    pub fn new(name: &str) -> QuotedIdentifier {
        QuotedIdentifier(format!("\"{}\"", name.replace('"', "\"\"")))
    }

    /// `schema.name`, each part quoted.
    pub fn qualified(schema: &QuotedIdentifier, name: &str) -> String {
        format!("{schema}.{}", QuotedIdentifier::new(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QuotedIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_postgresql_reads_them() {
        assert_eq!(QuotedIdentifier::new("messages").as_str(), "\"messages\"");
        assert_eq!(QuotedIdentifier::new("a\"b").as_str(), "\"a\"\"b\"");
        assert_eq!(
            QuotedIdentifier::new("Mixed Case").to_string(),
            "\"Mixed Case\""
        );
        let schema = QuotedIdentifier::new("council");
        assert_eq!(
            QuotedIdentifier::qualified(&schema, "response_cache"),
            "\"council\".\"response_cache\""
        );
    }
}
