//! council_search itself. A search without filters, in the default
//! configuration, by a caller who may read the tables whole, is made here
//! at once: the query read, its BM25 inputs prepared, the GIN index asked
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
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
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
    terms: pg_sys::Oid,
    statistics: pg_sys::Oid,
    english: pg_sys::Oid,
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
            terms: relation(c"council_search_terms")?,
            statistics: relation(c"council_search_statistics")?,
            english: names::text_search_config(schema, c"council_english")?,
        })
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

/// The kept plan of `query` (made by `text` from the schema's quoted
/// name) for `schema` and `relid`, made now if there is none.
fn kept<'conn>(
    cell: &'static std::thread::LocalKey<RefCell<Option<Kept>>>,
    client: &SpiClient<'conn>,
    schema: pg_sys::Oid,
    relid: pg_sys::Oid,
    text: impl FnOnce(&str) -> String,
    types: &[PgOid],
) -> Result<(), ErrorReport> {
    let current = cell.with(|kept| {
        kept.borrow()
            .as_ref()
            .is_some_and(|k| k.schema == schema && k.relid == relid)
    });
    if current {
        return Ok(());
    }
    let name = names::schema_name(schema).ok_or(Error::ExtensionMissing)?;
    let query = text(&council_app::QuotedIdentifier::new(&name).to_string());
    let statement = client
        .prepare(query.as_str(), types)
        .map_err(spi::internal_query_failed)?
        .keep();
    cell.with(|kept| {
        *kept.borrow_mut() = Some(Kept {
            schema,
            relid,
            statement,
        })
    });
    Ok(())
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
            && default_config()
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

/// Whether `llm_council.search_config` names the default, council_english,
/// as `council_search_config()` reads it: unset or empty, or that name.
fn default_config() -> bool {
    crate::gucs::SEARCH_CONFIG
        .get()
        .is_none_or(|name| matches!(name.to_bytes(), b"" | b"council_english"))
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
    let config = tables.english;
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
    let prepared = super::prepare(&lexemes, tables.terms, tables.statistics)?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let documents = tables.page[0];
    let fresh = Spi::connect(|client| {
        kept(
            &FRESH,
            client,
            tables.schema,
            documents,
            |schema| {
                format!(
                    "SELECT d.doc FROM {schema}.council_search_documents d
                     WHERE NOT d.indexed AND d.document OPERATOR(pg_catalog.@@) $1"
                )
            },
            &[PgOid::BuiltIn(pg_sys::BuiltinOid::TSQUERYOID)],
        )?;
        FRESH.with(|kept| -> Result<Vec<i64>, ErrorReport> {
            let kept = kept.borrow();
            let Some(kept) = kept.as_ref() else {
                return Ok(Vec::new());
            };
            let mut fresh = Vec::new();
            for row in client
                .select(&kept.statement, None, &[tsq.argument()])
                .map_err(spi::internal_query_failed)?
            {
                fresh.extend(row.get::<i64>(1).map_err(spi::internal_query_failed)?);
            }
            Ok(fresh)
        })
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
        kept(
            &STATEMENT,
            client,
            schema,
            relid,
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
        )?;
        STATEMENT.with(|kept| -> Result<Vec<Row>, ErrorReport> {
            let kept = kept.borrow();
            let Some(kept) = kept.as_ref() else {
                return Ok(Vec::new());
            };
            let mut rows = Vec::new();
            let read = |err| spi::internal_query_failed(err);
            for row in client
                .select(&kept.statement, None, &arguments)
                .map_err(read)?
            {
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
    })
}
