//! Full-text search over the council's deliberations: `council_search`,
//! and the documents its row triggers keep current, all in
//! `sql/search.sql` (PL/pgSQL, with plans cached per session). What is Rust
//! here is what SQL cannot hold: whether search is on (`llm_council.search`,
//! a boolean PostgreSQL itself parses once the library is loaded, which
//! asking loads), and whether the import has deferred a table's documents
//! (`council::search_documents` keeps that).

pub mod document;
mod score;
pub mod snippet;
pub mod tokens;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{AnyElement, Internal};

use crate::council::access;
use crate::council::search_documents;
use crate::error::Error;
use crate::postgres::scan::TableScan;
use crate::postgres::{dictionaries, extension, headline, tsvector};
use std::collections::HashMap;

extension_sql_file!(
    "../../sql/search.sql",
    name = "search",
    requires = [
        "schema",
        council_search_deferred,
        council_search_document,
        council_search_enabled,
        council_search_query,
        council_search_score,
        council_search_snippet,
        council_search_term_counts
    ]
);

/// Whether search documents are kept: `llm_council.search`, on unless set
/// off for the database, the role or the session. The triggers ask it for
/// every row; like council_search_deferred it looks no name up, so pins no
/// search_path (whose GUC save and restore would cost every call).
#[pg_extern(stable, parallel_safe)]
fn council_search_enabled() -> bool {
    search_documents::enabled()
}

/// Whether the search triggers skip this insert into `table`: only inside
/// the import that deferred it, which indexes the table's rows itself
/// before it returns. Anyone may ask; no one but the import can say yes.
#[pg_extern(volatile, parallel_safe)]
fn council_search_deferred(table: pg_sys::Oid) -> bool {
    search_documents::is_deferred(table)
}

/// council_search's query made ready for BM25 (`search::score::Prepared`):
/// the query's `lexemes`, each found in `document_frequencies` of the
/// corpus's `documents`, whose documents average `average_length`
/// positions (`council_search_analyze()` keeps these statistics). Made once
/// per search, so that scoring a document parses no arrays.
#[pg_extern(immutable, parallel_safe)]
fn council_search_query(
    lexemes: Array<'_, &str>,
    document_frequencies: Array<'_, i64>,
    documents: i64,
    average_length: f64,
) -> Result<Vec<u8>, ErrorReport> {
    if lexemes.len() != document_frequencies.len() {
        return Err(Error::ScoreArguments {
            lexemes: lexemes.len(),
            frequencies: document_frequencies.len(),
        }
        .into());
    }
    let terms = lexemes
        .iter()
        .zip(document_frequencies.iter())
        .filter_map(|(lexeme, df)| {
            Some((lexeme?.as_bytes(), score::idf(documents as f64, df? as f64)))
        });
    Ok(score::prepare(terms, average_length))
}

/// A search document: the tsvector of `text` for `config`, equal to
/// `to_tsvector(config, text)`, made with each distinct word looked up in
/// the dictionaries once per backend where the configuration's parser is
/// council_parser (`postgres::dictionaries`). The triggers, the bulk fill
/// and the reindex make the documents with it. Its SQL (search.sql) names
/// the types: it returns a tsvector, which pgrx has no type for.
#[pg_extern(immutable, parallel_safe, sql = false)]
fn council_search_document(config: pg_sys::Oid, text: &str) -> Internal {
    Internal::from(Some(dictionaries::tsvector(config, text.as_bytes())))
}

/// The term statistics of every document (`council_search_analyze`):
/// each lexeme, the documents that hold it, and its occurrences, as
/// `ts_stat` counts them, in one pass over the documents' table counted in
/// a hash map (ts_stat's tree took 0.5 s of the 2.5 s a 3,000-conversation
/// import spent indexing). It reads the table below the executor, so it
/// asks for SELECT on it and refuses where row-level security applies;
/// EXECUTE is for the extension's owner alone (search.sql).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_term_counts() -> Result<
    TableIterator<
        'static,
        (
            name!(lexeme, String),
            name!(documents, i64),
            name!(occurrences, i64),
        ),
    >,
    ErrorReport,
> {
    let schema = extension::schema()?;
    let documents = access::relid(&schema, "council_search_documents")?;
    access::check_readable(
        documents,
        "council_search_documents",
        "council_search_term_counts",
    )?;
    let mut counts: HashMap<Box<[u8]>, (i64, i64), foldhash::fast::RandomState> =
        HashMap::default();
    let mut scan = TableScan::open(documents, &["document"])?;
    while let Some(counted) = scan.next(|row| -> Result<(), ErrorReport> {
        let Some(bytes) = row.text(0) else {
            return Ok(());
        };
        for entry in score::TsVector::parse(bytes)?.occurrences() {
            let (lexeme, occurrences) = entry?;
            let count = match counts.get_mut(lexeme) {
                Some(count) => count,
                None => counts.entry(lexeme.into()).or_default(),
            };
            count.0 += 1;
            count.1 += i64::from(occurrences);
        }
        Ok(())
    }) {
        counted?;
    }
    scan.close();
    Ok(TableIterator::new(counts.into_iter().map(
        |(lexeme, (documents, occurrences))| {
            (
                String::from_utf8_lossy(&lexeme).into_owned(),
                documents,
                occurrences,
            )
        },
    )))
}

/// council_search's relevance: the BM25 score (`search::score`) of
/// `document`, a tsvector, for `query`, as `council_search_query` made it.
/// Called for every matching document: it pins no search_path, since it
/// looks no name up, and setting one costs each call a GUC save and restore.
#[pg_extern(immutable, parallel_safe)]
fn council_search_score(document: AnyElement, query: &[u8]) -> Result<f32, ErrorReport> {
    let query = score::Prepared::parse(query)?;
    let document = score::TsVector::parse(tsvector::bytes(&document)?)?;
    Ok(score::bm25(&document, query.terms(), query.average_length())? as f32)
}

/// council_search's snippet of `text`, whose stored document (tsvector,
/// parsed with council_english) is `document`, for `query` (the tsquery it
/// matched), with `ts_headline`'s `options`: `ts_headline`'s own snippet,
/// made without running the text's words through the dictionaries again
/// (`search::snippet`). Its SQL (search.sql) names the types, which pgrx's
/// `anyelement` cannot: a tsvector and a tsquery at once.
#[pg_extern(immutable, parallel_safe, sql = false)]
fn council_search_snippet(
    text: &str,
    document: AnyElement,
    query: AnyElement,
    options: &str,
) -> Result<String, ErrorReport> {
    let document = score::TsVector::parse(tsvector::bytes(&document)?)?;
    let query = tsvector::query(&query)?;
    let operands = snippet::operands(query.bytes)?;
    let marked = snippet::mark(text.as_bytes(), &document, &operands)?;
    Ok(headline::headline(
        text.as_bytes(),
        &marked,
        &query,
        options,
    )?)
}
