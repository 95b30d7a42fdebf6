//! council_search's page, made below the executor: the matches ranked in
//! the postings, each document and its text found by key, the page sorted
//! and its snippets made here, as the unfiltered search's statement made
//! them row by row. On a page of twenty rows the statement's set-up, its
//! subplans and its lookups through the executor cost more than the ranking
//! itself. A search with filters, or one the caller may not read every
//! table for directly, goes to the statement (council_search_statement,
//! search.sql), which the executor checks column by column and row by row.

use std::cmp::{Ordering, Reverse};

use pgrx::datum::{TimestampWithTimeZone, Uuid};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use super::{open_lists, postings, postings_lists, rank, score, snippet, terms_of, tsquery};
use crate::error::Error;
use crate::postgres::lookup::{KeyDatum, PrimaryKeyLookup};
use crate::postgres::{backend, headline, tsvector};

/// Whether a search may read `relid` below the executor: SELECT on the
/// whole table, and no row-level security. Otherwise council_search's
/// statement reads it, where a column grant or a policy applies as it
/// would to the caller's own SELECT.
pub(super) fn reads_directly(relid: pg_sys::Oid) -> bool {
    backend::table_privilege(relid, pg_sys::ACL_SELECT).unwrap_or(false)
        && !backend::row_level_security_applies(relid)
}

/// A ranked document, as the page sorts it.
struct Ranked {
    rank: f32,
    created_at: Option<i64>,
    kind: String,
    row_id: Option<i64>,
    conversation_id: Option<[u8; 16]>,
    message_id: Option<i64>,
    model: Option<String>,
    config: pg_sys::Oid,
    /// what its snippet is made from, as a tsvector's bytes: the query's
    /// lexemes with their positions, from the postings, or the document
    /// itself, for one written since the last analyze
    positions: Vec<u8>,
}

/// council_search's order: `rank DESC, created_at DESC NULLS LAST, kind,
/// row_id, conversation_id` (NULLS LAST for the ascending ones, as ORDER BY
/// has them). The kinds are four lowercase ASCII words, which every
/// collation orders as their bytes; a uuid orders by its bytes.
fn page_order(a: &Ranked, b: &Ranked) -> Ordering {
    b.rank
        .total_cmp(&a.rank)
        .then_with(|| nulls_last(a.created_at.map(Reverse), b.created_at.map(Reverse)))
        .then_with(|| a.kind.cmp(&b.kind))
        .then_with(|| nulls_last(a.row_id, b.row_id))
        .then_with(|| nulls_last(a.conversation_id, b.conversation_id))
}

/// `a` against `b`, a NULL after every value.
fn nulls_last<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The columns read from `council_search_documents`, in this order.
const DOCUMENT_COLUMNS: [&str; 9] = [
    "kind",
    "row_id",
    "message_id",
    "conversation_id",
    "model",
    "created_at",
    "config",
    "indexed",
    "document",
];

/// The document `doc`, if it is there and indexed as `indexed` says; its
/// positions are `positions` or, for a document not indexed, its stored
/// tsvector, scored for `prepared` (its rank otherwise).
fn ranked(
    documents: &mut PrimaryKeyLookup,
    doc: i64,
    rank: f32,
    indexed: bool,
    terms: Option<Vec<u8>>,
    prepared: &score::Prepared<'_>,
) -> Result<Option<Ranked>, Error> {
    let found = documents.find(KeyDatum::BigInt(doc), |row| {
        if row.bool(7) != Some(indexed) {
            return Ok(None);
        }
        let (rank, positions) = match terms {
            Some(terms) => (rank, terms),
            None => {
                let Some(bytes) = row.text(8) else {
                    return Ok(None);
                };
                let document = score::TsVector::parse(bytes)?;
                let rank =
                    score::bm25(&document, prepared.terms(), prepared.average_length())? as f32;
                (rank, bytes.to_vec())
            }
        };
        Ok(Some(Ranked {
            rank,
            created_at: row.int8(5),
            kind: row.string(0).unwrap_or_default(),
            row_id: row.int8(1),
            conversation_id: row.uuid(3),
            message_id: row.int8(2),
            model: row.string(4),
            config: pg_sys::Oid::from(row.int4(6).unwrap_or(0) as u32),
            positions,
        }))
    });
    found.unwrap_or(Ok(None))
}

/// A row of council_search's result.
pub(super) type Row = (
    String,
    Option<Uuid>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<TimestampWithTimeZone>,
    Option<String>,
    f32,
    Option<String>,
);

/// council_search's page without filters: rows `offset` to `offset +
/// limit` of the matches of `query` (a tsquery of `config`), ranked by BM25
/// for `prepared`, in council_search's order, with their titles and
/// snippets (`options`, as ts_headline's). The matches are those the
/// postings hold, and `fresh`: the documents written since the last
/// analyze that match, which the GIN index found (the caller asks it). `english` is council_english, whose documents' snippets come
/// from their positions; `tables` are the documents, the postings, the
/// conversations, the messages, stage 1 and stage 3, read with the
/// caller's rights: the caller has found each of them readable by
/// [`reads_directly`].
#[allow(clippy::too_many_arguments)]
pub(super) fn page(
    tsq: &tsvector::TsQuery<'_>,
    prepared: &[u8],
    limit: i32,
    offset: i32,
    config: pg_sys::Oid,
    options: &str,
    fresh: &[i64],
    english: pg_sys::Oid,
    tables: &[pg_sys::Oid; 6],
) -> Result<Vec<Row>, ErrorReport> {
    let &[documents, postings, conversations, messages, stage1, stage3] = tables;
    let (Ok(limit), Ok(offset)) = (usize::try_from(limit), usize::try_from(offset)) else {
        return Ok(Vec::new());
    };
    let tree = tsquery::Query::parse(tsq.bytes)?;
    let prepared = score::Prepared::parse(prepared)?;
    if tree.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let read = postings_lists(&tree, &prepared, postings)?;
    let mut opened = open_lists(&read)?;
    let mut hits = rank(tsq, &tree, &prepared, &read, &mut opened, None)?;
    let need = limit.saturating_add(offset);

    let mut documents =
        PrimaryKeyLookup::open_by_descent(documents, KeyDatum::BigInt(0), &DOCUMENT_COLUMNS)?;
    // The best `wanted` from the postings, with every tie of the last: the
    // page is whole if that many are listed (a document deleted since the
    // last analyze is not), or if they were all the matches.
    let mut wanted = need;
    let mut listed = loop {
        let best = postings::best(&mut hits, wanted);
        let terms = terms_of(&best, &read, &mut opened)?;
        let mut listed = Vec::with_capacity(best.len());
        for (&(rank, doc), terms) in best.iter().zip(terms) {
            if let Some(found) = ranked(&mut documents, doc, rank, true, Some(terms), &prepared)? {
                listed.push(found);
            }
        }
        if listed.len() >= need || best.len() >= hits.len() {
            break listed;
        }
        wanted = wanted.saturating_mul(8);
    };
    for &doc in fresh {
        if let Some(found) = ranked(&mut documents, doc, 0.0, false, None, &prepared)? {
            listed.push(found);
        }
    }
    documents.close();
    listed.sort_unstable_by(page_order);
    let page: Vec<Ranked> = listed.into_iter().skip(offset).take(limit).collect();

    let operands = snippet::operands(tsq.bytes)?;
    // parsed for the first snippet made from positions: a malformed option
    // is refused where ts_headline would refuse it, not on an empty page
    let mut parsed_options = None;
    let mut scratch = headline::Scratch::new();
    let mut titles = PrimaryKeyLookup::open(conversations, KeyDatum::Uuid([0; 16]), &["title"])?;
    let mut texts = [
        (messages, "content"),
        (stage1, "response"),
        (stage3, "response"),
    ]
    .map(|(relid, column)| (relid, column, None::<PrimaryKeyLookup>));
    // A conversation's stage 1 responses and synthesis often match
    // together: its title is looked up once per page.
    let mut titles_read: Vec<([u8; 16], Option<String>)> = Vec::new();
    let mut rows = Vec::with_capacity(page.len());
    for found in page {
        let title = found.conversation_id.and_then(|id| {
            if let Some((_, title)) = titles_read.iter().find(|(read, _)| *read == id) {
                return title.clone();
            }
            let title = titles
                .find(KeyDatum::Uuid(id), |row| row.string(0))
                .flatten();
            titles_read.push((id, title.clone()));
            title
        });
        let body = match found.kind.as_str() {
            "title" => title.clone(),
            kind => {
                let at = match kind {
                    "user_message" => 0,
                    "stage1" => 1,
                    _ => 2,
                };
                let (relid, column, lookup) = &mut texts[at];
                let lookup = match lookup {
                    Some(lookup) => lookup,
                    None => lookup.insert(PrimaryKeyLookup::open_by_descent(
                        *relid,
                        KeyDatum::BigInt(0),
                        &[*column],
                    )?),
                };
                found
                    .row_id
                    .and_then(|id| lookup.find(KeyDatum::BigInt(id), |row| row.string(0)))
                    .flatten()
            }
        };
        let snippet = match body.as_deref() {
            None => None,
            Some(body) if found.config != english => {
                Some(scratch.run(|| headline::ts_headline(config, body, tsq, options)))
            }
            Some(body) => {
                let parsed = &*parsed_options.get_or_insert_with(|| headline::options(options));
                let document = score::TsVector::parse(&found.positions)?;
                let marked = snippet::mark(
                    body.as_bytes(),
                    &document,
                    &operands,
                    parsed.words_after_last_match(),
                )?;
                Some(scratch.run(|| headline::headline(body.as_bytes(), &marked, tsq, parsed))?)
            }
        };
        rows.push((
            found.kind,
            found.conversation_id.map(Uuid::from_bytes),
            found.message_id,
            found.row_id,
            found.model,
            found
                .created_at
                .and_then(|at| TimestampWithTimeZone::try_from(at).ok()),
            title,
            found.rank,
            snippet,
        ));
    }
    titles.close();
    for (_, _, lookup) in texts {
        if let Some(lookup) = lookup {
            lookup.close();
        }
    }
    Ok(rows)
}
