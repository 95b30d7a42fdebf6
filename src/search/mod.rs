//! Full-text search over the council's deliberations: `council_search`,
//! and the documents its row triggers keep current, all in
//! `sql/search.sql` (PL/pgSQL, with plans cached per session). What is Rust
//! here is what SQL cannot hold: whether search is on (`llm_council.search`,
//! a boolean PostgreSQL itself parses once the library is loaded, which
//! asking loads), and whether the import has deferred a table's documents
//! (`council::search_documents` keeps that).

mod score;
pub mod tokens;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::AnyElement;

use crate::council::search_documents;
use crate::error::Error;
use crate::postgres::tsvector;

extension_sql_file!(
    "../../sql/search.sql",
    name = "search",
    requires = [
        "schema",
        council_search_deferred,
        council_search_enabled,
        council_search_score
    ]
);

/// Whether search documents are kept: `llm_council.search`, on unless set
/// off for the database, the role or the session.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_enabled() -> bool {
    search_documents::enabled()
}

/// Whether the search triggers skip this insert into `table`: only inside
/// the import that deferred it, which indexes the table's rows itself
/// before it returns. Anyone may ask; no one but the import can say yes.
#[pg_extern(volatile, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_deferred(table: pg_sys::Oid) -> bool {
    search_documents::is_deferred(table)
}

/// council_search's relevance: the BM25 score (`search::score`) of
/// `document`, a tsvector, for the query's `lexemes`, each found in
/// `document_frequencies` of the corpus's `documents`, whose documents
/// average `average_length` positions (`council_search_analyze()` keeps
/// these statistics).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_score(
    document: AnyElement,
    lexemes: Array<'_, &str>,
    document_frequencies: Array<'_, i64>,
    documents: i64,
    average_length: f64,
) -> Result<f32, ErrorReport> {
    if lexemes.len() != document_frequencies.len() {
        return Err(Error::ScoreArguments {
            lexemes: lexemes.len(),
            frequencies: document_frequencies.len(),
        }
        .into());
    }
    let document = score::TsVector::parse(tsvector::bytes(&document)?)?;
    let query = lexemes
        .iter()
        .zip(document_frequencies.iter())
        .filter_map(|(lexeme, df)| {
            Some((lexeme?.as_bytes(), score::idf(documents as f64, df? as f64)))
        });
    Ok(score::bm25(&document, query, average_length)? as f32)
}
