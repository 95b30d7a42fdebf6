//! `council_import`: every row of a council.db into the council tables, in
//! the caller's transaction, through COPY.
//!
//! Per table, in dependency order: read the SQLite rows in one snapshot, map
//! each value, decide for each row whether it is imported, skipped (already
//! present, identical) or rejected (with its reason), and stream the
//! imported ones into COPY. Strict mode turns the first rejection into an
//! error, which rolls the whole import back.

pub mod access;
pub mod copy;
mod dry_run;
pub mod row;
pub mod source;
pub mod tables;
pub mod trigger_skip;
pub mod upload;

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::error::report;
use crate::sqlstate::{self, SqlState};
use row::{Key, Problem, Value};
use source::{Source, SourceError, TableLayout};
use tables::{Table, TABLES};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Strict,
    Quarantine,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, ErrorReport> {
        match text {
            "strict" => Ok(Mode::Strict),
            "quarantine" => Ok(Mode::Quarantine),
            other => Err(report(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("unknown import mode \"{}\"", mapping_cut(other)),
                None,
                Some("mode is 'strict' (stop at the first bad row) or 'quarantine' (keep bad rows in council_import_rejects)".into()),
            )),
        }
    }
}

fn mapping_cut(text: &str) -> String {
    crate::mapping::text::cut(text, row::SHOWN_CHARS)
}

/// What happened to one source table's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub source_rows: i64,
    pub imported: i64,
    pub skipped: i64,
    pub rejected: i64,
}

const STRICT_HINT: &str =
    "run with mode => 'quarantine' to import the rest and keep this row in council_import_rejects";

impl From<SourceError> for ErrorReport {
    fn from(err: SourceError) -> ErrorReport {
        report(
            err.sqlstate(),
            format!("council_import: {err}"),
            None,
            err.hint(),
        )
    }
}

pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Where the extension's tables are: its schema, quoted for SQL.
pub(crate) fn extension_schema() -> Result<String, ErrorReport> {
    let schema = read_one::<String>(
        "SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_extension e
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
         WHERE e.extname OPERATOR(pg_catalog.=) 'llm_council'",
        &[],
    )
    .map_err(spi_error)?
    .ok_or_else(|| {
        report(
            sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "the llm_council extension is not installed in this database",
            None,
            None,
        )
    })?;
    Ok(quote_identifier(&schema))
}

/// The first column of the first row of a read-only query, or None. Unlike
/// `Spi::get_one`, it takes no transaction id, so it also works on a hot
/// standby and in read-only transactions.
pub(crate) fn read_one<A: pgrx::datum::FromDatum + pgrx::datum::IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> Result<Option<A>, pgrx::spi::Error> {
    Spi::connect(|client| {
        let table = client.select(query, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<A>()
    })
}

pub(crate) fn spi_error(err: pgrx::spi::Error) -> ErrorReport {
    report(
        sqlstate::INTERNAL_ERROR,
        format!("council_import: internal query failed: {err}"),
        None,
        None,
    )
}

/// SQLite's progress handler: a pending cancel or timeout stops the
/// statement SQLite is running, and the import then raises it.
pub(crate) fn interrupt_pending() -> bool {
    unsafe { pg_sys::InterruptPending != 0 }
}

/// Raises the pending interrupt (cancel, statement_timeout, termination) if
/// there is one.
pub(crate) fn check_for_interrupts() {
    pg_sys::check_for_interrupts!();
}

pub(crate) fn interrupted_error() -> ErrorReport {
    check_for_interrupts();
    report(
        sqlstate::QUERY_CANCELED,
        "council_import: canceling statement due to user request",
        None,
        None,
    )
}

/// Rows in a table's key set: present in the target before the import, or
/// imported or skipped by it.
type KeySet = HashSet<Key>;

/// The state an import carries from table to table.
struct Run {
    schema: String,
    /// the council tables' oids, resolved once
    relids: HashMap<&'static str, pg_sys::Oid>,
    mode: Mode,
    /// PostgreSQL's per-row foreign-key triggers are redundant (see
    /// `foreign_keys_checked_here`) and skipped.
    skip_fk_triggers: bool,
    /// keys present after this import, for the tables children refer to
    present: HashMap<&'static str, KeySet>,
    /// keys rejected by this import, to say why a child is rejected
    rejected: HashMap<&'static str, KeySet>,
}

struct Reject {
    source_id: Option<String>,
    reason: String,
    row: serde_json::Value,
}

/// How a source row whose id is already in the target compares with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    Identical,
    Different,
}

/// Opens the file for reading; a copy it needs goes to the server's
/// temporary space.
pub(crate) fn open_source(path: &Path) -> Result<Source, ErrorReport> {
    Source::open(
        path,
        Some(interrupt_pending),
        &crate::temp_space::private_dir,
    )
    .map_err(|err| {
        let mut report = ErrorReport::from(err);
        if path.is_relative() {
            // SAFETY: DataDir is set at start-up and never changes after.
            let data_directory = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) };
            let data_directory = Path::new(std::ffi::OsStr::from_bytes(data_directory.to_bytes()));
            report = report.set_detail(format!(
                "a relative path is taken from the server's data directory: {}",
                data_directory.join(path).display()
            ));
        }
        report
    })
}

impl Run {
    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", self.schema, quote_identifier(table))
    }

    fn existing_keys(&self, table: &Table) -> Result<KeySet, ErrorReport> {
        let key_type = table.key().kind;
        let query = format!("SELECT id::text FROM {}", self.qualified(table.name));
        Spi::connect(|client| {
            let mut keys = KeySet::new();
            for row in client.select(query.as_str(), None, &[])? {
                let Some(text) = row.get::<String>(1)? else {
                    continue;
                };
                let key = match key_type {
                    tables::Kind::ConversationId => {
                        uuid::Uuid::parse_str(&text).ok().map(Key::Uuid)
                    }
                    _ => text.parse::<i64>().ok().map(Key::Int),
                };
                keys.extend(key);
            }
            Ok::<_, pgrx::spi::Error>(keys)
        })
        .map_err(spi_error)
    }

    fn existing_unique_values(
        &self,
        table: &Table,
        column: &str,
    ) -> Result<HashSet<String>, ErrorReport> {
        let query = format!(
            "SELECT {}::text FROM {}",
            quote_identifier(column),
            self.qualified(table.name)
        );
        Spi::connect(|client| {
            let mut values = HashSet::new();
            for row in client.select(query.as_str(), None, &[])? {
                values.extend(row.get::<String>(1)?);
            }
            Ok::<_, pgrx::spi::Error>(values)
        })
        .map_err(spi_error)
    }

    /// The query that compares a mapped source row with the target row of
    /// the same id: no row, true (identical) or false (different).
    fn comparison_query(&self, table: &Table) -> String {
        compare_query(&self.qualified(table.name), table)
    }
}

/// `SELECT ROW(t.a, t.b, …) IS NOT DISTINCT FROM ROW($2::…, $3::…, …) FROM t
/// WHERE t.id = $1::…`, every value passed as text and cast to the column's
/// type, so jsonb compares as jsonb and times as times.
pub(crate) fn compare_query(qualified: &str, table: &Table) -> String {
    let mut target = Vec::new();
    let mut params = Vec::new();
    let mut n = 1;
    for column in table.columns.iter().skip(1) {
        n += 1;
        target.push(format!("t.{}", quote_identifier(column.name)));
        params.push(format!("${n}::{}", column.kind.sql_type()));
    }
    if table.key().kind == tables::Kind::ConversationId {
        n += 1;
        target.push("t.legacy_id".into());
        params.push(format!("${n}::text"));
    }
    format!(
        "SELECT ROW({}) IS NOT DISTINCT FROM ROW({}) FROM {qualified} t WHERE t.id = $1::{}",
        target.join(", "),
        params.join(", "),
        table.key().kind.sql_type()
    )
}

/// The comparison query's parameters for a mapped row.
fn compare_args(values: &[Value<'_>]) -> Vec<Option<String>> {
    let mut args: Vec<Option<String>> = values.iter().map(Value::sql_text).collect();
    if let Some(first) = values.first() {
        if matches!(first, Value::Conversation { .. }) {
            args.push(first.legacy_text());
        }
    }
    args
}

pub(crate) fn compare(query: &str, values: &[Value<'_>]) -> Result<Option<Existing>, ErrorReport> {
    let args: Vec<pgrx::datum::DatumWithOid> =
        compare_args(values).into_iter().map(Into::into).collect();
    read_one::<bool>(query, &args)
        .map(|same| {
            same.map(|same| {
                if same {
                    Existing::Identical
                } else {
                    Existing::Different
                }
            })
        })
        .map_err(spi_error)
}

fn notice(message: String) {
    pgrx::notice!("{message}");
}

/// How often the import reports progress.
const PROGRESS_ROWS: i64 = 10_000;
/// How much COPY data one call of the producer prepares.
const COPY_CHUNK: usize = 1 << 18;

fn row_error(
    table: &Table,
    source_id: &Option<String>,
    problem: &Problem,
    hint: &str,
) -> ErrorReport {
    let id = source_id
        .as_deref()
        .map(mapping_cut)
        .unwrap_or_else(|| "NULL".into());
    report(
        problem.sqlstate,
        format!(
            "council_import: {} row {id}, column {}: {} {}",
            table.name, problem.column, problem.value, problem.reason
        ),
        Some(format!(
            "table {}, source row id {id}, column {}",
            table.name, problem.column
        )),
        Some(hint.into()),
    )
}

fn import_table(
    run: &mut Run,
    source: &Source,
    layout: &TableLayout,
) -> Result<TableReport, ErrorReport> {
    let table = layout.table;
    let mut report_row = TableReport {
        table: table.name,
        ..TableReport::default()
    };
    if !layout.present {
        // Rows of a table the file lacks can still be parents: the ones
        // already in the database.
        if is_parent(table) {
            let existing = run.existing_keys(table)?;
            run.present.insert(table.name, existing);
        }
        return Ok(report_row);
    }
    let total = i64::try_from(source.count(layout)?).unwrap_or(i64::MAX);
    notice(format!("llm_council import: {} 0/{total}", table.name));

    let existing = run.existing_keys(table)?;
    let unique_column = table
        .unique
        .and_then(|name| table.column_index(name).map(|i| (name, i)));
    let mut unique_seen = match unique_column {
        Some((name, _)) if !existing.is_empty() => run.existing_unique_values(table, name)?,
        _ => HashSet::new(),
    };
    let parent = table
        .parent
        .and_then(|p| table.column_index(p.column).map(|i| (p, i)));
    // Borrowed out of the run for the length of this table, not copied.
    let parent_present = parent.map(|(p, _)| run.present.remove(p.table).unwrap_or_default());
    let parent_rejected = parent.map(|(p, _)| run.rejected.remove(p.table).unwrap_or_default());
    let compare_query = run.comparison_query(table);
    let columns = Source::row_columns(layout);
    let relid = run.relids[table.name];
    let target_columns = table.target_columns();

    let mut present = existing.clone();
    let mut rejected_keys = KeySet::new();
    let mut rejects: Vec<Reject> = Vec::new();
    let mut imported_keys = KeySet::new();
    let mode = run.mode;

    let mut statement = source.select(layout)?;
    let mut rows = statement.query([]).map_err(|err| {
        ErrorReport::from(source.classify(&err, &format!("reading {}", table.name)))
    })?;
    let mut header_written = false;
    let mut seen = 0i64;
    let mut skipped = 0i64;
    let mut imported_count = 0i64;

    let mut produce = |buf: &mut Vec<u8>| -> Result<bool, ErrorReport> {
        if !header_written {
            copy::header(buf);
            header_written = true;
        }
        while buf.len() < COPY_CHUNK {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => {
                    copy::trailer(buf);
                    return Ok(false);
                }
                Err(err) => {
                    return Err(
                        match source.classify(&err, &format!("reading {}", table.name)) {
                            SourceError::Interrupted => interrupted_error(),
                            other => other.into(),
                        },
                    )
                }
            };
            seen += 1;
            if seen % 1000 == 0 {
                check_for_interrupts();
            }
            if seen % PROGRESS_ROWS == 0 {
                notice(format!("llm_council import: {} {seen}/{total}", table.name));
            }
            let source_id = row::source_id(row);
            let decision = decide(
                table,
                row,
                &compare_query,
                &existing,
                &mut unique_seen,
                unique_column.map(|(_, i)| i),
                parent.map(|(p, i)| (p.table, i)),
                parent_present.as_ref(),
                parent_rejected.as_ref(),
                &imported_keys,
            )?;
            let decision = match decision {
                Decision::Import(_, key) => match unplaced_value(row, table, &columns) {
                    Some(problem) => Decision::Reject(problem, Some(key)),
                    None => decision,
                },
                other => other,
            };
            match decision {
                Decision::Import(values, key) => {
                    copy::row(buf, &values);
                    imported_count += 1;
                    imported_keys.insert(key);
                    present.insert(key);
                }
                Decision::Skip(key) => {
                    skipped += 1;
                    present.insert(key);
                }
                Decision::Reject(problem, key) => {
                    if mode == Mode::Strict {
                        return Err(row_error(table, &source_id, &problem, STRICT_HINT));
                    }
                    // A rejected key is no parent: rows of the file that
                    // hang off it are rejected too, also when the database
                    // has a row of that id (it is not the file's row).
                    if let Some(key) = key {
                        present.remove(&key);
                        rejected_keys.insert(key);
                    }
                    rejects.push(Reject {
                        source_id,
                        reason: format!(
                            "column {}: {} {}",
                            problem.column, problem.value, problem.reason
                        ),
                        row: row::verbatim(&columns, row),
                    });
                }
            }
        }
        Ok(true)
    };
    let inserted = copy::copy_into(relid, &target_columns, run.skip_fk_triggers, &mut produce);
    drop(rows);

    if i64::try_from(inserted).ok() != Some(imported_count) {
        return Err(report(
            sqlstate::INTERNAL_ERROR,
            format!(
                "council_import: COPY into {} inserted {inserted} rows, expected {imported_count}",
                table.name
            ),
            None,
            None,
        ));
    }
    save_rejects(run, table, &rejects)?;
    report_row.source_rows = seen;
    report_row.imported = imported_count;
    report_row.skipped = skipped;
    report_row.rejected = i64::try_from(rejects.len()).unwrap_or(i64::MAX);
    notice(format!(
        "llm_council import: {} done: {} imported, {} skipped, {} rejected",
        table.name, report_row.imported, report_row.skipped, report_row.rejected
    ));
    if let (Some((p, _)), Some(present), Some(rejected)) = (parent, parent_present, parent_rejected)
    {
        run.present.insert(p.table, present);
        run.rejected.insert(p.table, rejected);
    }
    // Only the tables others refer to keep their keys: memory grows with
    // the parents' rows, not with every row of the file.
    if is_parent(table) {
        run.present.insert(table.name, present);
        run.rejected.insert(table.name, rejected_keys);
    }
    Ok(report_row)
}

fn is_parent(table: &Table) -> bool {
    TABLES
        .iter()
        .any(|t| t.parent.is_some_and(|p| p.table == table.name))
}

enum Decision<'a> {
    Import(Vec<Value<'a>>, Key),
    Skip(Key),
    Reject(Problem, Option<Key>),
}

#[allow(clippy::too_many_arguments)]
fn decide<'a>(
    table: &Table,
    row: &'a rusqlite::Row<'_>,
    compare_query: &str,
    existing: &KeySet,
    unique_seen: &mut HashSet<String>,
    unique_column: Option<usize>,
    parent: Option<(&'static str, usize)>,
    parent_present: Option<&KeySet>,
    parent_rejected: Option<&KeySet>,
    imported: &KeySet,
) -> Result<Decision<'a>, ErrorReport> {
    let values = match row::map_row(table, row) {
        Ok(values) => values,
        Err(problem) => {
            let key = row
                .get_ref(0)
                .ok()
                .and_then(|v| row::map_value(table.key(), v).ok())
                .and_then(|v| Key::of(&v));
            return Ok(Decision::Reject(problem, key));
        }
    };
    let Some(key) = values.first().and_then(Key::of) else {
        return Ok(Decision::Reject(
            Problem {
                column: table.key().name.into(),
                sqlstate: sqlstate::NOT_NULL_VIOLATION,
                reason: "is not a usable id".into(),
                value: String::new(),
            },
            None,
        ));
    };
    let key_problem = |sqlstate: SqlState, reason: String| Problem {
        column: table.key().name.into(),
        sqlstate,
        reason,
        value: key.to_string(),
    };
    if imported.contains(&key) {
        return Ok(Decision::Reject(
            key_problem(sqlstate::UNIQUE_VIOLATION, "is the id of another row of this file (ids that differ only in spelling map to one UUID)".into()),
            Some(key),
        ));
    }
    if existing.contains(&key) {
        return Ok(match compare(compare_query, &values)? {
            Some(Existing::Identical) => Decision::Skip(key),
            Some(Existing::Different) | None => Decision::Reject(
                key_problem(
                    sqlstate::UNIQUE_VIOLATION,
                    "is already in the database with different content; it was left as it is"
                        .into(),
                ),
                Some(key),
            ),
        });
    }
    if let (Some((parent_table, i)), Some(present)) = (parent, parent_present) {
        if let Some(parent_key) = values.get(i).and_then(Key::of) {
            if !present.contains(&parent_key) {
                let reason = if parent_rejected.is_some_and(|r| r.contains(&parent_key)) {
                    format!("refers to {parent_table} row {parent_key}, which was rejected")
                } else {
                    format!("refers to {parent_table} row {parent_key}, which neither the file nor the database has")
                };
                return Ok(Decision::Reject(
                    Problem {
                        column: table.columns[i].name.into(),
                        sqlstate: sqlstate::FOREIGN_KEY_VIOLATION,
                        reason,
                        value: parent_key.to_string(),
                    },
                    Some(key),
                ));
            }
        }
    }
    if let Some(i) = unique_column {
        if let Some(text) = values.get(i).and_then(Value::sql_text) {
            if !unique_seen.insert(text.clone()) {
                return Ok(Decision::Reject(
                    Problem {
                        column: table.columns[i].name.into(),
                        sqlstate: sqlstate::UNIQUE_VIOLATION,
                        reason: "is already taken by another row; the column is unique".into(),
                        value: mapping_cut(&text),
                    },
                    Some(key),
                ));
            }
        }
    }
    Ok(Decision::Import(values, key))
}

/// The first non-NULL value in a column the council schema lacks: it has no
/// place in PostgreSQL, so its row goes to the quarantine whole rather than
/// lose it. (Strict mode refuses such files before reading a row.)
fn unplaced_value(row: &rusqlite::Row<'_>, table: &Table, columns: &[String]) -> Option<Problem> {
    (table.columns.len()..columns.len()).find_map(|i| {
        let value = row.get_ref(i).ok()?;
        if matches!(value, rusqlite::types::ValueRef::Null) {
            return None;
        }
        Some(Problem {
            column: columns[i].clone().into(),
            sqlstate: sqlstate::UNDEFINED_COLUMN,
            reason: "is in a column the council schema does not have; the row is kept here whole"
                .into(),
            value: row::show(value),
        })
    })
}

fn save_rejects(run: &Run, table: &Table, rejects: &[Reject]) -> Result<(), ErrorReport> {
    if rejects.is_empty() {
        return Ok(());
    }
    let query = format!(
        "INSERT INTO {} (source_table, source_id, reason, row) VALUES ($1, $2, $3, $4::jsonb)",
        run.qualified("council_import_rejects")
    );
    Spi::connect_mut(|client| {
        let statement = client.prepare_mut(
            query.as_str(),
            &[
                pg_sys::TEXTOID.into(),
                pg_sys::TEXTOID.into(),
                pg_sys::TEXTOID.into(),
                pg_sys::TEXTOID.into(),
            ],
        )?;
        for reject in rejects {
            client.update(
                &statement,
                None,
                &[
                    table.name.into(),
                    reject.source_id.clone().into(),
                    reject.reason.clone().into(),
                    reject.row.to_string().into(),
                ],
            )?;
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .map_err(spi_error)
}

/// Moves each identity sequence past the largest id its table now holds,
/// so the app's next insert gets a fresh id.
fn advance_sequences(run: &Run) -> Result<(), ErrorReport> {
    for table in TABLES
        .iter()
        .filter(|t| t.key().kind == tables::Kind::BigInt)
    {
        let qualified = run.qualified(table.name);
        // last_value is NULL while the sequence was never used.
        let query = format!(
            "SELECT setval(pg_get_serial_sequence($1, 'id'), m.max_id)
             FROM (SELECT max(id) AS max_id FROM {qualified}) m
             WHERE m.max_id > coalesce((SELECT last_value FROM pg_catalog.pg_sequences
                                       WHERE format('%I.%I', schemaname, sequencename)::regclass
                                             = pg_get_serial_sequence($1, 'id')::regclass), 0)"
        );
        Spi::run_with_args(&query, &[qualified.into()]).map_err(spi_error)?;
    }
    Ok(())
}

/// SQLite text is UTF-8; so must the database be that holds it.
pub(crate) fn check_utf8_database() -> Result<(), ErrorReport> {
    if unsafe { pg_sys::GetDatabaseEncoding() } == pg_sys::pg_enc::PG_UTF8 as i32 {
        return Ok(());
    }
    Err(report(
        sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
        "llm_council needs a database with encoding UTF8",
        None,
        Some("create the database with ENCODING 'UTF8'".into()),
    ))
}

/// The import itself, shared by the path and the upload forms.
pub fn run_import(path: &Path, mode: Mode, dry_run: bool) -> Result<Vec<TableReport>, ErrorReport> {
    check_utf8_database()?;
    // Privileges first: a role that may not finish the import gets no lock,
    // and has no file copied for it.
    let schema = extension_schema()?;
    let tables = access::council_relids(&schema)?;
    access::check_import(&schema, &tables)?;
    let source = open_source(path)?;
    let layout = source.layout()?;
    if mode == Mode::Strict {
        if let Some(extra) = layout.iter().find(|l| !l.extra_columns.is_empty()) {
            return Err(report(
                sqlstate::INVALID_COLUMN_REFERENCE,
                format!(
                    "council_import: table {} has columns the council schema does not: {}",
                    extra.table.name,
                    extra.extra_columns.join(", ")
                ),
                Some("their values have no place in PostgreSQL and would be lost".into()),
                Some("run with mode => 'quarantine' to import the rows without them (a WARNING counts what is left out)".into()),
            ));
        }
    }
    source.begin_snapshot()?;

    let mut run = Run {
        schema,
        relids: tables.iter().map(|t| (t.name, t.relid)).collect(),
        mode,
        skip_fk_triggers: false,
        present: HashMap::new(),
        rejected: HashMap::new(),
    };
    // Concurrent writers could invalidate what the import checks (parents,
    // existing ids); readers go on undisturbed. Parents first, like every
    // import, so two imports never wait on each other in a cycle.
    for table in &TABLES {
        unsafe {
            pg_sys::LockRelationOid(
                run.relids[table.name],
                pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE,
            )
        };
    }

    // Read what the tables hold as of now, after the locks: writers that
    // committed while we waited for them are seen.
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
    run.skip_fk_triggers = trigger_skip::foreign_keys_checked_here(&tables)?;
    pgrx::debug1!(
        "llm_council import: foreign keys checked by {}",
        if run.skip_fk_triggers {
            "the import (PostgreSQL's per-row triggers skipped)"
        } else {
            "PostgreSQL's per-row triggers"
        }
    );

    let import_all = |run: &mut Run| -> Result<Vec<TableReport>, ErrorReport> {
        let mut reports = Vec::with_capacity(layout.len());
        for table_layout in &layout {
            reports.push(import_table(run, &source, table_layout)?);
        }
        source.check_unchanged()?;
        Ok(reports)
    };
    let reports = if dry_run {
        dry_run::rolled_back(|| import_all(&mut run))?
    } else {
        let reports = import_all(&mut run)?;
        advance_sequences(&run)?;
        reports
    };
    // SAFETY: pops the snapshot pushed above; on an error the transaction's
    // (or the caller's subtransaction's) abort pops it instead.
    unsafe { pg_sys::PopActiveSnapshot() };
    Ok(reports)
}

type ReportRow = (
    name!(table_name, String),
    name!(source_rows, i64),
    name!(imported, i64),
    name!(skipped, i64),
    name!(rejected, i64),
);

fn rows(reports: Vec<TableReport>) -> TableIterator<'static, ReportRow> {
    TableIterator::new(reports.into_iter().map(|r| {
        (
            r.table.to_owned(),
            r.source_rows,
            r.imported,
            r.skipped,
            r.rejected,
        )
    }))
}

#[pg_extern(name = "council_import", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_import_path(
    path: &str,
    mode: default!(&str, "'strict'"),
    dry_run: default!(bool, false),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(imported, i64),
            name!(skipped, i64),
            name!(rejected, i64),
        ),
    >,
    ErrorReport,
> {
    access::check_server_file_access("council_import")?;
    let mode = Mode::parse(mode)?;
    // A relative path names a file in the data directory (the backend's
    // working directory), as for COPY.
    Ok(rows(run_import(Path::new(path), mode, dry_run)?))
}

#[pg_extern(name = "council_import", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_import_upload(
    data: &[u8],
    mode: default!(&str, "'strict'"),
    dry_run: default!(bool, false),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(imported, i64),
            name!(skipped, i64),
            name!(rejected, i64),
        ),
    >,
    ErrorReport,
> {
    let mode = Mode::parse(mode)?;
    let file = upload::store(data, pg_sys::ACL_INSERT, "INSERT")?;
    let reports = run_import(file.path(), mode, dry_run)?;
    drop(file);
    Ok(rows(reports))
}

/// The file this transaction uploaded with `council_upload`, imported.
#[pg_extern(name = "council_import_upload", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn council_import_streamed(
    mode: default!(&str, "'strict'"),
    dry_run: default!(bool, false),
) -> Result<
    TableIterator<
        'static,
        (
            name!(table_name, String),
            name!(source_rows, i64),
            name!(imported, i64),
            name!(skipped, i64),
            name!(rejected, i64),
        ),
    >,
    ErrorReport,
> {
    let mode = Mode::parse(mode)?;
    let path = upload::current_path()?;
    Ok(rows(run_import(&path, mode, dry_run)?))
}

extension_sql!(
    "REVOKE ALL ON FUNCTION council_import(text, text, boolean) FROM PUBLIC;",
    name = "import_privileges",
    requires = [council_import_path]
);
