//! council_search itself. A search without filters, by a caller who may
//! read the tables whole, is made here at once: the query read, its BM25 inputs prepared, the GIN index asked
//! for the documents written since the last analyze (one statement, its
//! plan kept for the session) and the page made below the executor
//! (`page`). Any other search, or one whose arguments are refused, goes
//! to `council_search_statement` (search.sql), the PL/pgSQL that checks
//! them and reads through the executor, where a column grant or a policy
//! applies. A search of a few hits took 0.20–0.25 ms through that
//! PL/pgSQL, its settings and its statement, where the page itself took
//! 0.16–0.18 ms.

use std::cell::RefCell;
use std::ffi::CStr;

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone, Uuid};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::PgOid;

use super::page::{self, Row};
use crate::council::search_documents;
use crate::error::Error;
use crate::postgres::{dictionaries, names, spi, tsvector};

/// What a search reads, found in the catalogs' caches by the schema of
/// the function called.
struct Tables {
    schema: pg_sys::Oid,
    /// the documents, the postings, the conversations, the messages,
    /// stage 1 and stage 3, as `page` takes them
    page: [pg_sys::Oid; 6],
    statistics: pg_sys::Oid,
    english: pg_sys::Oid,
    /// council_search_config(), asked when llm_council.search_config names
    /// another configuration
    config: pg_sys::Oid,
}

impl Tables {
    fn find(schema: pg_sys::Oid) -> Option<Tables> {
        let relation = |name: &CStr| names::relation(schema, name);
        Some(Tables {
            schema,
            page: [
                relation(c"council_search_documents")?,
                relation(c"council_search_postings")?,
                relation(c"conversations")?,
                relation(c"messages")?,
                relation(c"stage1_responses")?,
                relation(c"stage3_synthesis")?,
            ],
            statistics: relation(c"council_search_statistics")?,
            english: names::text_search_config(schema, c"council_english")?,
            config: names::function_without_arguments(schema, c"council_search_config")?,
        })
    }

    /// council_search_postings, whose rows also hold the term statistics
    fn postings(&self) -> pg_sys::Oid {
        self.page[1]
    }
}

/// A statement whose plan the session keeps, with the schema it names and
/// the relation it was made for: a plan is made again when the extension
/// is installed anew.
struct Kept {
    schema: pg_sys::Oid,
    relid: pg_sys::Oid,
    statement: OwnedPreparedStatement,
}

thread_local! {
    /// the GIN index's matches of a tsquery among the documents not indexed
    static FRESH: RefCell<Option<Kept>> = const { RefCell::new(None) };
    /// council_search_statement, called with council_search's arguments
    static STATEMENT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// Runs the statement `cell` keeps (made by `text` from the schema's
/// quoted name, with parameters of `types`) with `arguments`: made again
/// when there is none, or it was made for another `schema` or `relid`.
fn select_kept<'conn>(
    cell: &'static std::thread::LocalKey<RefCell<Option<Kept>>>,
    client: &SpiClient<'conn>,
    (schema, relid): (pg_sys::Oid, pg_sys::Oid),
    text: impl FnOnce(&str) -> String,
    types: &[PgOid],
    arguments: &[DatumWithOid<'_>],
) -> Result<SpiTupleTable<'conn>, ErrorReport> {
    cell.with(|slot| {
        let mut slot = slot.borrow_mut();
        let kept = match slot.take() {
            Some(kept) if kept.schema == schema && kept.relid == relid => slot.insert(kept),
            _ => {
                let name = names::schema_name(schema).ok_or(Error::ExtensionMissing)?;
                let query = text(&council_app::QuotedIdentifier::new(&name).to_string());
                let statement = client
                    .prepare(query.as_str(), types)
                    .map_err(spi::internal_query_failed)?
                    .keep();
                slot.insert(Kept {
                    schema,
                    relid,
                    statement,
                })
            }
        };
        client
            .select(&kept.statement, None, arguments)
            .map_err(spi::internal_query_failed)
    })
}

/// council_search (search.sql): its arguments as it declares them.
#[allow(clippy::too_many_arguments)]
#[pg_extern(stable, sql = false)]
fn council_search(
    query: Option<&str>,
    conversation: Option<Uuid>,
    by_model: Option<&str>,
    since: Option<TimestampWithTimeZone>,
    until: Option<TimestampWithTimeZone>,
    kinds: Option<Vec<Option<String>>>,
    limit: Option<i32>,
    offset: Option<i32>,
    snippet_options: Option<&str>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Result<
    TableIterator<
        'static,
        (
            name!(kind, String),
            name!(conversation_id, Option<Uuid>),
            name!(message_id, Option<i64>),
            name!(row_id, Option<i64>),
            name!(model, Option<String>),
            name!(created_at, Option<TimestampWithTimeZone>),
            name!(title, Option<String>),
            name!(rank, f32),
            name!(snippet, Option<String>),
        ),
    >,
    ErrorReport,
> {
    let schema = names::function_schema(fcinfo).ok_or(Error::ExtensionMissing)?;
    let tables = Tables::find(schema);
    if let (Some(tables), Some(query), Some(limit), Some(offset), Some(options)) =
        (&tables, query, limit, offset, snippet_options)
    {
        let unfiltered = conversation.is_none()
            && by_model.is_none()
            && since.is_none()
            && until.is_none()
            && kinds.is_none();
        if unfiltered
            && limit >= 0
            && offset >= 0
            && search_documents::enabled()
            && tables.page.iter().all(|&relid| page::reads_directly(relid))
        {
            return Ok(TableIterator::new(unfiltered_page(
                tables, query, limit, offset, options,
            )?));
        }
    }
    let relid = tables.map_or(pg_sys::InvalidOid, |t| t.page[0]);
    let rows = statement(
        schema,
        relid,
        [
            query.into(),
            conversation.into(),
            by_model.into(),
            since.into(),
            until.into(),
            kinds.into(),
            limit.into(),
            offset.into(),
            snippet_options.into(),
        ],
    )?;
    Ok(TableIterator::new(rows))
}

/// The configuration of a search, as `council_search_config()` gives it:
/// council_english when `llm_council.search_config` is unset, empty or
/// that name, without a call.
fn search_config(tables: &Tables) -> pg_sys::Oid {
    let default = crate::gucs::SEARCH_CONFIG
        .get()
        .is_none_or(|name| matches!(name.to_bytes(), b"" | b"council_english"));
    if default {
        tables.english
    } else {
        names::call_returning_oid(tables.config)
    }
}

/// The page of `query`, as council_search_statement makes it without
/// filters.
fn unfiltered_page(
    tables: &Tables,
    query: &str,
    limit: i32,
    offset: i32,
    options: &str,
) -> Result<Vec<Row>, ErrorReport> {
    let config = search_config(tables);
    let tsq = tsvector::websearch_query(config, query);
    // only stop words, or nothing: nothing matches
    if tsq.item_count()? == 0 {
        return Ok(Vec::new());
    }
    // BM25's inputs: the query's lexemes as the documents hold them
    let document = dictionaries::tsvector_bytes(config, query.as_bytes());
    let document = super::score::TsVector::parse(&document)?;
    let mut lexemes = Vec::with_capacity(document.lexemes());
    for index in 0..document.lexemes() {
        lexemes.push(document.occurrence(index)?.0);
    }
    let prepared = super::prepare(&lexemes, tables.postings(), tables.statistics)?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let fresh = Spi::connect(|client| {
        let mut fresh = Vec::new();
        for row in select_kept(
            &FRESH,
            client,
            (tables.schema, tables.page[0]),
            |schema| {
                format!(
                    "SELECT d.doc FROM {schema}.council_search_documents d
                     WHERE NOT d.indexed AND d.document OPERATOR(pg_catalog.@@) $1"
                )
            },
            &[PgOid::BuiltIn(pg_sys::BuiltinOid::TSQUERYOID)],
            &[tsq.argument()],
        )? {
            fresh.extend(row.get::<i64>(1).map_err(spi::internal_query_failed)?);
        }
        Ok::<_, ErrorReport>(fresh)
    })?;
    page::page(
        &tsq,
        &prepared,
        limit,
        offset,
        config,
        options,
        &fresh,
        tables.english,
        &tables.page,
    )
}

/// council_search_statement's rows for council_search's `arguments`.
fn statement(
    schema: pg_sys::Oid,
    relid: pg_sys::Oid,
    arguments: [DatumWithOid<'_>; 9],
) -> Result<Vec<Row>, ErrorReport> {
    Spi::connect(|client| {
        let read = spi::internal_query_failed;
        let mut rows = Vec::new();
        for row in select_kept(
            &STATEMENT,
            client,
            (schema, relid),
            |schema| {
                format!(
                    "SELECT * FROM {schema}.council_search_statement($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                )
            },
            &[
                PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID),
                PgOid::BuiltIn(pg_sys::BuiltinOid::UUIDOID),
                PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID),
                PgOid::BuiltIn(pg_sys::BuiltinOid::TIMESTAMPTZOID),
                PgOid::BuiltIn(pg_sys::BuiltinOid::TIMESTAMPTZOID),
                PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTARRAYOID),
                PgOid::BuiltIn(pg_sys::BuiltinOid::INT4OID),
                PgOid::BuiltIn(pg_sys::BuiltinOid::INT4OID),
                PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID),
            ],
            &arguments,
        )? {
            rows.push((
                row.get::<String>(1).map_err(read)?.unwrap_or_default(),
                row.get::<Uuid>(2).map_err(read)?,
                row.get::<i64>(3).map_err(read)?,
                row.get::<i64>(4).map_err(read)?,
                row.get::<String>(5).map_err(read)?,
                row.get::<TimestampWithTimeZone>(6).map_err(read)?,
                row.get::<String>(7).map_err(read)?,
                row.get::<f32>(8).map_err(read)?.unwrap_or_default(),
                row.get::<String>(9).map_err(read)?,
            ));
        }
        Ok(rows)
    })
}
