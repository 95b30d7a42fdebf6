//! Full-text search over the council's deliberations. Its SQL is in
//! `sql/search.sql` (the documents, the postings, the statistics, and
//! `council_search_statement`, the PL/pgSQL search of filtered calls) and
//! `sql/search_triggers.sql` (the row triggers). Here, the functions that
//! SQL calls; `council_search` itself in `entry`, the parse in `tokens`
//! and `document`, the postings and their BM25 ranking in `postings` and
//! `score`, the page and its snippets in `page` and `snippet`.

pub mod document;
mod entry;
mod page;
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
use crate::postgres::{
    copy, dictionaries, extension, headline, spi, threads, ts_execute, tsvector,
};
use std::sync::mpsc;
use std::thread::ScopedJoinHandle;

extension_sql_file!(
    "../../sql/search.sql",
    name = "search",
    requires = [
        "schema",
        council_search_deferred,
        council_search_document,
        council_search_enabled,
        council_search_prepare,
        council_search_score,
        council_search_snippet,
        council_search_snippet_of_terms,
        council_search_postings_build,
        council_search_fill_postings,
        council_search_stored_documents,
        council_search_matches
    ]
);
extension_sql_file!(
    "../../sql/search_triggers.sql",
    name = "search_triggers",
    requires = ["search"]
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
/// the query's `lexemes` (as the documents hold them), each with its IDF
/// from its document frequency, which its row of `postings`
/// (`council_search_postings`) holds beside its list, and the corpus's size
/// and average length in `statistics` (`council_search_statistics`);
/// building the postings keeps both.
/// A lexeme the statistics do not know counts as in no document, and a
/// corpus never analyzed as empty. Made once per search, so that scoring a
/// document parses no arrays. Both tables are read below the executor, by
/// key and in one row, with the caller's rights (as a SELECT would, which
/// this replaces: planning and starting it cost a search that finds a few
/// rows more than its ranking). Its SQL (search.sql) names the tables.
#[pg_extern(stable, parallel_safe, sql = false)]
fn council_search_prepare(
    lexemes: Array<'_, &str>,
    postings: pg_sys::Oid,
    statistics: pg_sys::Oid,
) -> Result<Vec<u8>, ErrorReport> {
    let lexemes: Vec<&[u8]> = lexemes.iter().flatten().map(str::as_bytes).collect();
    prepare(&lexemes, postings, statistics)
}

/// `council_search_prepare`'s work, for `lexemes` in any form.
fn prepare(
    lexemes: &[&[u8]],
    postings: pg_sys::Oid,
    statistics: pg_sys::Oid,
) -> Result<Vec<u8>, ErrorReport> {
    readable(postings, "council_search_postings")?;
    readable(statistics, "council_search_statistics")?;
    let mut corpus = TableScan::open(statistics, &["documents", "average_length"])?;
    let (documents, average_length) = corpus
        .next(|row| (row.int8(0).unwrap_or(0), row.float8(1).unwrap_or(0.0)))
        .unwrap_or((0, 0.0));
    corpus.close();
    let mut frequencies =
        PrimaryKeyLookup::open(postings, KeyDatum::Text(Vec::new()), &["documents"])?;
    let mut prepared = Vec::with_capacity(lexemes.len());
    for &lexeme in lexemes {
        let df = frequencies
            .find(KeyDatum::Text(lexeme.to_vec()), |row| row.int8(0))
            .flatten()
            .unwrap_or(0);
        prepared.push((lexeme, score::idf(documents as f64, df as f64)));
    }
    frequencies.close();
    Ok(score::prepare(prepared, average_length))
}

/// Refuses a search that may not read `relid` (`table`, one of the
/// search's own tables) as a SELECT would, or whose row-level security
/// the reading below the executor could not apply.
fn readable(relid: pg_sys::Oid, table: &'static str) -> Result<(), Error> {
    if !backend::table_privilege(relid, pg_sys::ACL_SELECT).unwrap_or(false) {
        return Err(Error::SearchNotGranted(table));
    }
    if backend::row_level_security_applies(relid) {
        return Err(Error::RowLevelSecurity {
            function: "council_search",
            table,
        });
    }
    Ok(())
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
/// `document`, a tsvector, for `query`, as `council_search_prepare` made it.
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
    snippet_of(text, tsvector::bytes(&document)?, &query, options)
}

/// council_search's snippet of `text`, a document the postings alone hold,
/// from `terms` (the query's lexemes with their positions in it, as a
/// tsvector's bytes, from `council_search_matches`): the same as from the
/// whole document, whose other lexemes a headline does not read (PostgreSQL
/// reads a word's position only where the word matches the query). Its SQL
/// (search.sql) names the tsquery.
#[pg_extern(immutable, parallel_safe, sql = false)]
fn council_search_snippet_of_terms(
    text: &str,
    terms: &[u8],
    query: AnyElement,
    options: &str,
) -> Result<String, ErrorReport> {
    snippet_of(text, terms, &query, options)
}

fn snippet_of(
    text: &str,
    document: &[u8],
    query: &AnyElement,
    options: &str,
) -> Result<String, ErrorReport> {
    let document = score::TsVector::parse(document)?;
    let query = tsvector::query(query)?;
    let operands = snippet::operands(query.bytes)?;
    let options = headline::options(options);
    let marked = snippet::mark(
        text.as_bytes(),
        &document,
        &operands,
        options.words_after_last_match(),
    )?;
    Ok(headline::headline(
        text.as_bytes(),
        &marked,
        &query,
        &options,
    )?)
}

/// Builds the search's postings (`search::postings`), with their term
/// statistics, again, for `council_search_analyze()`: the documents of
/// `fresh` (a table of `doc` and `document`, the documents written since
/// the last build, which the analyze has just marked `indexed` and no
/// longer stores), and every document the postings held that is still
/// listed as `indexed` in `council_search_documents` (a deleted one is
/// dropped). Writes them into `council_search_postings` in place of what
/// it held: each lexeme's list, and beside it the documents that hold it
/// and its occurrences, as `ts_stat` counts them. Returns the lexemes, the
/// documents and the occurrences of all. It reads the tables below the
/// executor, so it asks for SELECT on them and refuses where row-level
/// security applies; EXECUTE is for the extension's owner alone
/// (search.sql).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_postings_build(
    fresh: pg_sys::Oid,
) -> Result<
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
    let tables = PostingsTables::find("council_search_postings_build")?;
    access::check_readable(
        fresh,
        "the documents to add",
        "council_search_postings_build",
    )?;
    let mut builder = postings::Builder::default();
    let mut added = Vec::new();
    let mut scan = TableScan::open(fresh, &["doc", "document"])?;
    while let Some(result) = scan.next(|row| -> Result<(), ErrorReport> {
        let (Some(id), Some(bytes)) = (row.int8(0), row.text(1)) else {
            return Ok(());
        };
        added.push(id);
        Ok(builder.add(id, &score::TsVector::parse(bytes)?)?)
    }) {
        result?;
    }
    scan.close();
    tables.carry(&mut builder, &postings::DocumentSet::new(added))?;
    let (lexemes, documents, occurrences) = tables.write(builder)?;
    Ok(TableIterator::once((lexemes, documents, occurrences)))
}

/// Parses every row of the searched tables in `tables` that has no
/// document yet, with `config`, for `council_search_fill`: each becomes a
/// row of `council_search_documents`, with an id of its own, marked
/// `indexed` and without its tsvector, which goes into the postings alone.
/// The postings are built again, with every document they held that is
/// still listed, as `council_search_postings_build` does; a document is
/// never stored twice. The parsing is one query that parallel workers may
/// share, and the postings are built from its rows as they come, on a
/// thread of the backend's own (`build_on_thread`), none stored on the
/// way. The documents' table is locked against other
/// writers until the transaction ends, so that the ids are taken from its
/// sequence at once. Returns the documents written, and the lexemes,
/// documents and occurrences of all. EXECUTE is for the extension's owner
/// alone.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_search_fill_postings(
    tables: Vec<pg_sys::Oid>,
    config: pg_sys::Oid,
) -> Result<
    TableIterator<
        'static,
        (
            name!(written, i64),
            name!(lexemes, i64),
            name!(documents, i64),
            name!(occurrences, i64),
        ),
    >,
    ErrorReport,
> {
    let postings_tables = PostingsTables::find("council_search_fill_postings")?;
    let schema = &postings_tables.schema;
    // whether to read each of the searched tables, in their order
    let mut sources = [false; search_documents::SEARCHED_TABLES.len()];
    for (read, name) in sources.iter_mut().zip(search_documents::SEARCHED_TABLES) {
        let relid = access::relid(schema, name)?;
        access::check_readable(relid, name, "council_search_fill_postings")?;
        *read = tables.contains(&relid);
    }
    let documents_name =
        council_app::QuotedIdentifier::qualified(schema, "council_search_documents");
    spi::write(
        &format!("LOCK TABLE {documents_name} IN EXCLUSIVE MODE"),
        &[],
    )?;
    let sequence = "pg_catalog.pg_get_serial_sequence($1, 'doc')::pg_catalog.regclass";
    let first = spi::read_one::<i64>(
        &format!("SELECT pg_catalog.nextval({sequence})"),
        &[documents_name.clone().into()],
    )?
    .unwrap_or(1);
    let mut rows = Vec::new();
    binary_copy::header(&mut rows);
    let config_bytes = config.to_u32().to_be_bytes();
    let mut id = first;
    let (written, mut builder) = build_on_thread(&mut |documents| {
        spi::each_row(
            &unparsed_rows_query(schema),
            &[
                config.into(),
                sources[0].into(),
                sources[1].into(),
                sources[2].into(),
                sources[3].into(),
            ],
            &mut |row| {
                // a NULL document holds no lexeme
                let empty = 0u32.to_ne_bytes();
                documents(id, row.text(6).unwrap_or(&empty))?;
                let row_id = row.int8(1).map(i64::to_be_bytes);
                let message_id = row.int8(2).map(i64::to_be_bytes);
                let created_at = row.int8(5).map(i64::to_be_bytes);
                let conversation = row.uuid(3);
                binary_copy::nullable_row(
                    &mut rows,
                    &[
                        Some(&id.to_be_bytes()[..]),
                        row.text(0),
                        row_id.as_ref().map(|b| &b[..]),
                        message_id.as_ref().map(|b| &b[..]),
                        conversation.as_ref().map(|b| &b[..]),
                        row.text(4),
                        created_at.as_ref().map(|b| &b[..]),
                        Some(&config_bytes[..]),
                        Some(&[1u8][..]),
                    ],
                );
                id += 1;
                Ok(())
            },
        )
    })?;
    if written == 0 {
        return Ok(TableIterator::once((0, 0, 0, 0)));
    }
    spi::write(
        &format!("SELECT pg_catalog.setval({sequence}, $2)"),
        &[documents_name.into(), (id - 1).into()],
    )?;
    // the lists held of the documents already there, whose ids are all
    // below the new ones' (the builder takes them in any order)
    postings_tables.carry(&mut builder, &postings::DocumentSet::new(Vec::new()))?;
    copy_whole(
        postings_tables.documents,
        &[
            "doc",
            "kind",
            "row_id",
            "message_id",
            "conversation_id",
            "model",
            "created_at",
            "config",
            "indexed",
        ],
        rows,
    );
    let (lexemes, documents, occurrences) = postings_tables.write(builder)?;
    Ok(TableIterator::once((
        i64::try_from(written).unwrap_or(i64::MAX),
        lexemes,
        documents,
        occurrences,
    )))
}

/// The documents `read` hands over, by id and tsvector's bytes, added to a
/// postings [`postings::Builder`] on a thread of the backend's own. Adding
/// them was over a quarter of the fill process's work, done in turn with
/// its share of the parse and its reading of the parallel workers' rows;
/// on a thread it runs beside them. The thread never calls into the
/// server. Returns what `read` returned, and the builder with every
/// document.
fn build_on_thread(
    read: &mut dyn FnMut(
        &mut dyn FnMut(i64, &[u8]) -> Result<(), ErrorReport>,
    ) -> Result<u64, ErrorReport>,
) -> Result<(u64, postings::Builder), ErrorReport> {
    /// About what a batch of documents holds before it is handed over.
    const BATCH_BYTES: usize = 64 * 1024;
    std::thread::scope(|scope| {
        // A few batches in flight, so that neither side waits for the
        // other's every step.
        let (batches, received) = mpsc::sync_channel::<postings::Batch>(8);
        let building = threads::spawn_scoped(scope, "llm_council search", move || {
            let mut builder = postings::Builder::default();
            for batch in received {
                batch.add_to(&mut builder)?;
            }
            Ok::<_, Error>(builder)
        })
        .map_err(|err| {
            Error::InternalQuery(format!(
                "could not start the thread building the search's postings: {err}"
            ))
        })?;
        let mut building = Some(building);
        let mut batch = postings::Batch::default();
        let read = read(&mut |id, document| {
            batch.push(id, document);
            if batch.byte_len() >= BATCH_BYTES {
                hand_over(&batches, &mut batch, &mut building)?;
            }
            Ok(())
        })
        .and_then(|read| {
            if !batch.is_empty() {
                hand_over(&batches, &mut batch, &mut building)?;
            }
            Ok(read)
        });
        // Its loop ends when the sender goes. On an error raised in the
        // statement, which unwinds past here, the sender goes with this
        // closure, before the scope waits for the thread.
        drop(batches);
        let read = read?;
        match building.take().map(ScopedJoinHandle::join) {
            Some(Ok(built)) => Ok((read, built?)),
            Some(Err(_)) | None => Err(unexpected_stop()),
        }
    })
}

/// The thread building the postings, as `build_on_thread` keeps it.
type Building<'scope> = Option<ScopedJoinHandle<'scope, Result<postings::Builder, Error>>>;

/// Hands `batch` to the thread building the postings. If it takes no more,
/// it has stopped, and its own error says why: that is what is returned
/// (and what the statement then raises, as it raises its callback's).
fn hand_over(
    batches: &mpsc::SyncSender<postings::Batch>,
    batch: &mut postings::Batch,
    building: &mut Building<'_>,
) -> Result<(), ErrorReport> {
    batches.send(std::mem::take(batch)).map_err(|_| {
        match building.take().map(ScopedJoinHandle::join) {
            Some(Ok(Err(err))) => err.into(),
            _ => unexpected_stop(),
        }
    })
}

fn unexpected_stop() -> ErrorReport {
    Error::InternalQuery("the thread building the search's postings stopped unexpectedly".into())
        .into()
}

/// The query that parses the rows with no document yet of the searched
/// tables: `$1` is the configuration, `$2` to `$5` say whether to read
/// conversations, messages, stage1_responses and stage3_synthesis. Its
/// columns are those of `council_search_documents`, the document last.
fn unparsed_rows_query(schema: &council_app::QuotedIdentifier) -> String {
    // a stage's row belongs to its message's conversation
    let stage = |kind: &str, table: &str, model: &str, read: &str| {
        format!(
            "SELECT '{kind}', s.id, s.message_id, m.conversation_id, s.{model}, s.created_at,
                    {schema}.council_search_document($1::regconfig, s.response)
             FROM {schema}.{table} s
             LEFT JOIN {schema}.messages m ON m.id OPERATOR(pg_catalog.=) s.message_id
             WHERE {read}
               AND NOT EXISTS (SELECT FROM {schema}.council_search_documents d
                               WHERE d.kind OPERATOR(pg_catalog.=) '{kind}'
                                 AND d.row_id OPERATOR(pg_catalog.=) s.id)"
        )
    };
    format!(
        "SELECT 'title'::text AS kind, NULL::bigint AS row_id, NULL::bigint AS message_id,
                c.id AS conversation_id, NULL::text AS model, c.created_at,
                {schema}.council_search_document($1::regconfig, c.title) AS document
         FROM {schema}.conversations c
         WHERE $2 AND c.title IS NOT NULL
           AND NOT EXISTS (SELECT FROM {schema}.council_search_documents d
                           WHERE d.kind OPERATOR(pg_catalog.=) 'title'
                             AND d.conversation_id OPERATOR(pg_catalog.=) c.id)
         UNION ALL
         SELECT 'user_message', m.id, m.id, m.conversation_id, NULL, m.created_at,
                {schema}.council_search_document($1::regconfig, m.content)
         FROM {schema}.messages m
         WHERE $3 AND m.role OPERATOR(pg_catalog.=) 'user' AND m.content IS NOT NULL
           AND NOT EXISTS (SELECT FROM {schema}.council_search_documents d
                           WHERE d.kind OPERATOR(pg_catalog.=) 'user_message'
                             AND d.row_id OPERATOR(pg_catalog.=) m.id)
         UNION ALL {}
         UNION ALL {}",
        stage("stage1", "stage1_responses", "model", "$4"),
        stage("stage3", "stage3_synthesis", "chairman_model", "$5"),
    )
}

/// The tables the postings are built from and into.
struct PostingsTables {
    schema: council_app::QuotedIdentifier,
    documents: pg_sys::Oid,
    postings: pg_sys::Oid,
}

impl PostingsTables {
    fn find(function: &'static str) -> Result<PostingsTables, ErrorReport> {
        let schema = extension::schema()?;
        let tables = PostingsTables {
            documents: access::relid(&schema, "council_search_documents")?,
            postings: access::relid(&schema, "council_search_postings")?,
            schema,
        };
        access::check_readable(tables.documents, "council_search_documents", function)?;
        access::check_readable(tables.postings, "council_search_postings", function)?;
        Ok(tables)
    }

    /// Carries into `builder` every posting of a document that is still
    /// listed as `indexed`, apart from those `except` holds (added again).
    fn carry(
        &self,
        builder: &mut postings::Builder,
        except: &postings::DocumentSet,
    ) -> Result<(), ErrorReport> {
        let mut listed = Vec::new();
        let mut scan = TableScan::open(self.documents, &["doc", "indexed"])?;
        while scan
            .next(|row| {
                if let (Some(id), Some(true)) = (row.int8(0), row.bool(1)) {
                    if !except.contains(id) {
                        listed.push(id);
                    }
                }
            })
            .is_some()
        {}
        scan.close();
        if listed.is_empty() {
            return Ok(());
        }
        let listed = postings::DocumentSet::new(listed);
        each_posting(self.postings, |lexeme, at| {
            if listed.contains(at.document) {
                builder.carry(lexeme, at);
            }
            Ok(())
        })
    }

    /// Replaces the postings, with their term statistics, by `builder`'s:
    /// returns the lexemes, the documents and their occurrences.
    fn write(&self, builder: postings::Builder) -> Result<(i64, i64, i64), ErrorReport> {
        spi::write(
            &format!(
                "DELETE FROM {}",
                council_app::QuotedIdentifier::qualified(&self.schema, "council_search_postings")
            ),
            &[],
        )?;
        let (count, occurrences) = builder.totals();
        let mut lists = builder.finish();
        let mut lexemes = 0i64;
        copy_rows(
            self.postings,
            &["lexeme", "documents", "occurrences", "postings"],
            &mut |buf| {
                let Some(list) = lists.next().transpose()? else {
                    return Ok(false);
                };
                binary_copy::raw_row(
                    buf,
                    &[
                        &list.lexeme,
                        &list.documents.to_be_bytes(),
                        &list.occurrences.to_be_bytes(),
                        &list.bytes,
                    ],
                );
                if list.lexeme.as_ref() != postings::EVERY_DOCUMENT {
                    lexemes += 1;
                }
                Ok(true)
            },
        );
        Ok((lexemes, count, occurrences))
    }
}

/// COPYs into `relid`'s `columns` the rows `row` writes, one a call, until
/// it says there is none left (`Ok(false)`): binary COPY's header first and
/// its trailer last, in pieces of about 64 kB. An error it returns is
/// raised as it is, and the COPY goes no further.
fn copy_rows(
    relid: pg_sys::Oid,
    columns: &[&str],
    row: &mut dyn FnMut(&mut Vec<u8>) -> Result<bool, ErrorReport>,
) -> u64 {
    let mut started = false;
    copy::copy_into(relid, columns, false, &mut |buf| {
        if !started {
            binary_copy::header(buf);
            started = true;
        }
        while buf.len() < 1 << 16 {
            if !row(buf)? {
                binary_copy::trailer(buf);
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// COPYs into `relid`'s `columns` a whole binary COPY stream held in
/// memory: its header and rows, as `binary_copy::header` began it; the
/// trailer is added here.
fn copy_whole(relid: pg_sys::Oid, columns: &[&str], mut stream: Vec<u8>) -> u64 {
    binary_copy::trailer(&mut stream);
    let mut stream = Some(stream);
    copy::copy_into(relid, columns, false, &mut |buf| {
        if let Some(stream) = stream.take() {
            *buf = stream;
        }
        Ok(false)
    })
}

/// Hands every posting of every list of `postings` (the table) to `f`,
/// with its lexeme, list after list.
fn each_posting(
    postings: pg_sys::Oid,
    mut f: impl FnMut(&[u8], &postings::Posting<'_>) -> Result<(), Error>,
) -> Result<(), ErrorReport> {
    let mut scan = TableScan::open(postings, &["lexeme", "postings"])?;
    while let Some(read) = scan.next(|row| -> Result<(), Error> {
        let (Some(lexeme), Some(bytes)) = (row.text(0), row.text(1)) else {
            return Ok(());
        };
        let (mut cursor, _) = postings::Cursor::open(bytes)?;
        while let Some(at) = cursor.current() {
            f(lexeme, &at)?;
            cursor.advance()?;
        }
        Ok(())
    }) {
        read?;
    }
    scan.close();
    Ok(())
}

/// Every document the postings hold, as its tsvector again: what
/// `council_search_documents` no longer stores once a document is
/// indexed, for a DBA to look at (`ts_stat`, `@@`) and the tests to
/// compare. Reads every list, and holds every document in memory: for
/// inspection, not for the app. The caller needs SELECT on
/// `council_search_postings`. Its SQL (search.sql) names the tsvector.
#[pg_extern(stable, parallel_safe, sql = false)]
fn council_search_stored_documents(
) -> Result<TableIterator<'static, (name!(doc, i64), name!(document, Internal))>, ErrorReport> {
    let schema = extension::schema()?;
    let postings_table = access::relid(&schema, "council_search_postings")?;
    access::check_readable(
        postings_table,
        "council_search_postings",
        "council_search_stored_documents",
    )?;
    let mut spelled: Vec<Box<[u8]>> = Vec::new();
    let mut documents: std::collections::BTreeMap<i64, Vec<(usize, Vec<u16>)>> =
        std::collections::BTreeMap::new();
    each_posting(postings_table, |lexeme, at| {
        let held = documents.entry(at.document).or_default();
        if lexeme == postings::EVERY_DOCUMENT {
            return Ok(());
        }
        if spelled.last().is_none_or(|last| **last != *lexeme) {
            spelled.push(lexeme.into());
        }
        let mut positions = Vec::new();
        at.positions(&mut positions)?;
        held.push((spelled.len() - 1, positions));
        Ok(())
    })?;
    let mut rows = Vec::with_capacity(documents.len());
    for (doc, held) in documents {
        let mut lexemes: Vec<(&[u8], Vec<u16>)> = held
            .into_iter()
            .map(|(lexeme, positions)| (&spelled[lexeme][..], positions))
            .collect();
        let bytes = document::from_positions(&mut lexemes)
            .ok_or(Error::MalformedPostings("a document no tsvector can hold"))?;
        rows.push((doc, Internal::from(Some(dictionaries::varlena(&bytes)))));
    }
    Ok(TableIterator::new(rows))
}

/// council_search's matches among the documents the postings cover, for
/// `query`, ranked by BM25 for `prepared` (`council_search_prepare`): the
/// `wanted` best, with every one that ties the last, best first, each with
/// the number of all matches. `postings` is the table to read
/// (`council_search_postings`), found by lexeme through its primary key:
/// the caller needs SELECT on it, and row-level security on it refuses. A
/// document matches where `document @@ query` would: the candidates are the
/// documents of the lexemes the query needs, and PostgreSQL's TS_execute
/// decides each from the positions listed (`postgres::ts_execute`), unless
/// the candidates are the matches (words joined by & and |). `within`,
/// unless NULL, is the only documents to consider (one conversation's).
/// Each document returned comes with `terms`: the query's lexemes with
/// their positions in it, as a tsvector's bytes, which its snippet is made
/// from (`council_search_snippet`), the document itself being stored in
/// the postings alone. Its SQL (search.sql) names the tsquery.
#[pg_extern(stable, parallel_safe, sql = false)]
fn council_search_matches(
    query: Option<AnyElement>,
    prepared: Option<&[u8]>,
    wanted: Option<i32>,
    postings: Option<pg_sys::Oid>,
    within: Option<Array<'_, i64>>,
) -> Result<
    TableIterator<
        'static,
        (
            name!(doc, i64),
            name!(rank, f32),
            name!(matches, i64),
            name!(terms, Vec<u8>),
        ),
    >,
    ErrorReport,
> {
    let (Some(query), Some(prepared), Some(wanted), Some(postings)) =
        (query, prepared, wanted, postings)
    else {
        return Ok(TableIterator::new(Vec::new()));
    };
    let within: Option<Vec<i64>> = within.map(|ids| {
        let mut ids: Vec<i64> = ids.iter().flatten().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    });
    let query = tsvector::query(&query)?;
    let tree = tsquery::Query::parse(query.bytes)?;
    let prepared = score::Prepared::parse(prepared)?;
    if tree.is_empty() {
        return Ok(TableIterator::new(Vec::new()));
    }
    let read = postings_lists(&tree, &prepared, postings)?;
    let mut opened = open_lists(&read)?;
    let mut hits = rank(
        &query,
        &tree,
        &prepared,
        &read,
        &mut opened,
        within.as_deref(),
    )?;
    let matches = i64::try_from(hits.len()).unwrap_or(i64::MAX);
    let wanted = usize::try_from(wanted).unwrap_or(0);
    let best = postings::best(&mut hits, wanted);
    let terms = terms_of(&best, &read, &mut opened)?;
    Ok(TableIterator::new(best.into_iter().zip(terms).map(
        move |((rank, doc), terms)| (doc, rank, matches, terms),
    )))
}

/// The lists of `postings` (`council_search_postings`) a search of `tree`
/// ranked by `prepared` reads, as (lexeme, list): the query's lexemes, the
/// scored ones, and every document where the query may match without its
/// words; a lexeme no document holds has none. Read by key with the
/// caller's rights. The postings hold whole lexemes: a prefix (`word:*`)
/// is refused.
fn postings_lists(
    tree: &tsquery::Query<'_>,
    prepared: &score::Prepared<'_>,
    postings: pg_sys::Oid,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ErrorReport> {
    if tree.operands().any(|operand| operand.prefix) {
        return Err(Error::PrefixQuery.into());
    }
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
    readable(postings, "council_search_postings")?;
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
    Ok(read)
}

/// The lists `postings_lists` read, opened for `rank` and `terms_of`.
fn open_lists(read: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<postings::Read<'_>>, Error> {
    read.iter()
        .map(|(_, bytes)| postings::Read::new(bytes))
        .collect()
}

/// For each of `hits`, the lexemes of `lists` (the query's) it holds, with
/// their positions, as a tsvector's bytes.
fn terms_of(
    hits: &[(f32, i64)],
    lists: &[(Vec<u8>, Vec<u8>)],
    opened: &mut [postings::Read<'_>],
) -> Result<Vec<Vec<u8>>, Error> {
    // the lists are read in ascending order of document
    let mut order: Vec<usize> = (0..hits.len()).collect();
    order.sort_unstable_by_key(|&i| hits[i].1);
    for list in opened.iter_mut() {
        list.rewind();
    }
    let mut terms = vec![Vec::new(); hits.len()];
    for i in order {
        let mut held: Vec<(&[u8], Vec<u16>)> = Vec::new();
        for ((lexeme, _), list) in lists.iter().zip(opened.iter_mut()) {
            if lexeme.as_slice() == postings::EVERY_DOCUMENT {
                continue;
            }
            if let Some(posting) = list.find(hits[i].1)? {
                let mut positions = Vec::new();
                posting.positions(&mut positions)?;
                held.push((lexeme, positions));
            }
        }
        terms[i] = document::from_positions(&mut held)
            .ok_or(Error::MalformedPostings("a document no tsvector can hold"))?;
    }
    Ok(terms)
}

/// Every document of the `lists` read (lexeme, postings; `read` each
/// opened) that matches `tree`, with its BM25 score for `prepared`;
/// among `within` alone where it is given.
fn rank(
    query: &tsvector::TsQuery<'_>,
    tree: &tsquery::Query<'_>,
    prepared: &score::Prepared<'_>,
    lists: &[(Vec<u8>, Vec<u8>)],
    read: &mut [postings::Read<'_>],
    within: Option<&[i64]>,
) -> Result<Vec<(f32, i64)>, Error> {
    let list_of = |lexeme: &[u8]| lists.iter().position(|(l, _)| l.as_slice() == lexeme);
    let mut candidates = tree.candidates(
        &|operand| list_of(operand.lexeme).map_or(&[][..], |i| read[i].documents()),
        list_of(postings::EVERY_DOCUMENT).map_or(&[][..], |i| read[i].documents()),
    );
    if let Some(within) = within {
        candidates.retain(|document| within.binary_search(document).is_ok());
    }
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
