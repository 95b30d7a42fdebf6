//! Full-text search over the council's deliberations: `council_search`,
//! and the documents its row triggers keep current, all in
//! `sql/search.sql` (PL/pgSQL, with plans cached per session). What is Rust
//! here is what SQL cannot hold: whether search is on (`llm_council.search`,
//! a boolean PostgreSQL itself parses once the library is loaded, which
//! asking loads), and whether the import has deferred a table's documents
//! (`council::search_documents` keeps that).

pub mod document;
mod postings;
mod score;
pub mod snippet;
pub mod tokens;
pub mod tsquery;
pub mod word_map;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{AnyElement, Internal};

use crate::council::access;
use crate::council::search_documents;
use crate::error::Error;
use crate::import::binary_copy;
use crate::postgres::backend;
use crate::postgres::lookup::{KeyDatum, PrimaryKeyLookup};
use crate::postgres::scan::TableScan;
use crate::postgres::{copy, dictionaries, extension, headline, ts_execute, tsvector};

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
        council_search_postings_build,
        council_search_matches
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

/// Builds the search's postings (`search::postings`) and term statistics
/// from every document `council_search_analyze()` marked `indexed`, in one
/// pass, into `council_search_postings` and `council_search_terms`, which
/// it emptied: each lexeme's list, and the documents that hold it and its
/// occurrences, as `ts_stat` counts them. Returns the lexemes, the
/// documents and the occurrences of all. It reads the documents below the
/// executor, so it asks for SELECT on them and refuses where row-level
/// security applies; EXECUTE is for the extension's owner alone
/// (search.sql).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_postings_build() -> Result<
    TableIterator<
        'static,
        (
            name!(lexemes, i64),
            name!(documents, i64),
            name!(occurrences, i64),
        ),
    >,
    ErrorReport,
> {
    let schema = extension::schema()?;
    let documents = access::relid(&schema, "council_search_documents")?;
    let postings_table = access::relid(&schema, "council_search_postings")?;
    let terms_table = access::relid(&schema, "council_search_terms")?;
    access::check_readable(
        documents,
        "council_search_documents",
        "council_search_postings_build",
    )?;
    let mut builder = postings::Builder::default();
    let mut scan = TableScan::open(documents, &["doc", "indexed", "document"])?;
    while let Some(added) = scan.next(|row| -> Result<(), ErrorReport> {
        if row.bool(1) != Some(true) {
            return Ok(());
        }
        let (Some(id), Some(bytes)) = (row.int8(0), row.text(2)) else {
            return Ok(());
        };
        Ok(builder.add(id, &score::TsVector::parse(bytes)?)?)
    }) {
        added?;
    }
    scan.close();
    let (count, occurrences) = builder.totals();
    let mut lists = builder.finish();
    let mut terms = Vec::new();
    binary_copy::header(&mut terms);
    let mut lexemes = 0i64;
    let mut started = false;
    let mut failed = None;
    copy::copy_into(postings_table, &["lexeme", "postings"], false, &mut |buf| {
        if !started {
            binary_copy::header(buf);
            started = true;
        }
        while buf.len() < 1 << 16 {
            match lists.next() {
                Some(Ok(list)) => {
                    binary_copy::raw_row(buf, &[&list.lexeme, &list.bytes]);
                    if list.lexeme.as_ref() != postings::EVERY_DOCUMENT {
                        lexemes += 1;
                        binary_copy::raw_row(
                            &mut terms,
                            &[
                                &list.lexeme,
                                &list.documents.to_be_bytes(),
                                &list.occurrences.to_be_bytes(),
                            ],
                        );
                    }
                }
                Some(Err(error)) => {
                    failed = Some(error);
                    binary_copy::trailer(buf);
                    return Ok(false);
                }
                None => {
                    binary_copy::trailer(buf);
                    return Ok(false);
                }
            }
        }
        Ok(true)
    });
    if let Some(error) = failed {
        return Err(error.into());
    }
    binary_copy::trailer(&mut terms);
    let mut terms = Some(terms);
    copy::copy_into(
        terms_table,
        &["lexeme", "documents", "occurrences"],
        false,
        &mut |buf| {
            if let Some(terms) = terms.take() {
                *buf = terms;
            }
            Ok(false)
        },
    );
    Ok(TableIterator::once((lexemes, count, occurrences)))
}

/// council_search's matches among the documents the postings cover, for
/// `query`, ranked by BM25 for `prepared` (`council_search_query`): the
/// `wanted` best, with every one that ties the last, best first, each with
/// the number of all matches. `postings` is the table to read
/// (`council_search_postings`), found by lexeme through its primary key:
/// the caller needs SELECT on it, and row-level security on it refuses. A
/// document matches where `document @@ query` would: the candidates are the
/// documents of the lexemes the query needs, and PostgreSQL's TS_execute
/// decides each from the positions listed (`postgres::ts_execute`), unless
/// the candidates are the matches (words joined by & and |). Its SQL
/// (search.sql) names the tsquery.
#[pg_extern(stable, parallel_safe, sql = false)]
fn council_search_matches(
    query: AnyElement,
    prepared: &[u8],
    wanted: i32,
    postings: pg_sys::Oid,
) -> Result<
    TableIterator<'static, (name!(doc, i64), name!(rank, f32), name!(matches, i64))>,
    ErrorReport,
> {
    let query = tsvector::query(&query)?;
    let tree = tsquery::Query::parse(query.bytes)?;
    let prepared = score::Prepared::parse(prepared)?;
    if tree.is_empty() {
        return Ok(TableIterator::new(Vec::new()));
    }
    if tree.operands().any(|operand| operand.prefix) {
        return Err(Error::PrefixQuery.into());
    }
    // the lexemes to read: the query's, the scored ones, and every
    // document where the query may match without its words
    let mut lexemes: Vec<&[u8]> = tree
        .operands()
        .map(|operand| operand.lexeme)
        .chain(prepared.terms().map(|(lexeme, _)| lexeme))
        .collect();
    if tree.matches_without_its_words() {
        lexemes.push(postings::EVERY_DOCUMENT);
    }
    lexemes.sort_unstable();
    lexemes.dedup();
    if !backend::table_privilege(postings, pg_sys::ACL_SELECT).unwrap_or(false) {
        return Err(Error::SearchNotGranted("council_search_postings").into());
    }
    if backend::row_level_security_applies(postings) {
        return Err(Error::RowLevelSecurity {
            function: "council_search",
            table: "council_search_postings",
        }
        .into());
    }
    let mut lists = PrimaryKeyLookup::open(postings, KeyDatum::Text(Vec::new()), &["postings"])?;
    let mut read: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(lexemes.len());
    for lexeme in lexemes {
        if let Some(Some(list)) = lists.find(KeyDatum::Text(lexeme.to_vec()), |row| {
            row.text(0).map(<[u8]>::to_vec)
        }) {
            read.push((lexeme.to_vec(), list));
        }
    }
    lists.close();
    let hits = rank(&query, &tree, &prepared, &read)?;
    let matches = i64::try_from(hits.len()).unwrap_or(i64::MAX);
    let wanted = usize::try_from(wanted).unwrap_or(0);
    Ok(TableIterator::new(
        postings::best(hits, wanted)
            .into_iter()
            .map(move |(rank, doc)| (doc, rank, matches)),
    ))
}

/// Every document of the `lists` read (lexeme, postings) that matches
/// `tree`, with its BM25 score for `prepared`.
fn rank(
    query: &tsvector::TsQuery<'_>,
    tree: &tsquery::Query<'_>,
    prepared: &score::Prepared<'_>,
    lists: &[(Vec<u8>, Vec<u8>)],
) -> Result<Vec<(f32, i64)>, Error> {
    let list_of = |lexeme: &[u8]| lists.iter().position(|(l, _)| l.as_slice() == lexeme);
    let mut read = Vec::with_capacity(lists.len());
    for (_, bytes) in lists {
        read.push(postings::Read::new(bytes)?);
    }
    let candidates = tree.candidates(
        &|operand| list_of(operand.lexeme).map_or(&[][..], |i| read[i].documents()),
        list_of(postings::EVERY_DOCUMENT).map_or(&[][..], |i| read[i].documents()),
    );
    let operands: Vec<(usize, Option<usize>)> = tree
        .operands()
        .map(|operand| (operand.item, list_of(operand.lexeme)))
        .collect();
    let terms: Vec<(Option<usize>, f64)> = prepared
        .terms()
        .map(|(lexeme, idf)| (list_of(lexeme), idf))
        .collect();
    let pairs = tree.needed_pairs();
    let mut matcher = if tree.candidates_are_matches() {
        None
    } else {
        Some(ts_execute::Matcher::new(query)?)
    };
    let mut at: Vec<Option<postings::Posting<'_>>> = vec![None; lists.len()];
    let mut positions: Vec<Vec<u16>> = vec![Vec::new(); tree.len()];
    let mut present = vec![false; tree.len()];
    let mut hits = Vec::with_capacity(candidates.len());
    for &document in &candidates {
        let mut length = None;
        for (list, posting) in read.iter_mut().zip(at.iter_mut()) {
            *posting = list.find(document)?;
            length = length.or(posting.map(|p| p.length));
        }
        let Some(length) = length else {
            continue;
        };
        if let Some(matcher) = matcher.as_mut() {
            present.fill(false);
            for &(item, list) in &operands {
                if let Some(posting) = list.and_then(|list| at[list]) {
                    posting.positions(&mut positions[item])?;
                    present[item] = true;
                }
            }
            // the phrases of two words a match needs, checked here first:
            // most candidates of a phrase fail them
            let adjacent = |&(left, right, distance): &(usize, usize, u16)| {
                present[left] && present[right] && {
                    let (a, b) = (&positions[left], &positions[right]);
                    // a document that keeps no positions can only say maybe,
                    // which TS_execute decides
                    let mut j = 0;
                    a.is_empty()
                        || b.is_empty()
                        || a.iter().any(|&p| {
                            let wanted = u32::from(p & 0x3FFF) + u32::from(distance);
                            while j < b.len() && u32::from(b[j] & 0x3FFF) < wanted {
                                j += 1;
                            }
                            j < b.len() && u32::from(b[j] & 0x3FFF) == wanted
                        })
                }
            };
            if !pairs.iter().all(adjacent) {
                continue;
            }
            let found: Vec<Option<&[u16]>> = positions
                .iter()
                .zip(&present)
                .map(|(p, &here)| here.then_some(p.as_slice()))
                .collect();
            if !matcher.matches(&found)? {
                continue;
            }
        }
        let bm25 = score::Bm25::new(length, prepared.average_length());
        let mut score = 0.0;
        for &(list, idf) in &terms {
            let frequency = list.and_then(|list| at[list]).map_or(0, |p| p.frequency);
            score += bm25.term(frequency, idf);
        }
        hits.push((score as f32, document));
    }
    Ok(hits)
}
