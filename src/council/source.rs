//! Reading a council.db: opened read-only and defensively, since the file may
//! come from anyone, and checked against the council schema before a row is
//! read.

use std::path::{Path, PathBuf};

use council_app::QuotedIdentifier;
use pgrx::pg_sys::panic::ErrorReport;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::catalog::{Table, TABLES};
use crate::postgres::{backend, interrupts, temp_space};
use crate::sqlstate::{self, SqlState};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("could not open \"{path}\": {reason}")]
    Open {
        path: PathBuf,
        reason: String,
        sqlstate: SqlState,
    },
    #[error("\"{path}\" is not an SQLite database: {reason}")]
    NotSqlite { path: PathBuf, reason: String },
    #[error("\"{path}\" holds no council tables")]
    NoCouncilTables { path: PathBuf, found: Vec<String> },
    #[error("\"{path}\" lacks the council table \"{table}\"")]
    MissingTable { path: PathBuf, table: &'static str },
    #[error("\"{table}\" in \"{path}\" is a {kind}, not a table")]
    NotATable {
        path: PathBuf,
        table: &'static str,
        kind: String,
    },
    #[error("table \"{table}\" in \"{path}\" lacks the column \"{column}\"")]
    MissingColumn {
        path: PathBuf,
        table: &'static str,
        column: &'static str,
    },
    #[error("the read was cancelled")]
    Interrupted,
    #[error("reading \"{path}\" failed while {action}: {reason}")]
    Read {
        path: PathBuf,
        action: String,
        reason: String,
    },
}

impl SourceError {
    pub fn sqlstate(&self) -> SqlState {
        match self {
            SourceError::Open { sqlstate, .. } => *sqlstate,
            // data_corrupted: the file is not what it claims to be
            SourceError::NotSqlite { .. } | SourceError::Read { .. } => sqlstate::DATA_CORRUPTED,
            SourceError::NoCouncilTables { .. }
            | SourceError::MissingTable { .. }
            | SourceError::NotATable { .. } => sqlstate::UNDEFINED_TABLE,
            SourceError::MissingColumn { .. } => sqlstate::UNDEFINED_COLUMN,
            SourceError::Interrupted => sqlstate::QUERY_CANCELED,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            SourceError::Open {
                sqlstate: sqlstate::OBJECT_IN_USE,
                ..
            } => Some(
                "stop the app, or import from the app's host with council-loader, which reads \
                 a live database consistently"
                    .into(),
            ),
            SourceError::Open { .. } => Some(
                "the server process opens the file: it needs read access to the file (and to \
                 its -wal file, if there is one) and search access to each directory above it; \
                 a relative path is taken from the data directory"
                    .into(),
            ),
            SourceError::NotSqlite { .. } | SourceError::NoCouncilTables { .. } => {
                Some("pass the app's data/council.db".into())
            }
            SourceError::MissingTable { .. } | SourceError::MissingColumn { .. } => {
                Some("the file must follow the app's schema version 1 or 2 (see the README)".into())
            }
            SourceError::NotATable { .. } => Some(
                "views and virtual tables are not read: they can run code from the file".into(),
            ),
            SourceError::Read { .. } => {
                Some("check the file with: sqlite3 council.db 'PRAGMA integrity_check'".into())
            }
            SourceError::Interrupted => None,
        }
    }
}

/// How a council table appears in the file.
#[derive(Debug)]
pub struct TableLayout {
    pub table: &'static Table,
    /// False for a v2 table absent from a v1 file: it counts as zero rows.
    pub present: bool,
    /// Columns the file has beyond the council schema's, in file order.
    pub extra_columns: Vec<String>,
}

pub struct Source {
    conn: Connection,
    /// The private copy `conn` reads, when the file needed one; dropped
    /// after `conn`.
    _snapshot: Option<tempfile::TempDir>,
    /// Set when the file is read as immutable, without SQLite's locks.
    unlocked: Option<council_file::Unlocked>,
    path: PathBuf,
    /// What SQLite's progress handler asks while the backend reads.
    interrupted: Option<fn() -> bool>,
}

/// What the file system or SQLite said, for the user to act on: which file,
/// and which access is missing.
fn open_error(err: council_file::OpenError) -> SourceError {
    use council_file::{OpenError, Part};
    let path_of = |path: &Path| path.to_owned();
    match err {
        OpenError::Access { path, part, source } => {
            let sqlstate = match source.kind() {
                std::io::ErrorKind::NotFound => sqlstate::UNDEFINED_FILE,
                std::io::ErrorKind::PermissionDenied => sqlstate::INSUFFICIENT_PRIVILEGE,
                _ => sqlstate::IO_ERROR,
            };
            let reason = match part {
                Part::Database => source.to_string(),
                Part::Wal => format!(
                    "{source}; this -wal file holds committed rows of the database, which are \
                     not read without it"
                ),
            };
            SourceError::Open {
                path,
                reason,
                sqlstate,
            }
        }
        OpenError::Directory { path } => SourceError::Open {
            path,
            reason: "it is a directory".into(),
            sqlstate: sqlstate::WRONG_OBJECT_TYPE,
        },
        OpenError::Snapshot { path, into, source } => SourceError::Open {
            reason: format!(
                "its -wal file holds rows, so it is read from a private copy, and copying it \
                 into {} failed: {source}",
                into.display()
            ),
            path: path_of(&path),
            sqlstate: sqlstate::DISK_FULL,
        },
        OpenError::Changing { path, tries } => SourceError::Open {
            path,
            reason: format!(
                "it and its -wal file changed while they were copied, {tries} times; is the \
                 app still writing to it?"
            ),
            sqlstate: sqlstate::OBJECT_IN_USE,
        },
        OpenError::Sqlite { path, source } => SourceError::Open {
            path,
            reason: source.to_string(),
            sqlstate: sqlstate::IO_ERROR,
        },
    }
}

/// SQLite checks the interrupt callback every this many virtual machine
/// steps: often enough to stop within a millisecond, rarely enough to cost
/// nothing measurable.
const PROGRESS_STEPS: i32 = 10_000;

impl Source {
    /// Opens `path` read-only, without writing anything beside it (see
    /// `council_file`). `interrupted` is polled while SQLite works; it
    /// returning true stops the current statement with [`SourceError::Interrupted`].
    pub fn open(
        path: &Path,
        interrupted: Option<fn() -> bool>,
        private_dir: &dyn Fn() -> std::io::Result<tempfile::TempDir>,
    ) -> Result<Source, SourceError> {
        let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let read = council_file::open(path, flags, private_dir).map_err(open_error)?;
        let (conn, snapshot, unlocked) = read.into_parts();
        let source = Source {
            conn,
            _snapshot: snapshot,
            unlocked,
            path: path.to_owned(),
            interrupted,
        };
        source.harden(interrupted)?;
        Ok(source)
    }

    /// Nothing in the file may run code or write anything: no triggers, no
    /// views, no functions a schema names, no memory-mapped reads of a file
    /// that might shrink under us.
    fn harden(&self, interrupted: Option<fn() -> bool>) -> Result<(), SourceError> {
        let settings = [
            (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
            (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
            (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
            (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
        ];
        for (setting, value) in settings {
            self.conn
                .set_db_config(setting, value)
                .map_err(|err| self.read_error("configuring the reader", &err))?;
        }
        self.conn
            .execute_batch(
                "PRAGMA query_only = ON; PRAGMA mmap_size = 0; PRAGMA cell_size_check = ON;",
            )
            .map_err(|err| self.classify(&err, "configuring the reader"))?;
        if let Some(interrupted) = interrupted {
            self.conn
                .progress_handler(PROGRESS_STEPS, Some(interrupted));
        }
        Ok(())
    }

    fn read_error(&self, action: &str, err: &rusqlite::Error) -> SourceError {
        SourceError::Read {
            path: self.path.clone(),
            action: action.to_owned(),
            reason: err.to_string(),
        }
    }

    /// After the last read: a file read without SQLite's locks must not
    /// have been written to meanwhile (an app that opened it after we did),
    /// or what was read may mix two states.
    pub fn check_unchanged(&self) -> Result<(), SourceError> {
        match &self.unlocked {
            Some(unlocked) => unlocked.check().map_err(open_error),
            None => Ok(()),
        }
    }

    /// Sorts SQLite's errors into what the user can act on.
    pub fn classify(&self, err: &rusqlite::Error, action: &str) -> SourceError {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::OperationInterrupted) => SourceError::Interrupted,
            Some(ErrorCode::NotADatabase) => SourceError::NotSqlite {
                path: self.path.clone(),
                reason: err.to_string(),
            },
            Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly) => SourceError::Open {
                path: self.path.clone(),
                reason: err.to_string(),
                sqlstate: sqlstate::IO_ERROR,
            },
            _ => self.read_error(action, err),
        }
    }

    /// Which council tables the file has, and what else.
    pub fn layout(&self) -> Result<Vec<TableLayout>, SourceError> {
        // A virtual table (FTS, R-tree, …) is declared as a table too: its
        // text tells it apart. It is refused before SQLite would parse its
        // module's shadow tables.
        let objects: Vec<(String, String)> = {
            let mut statement = self
                .conn
                .prepare(
                    "SELECT name, CASE WHEN type = 'table'
                                        AND upper(ltrim(sql)) LIKE 'CREATE VIRTUAL TABLE%'
                                       THEN 'virtual table' ELSE type END
                     FROM sqlite_schema WHERE type IN ('table', 'view')",
                )
                .map_err(|err| self.classify(&err, "reading the schema"))?;
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(|err| self.classify(&err, "reading the schema"))?;
            rows.collect::<Result<_, _>>()
                .map_err(|err| self.classify(&err, "reading the schema"))?
        };
        // SQLite table names are case-insensitive, as are its lookups.
        let find = |name: &str| {
            objects
                .iter()
                .find(|(object, _)| object.eq_ignore_ascii_case(name))
        };
        if !TABLES.iter().any(|t| find(t.name).is_some()) {
            return Err(SourceError::NoCouncilTables {
                path: self.path.clone(),
                found: objects.into_iter().map(|(name, _)| name).collect(),
            });
        }
        let mut layout = Vec::with_capacity(TABLES.len());
        for table in &TABLES {
            let Some((_, kind)) = find(table.name) else {
                if table.v2_only {
                    layout.push(TableLayout {
                        table,
                        present: false,
                        extra_columns: Vec::new(),
                    });
                    continue;
                }
                return Err(SourceError::MissingTable {
                    path: self.path.clone(),
                    table: table.name,
                });
            };
            if kind != "table" {
                return Err(SourceError::NotATable {
                    path: self.path.clone(),
                    table: table.name,
                    kind: kind.clone(),
                });
            }
            let columns = self.columns(table.name)?;
            for column in table.columns {
                if !columns.iter().any(|c| c.eq_ignore_ascii_case(column.name)) {
                    return Err(SourceError::MissingColumn {
                        path: self.path.clone(),
                        table: table.name,
                        column: column.name,
                    });
                }
            }
            let extra_columns = columns
                .into_iter()
                .filter(|c| !table.columns.iter().any(|k| k.name.eq_ignore_ascii_case(c)))
                .collect();
            layout.push(TableLayout {
                table,
                present: true,
                extra_columns,
            });
        }
        Ok(layout)
    }

    fn columns(&self, table: &str) -> Result<Vec<String>, SourceError> {
        let action = format!("reading the columns of {table}");
        let mut statement = self
            .conn
            .prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0")
            .map_err(|err| self.classify(&err, &action))?;
        let names = statement
            .query_map([table], |row| row.get::<_, String>(0))
            .map_err(|err| self.classify(&err, &action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| self.classify(&err, &action))?;
        Ok(names)
    }

    pub fn count(&self, layout: &TableLayout) -> Result<u64, SourceError> {
        if !layout.present {
            return Ok(0);
        }
        let action = format!("counting the rows of {}", layout.table.name);
        self.conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM {}",
                    QuotedIdentifier::new(layout.table.name)
                ),
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|err| self.classify(&err, &action))
    }

    /// Starts the read transaction every later read shares, so that counts
    /// and rows agree even if the app writes to the file meanwhile.
    pub fn begin_snapshot(&self) -> Result<(), SourceError> {
        self.conn
            .execute_batch("BEGIN")
            .map_err(|err| self.classify(&err, "starting a read transaction"))
    }

    /// The statement that reads every row of a present table: first the
    /// council columns in spec order, then the extra columns.
    pub fn select(&self, layout: &TableLayout) -> Result<rusqlite::Statement<'_>, SourceError> {
        let select_list = Source::row_columns(layout)
            .iter()
            .map(|name| QuotedIdentifier::new(name).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {select_list} FROM {}",
            QuotedIdentifier::new(layout.table.name)
        );
        self.conn
            .prepare(&sql)
            .map_err(|err| self.classify(&err, &format!("reading {}", layout.table.name)))
    }

    /// Stops SQLite's statements when `stop` returns true, in place of the
    /// backend's interrupt flags: a reading thread of the import's own may
    /// not look at those. [`Source::stop_on_interrupts`] gives them back.
    pub fn stop_when(&self, stop: impl FnMut() -> bool + Send + 'static) {
        self.conn.progress_handler(PROGRESS_STEPS, Some(stop));
    }

    /// Stops SQLite's statements on the backend's interrupts again, as
    /// opened.
    pub fn stop_on_interrupts(&self) {
        self.conn.progress_handler(PROGRESS_STEPS, self.interrupted);
    }

    /// The column names `select` reads, in its order.
    pub fn row_columns(layout: &TableLayout) -> Vec<String> {
        layout
            .table
            .columns
            .iter()
            .map(|c| c.name.to_owned())
            .chain(layout.extra_columns.iter().cloned())
            .collect()
    }
}

/// Opens the file for reading; a copy it needs goes to the server's
/// temporary space.
pub fn open_on_server(path: &Path) -> Result<Source, ErrorReport> {
    Source::open(path, Some(interrupts::pending), &temp_space::private_dir).map_err(|err| {
        let mut report = ErrorReport::from(err);
        if path.is_relative() {
            report = report.set_detail(format!(
                "a relative path is taken from the server's data directory: {}",
                backend::data_directory().join(path).display()
            ));
        }
        report
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(sql: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("council.db");
        let conn = Connection::open(&path).expect("create");
        conn.execute_batch(sql).expect("schema");
        drop(conn);
        (dir, path)
    }

    const V1: &str = "
        CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, is_pinned INTEGER DEFAULT 0, is_hidden INTEGER DEFAULT 0,
            message_count INTEGER DEFAULT 0);
        CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL,
            role TEXT NOT NULL, content TEXT, created_at TEXT NOT NULL);
        CREATE TABLE stage1_responses (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL,
            model TEXT NOT NULL, response TEXT NOT NULL, confidence REAL, base_model TEXT,
            sample_id INTEGER, created_at TEXT NOT NULL);
        CREATE TABLE stage2_rankings (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL,
            evaluator_model TEXT NOT NULL, raw_ranking TEXT NOT NULL, parsed_ranking TEXT,
            debate_round INTEGER DEFAULT 1, rubric_scores TEXT, created_at TEXT NOT NULL);
        CREATE TABLE stage3_synthesis (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL,
            chairman_model TEXT NOT NULL, response TEXT NOT NULL, meta_evaluation TEXT,
            created_at TEXT NOT NULL);
        CREATE TABLE deliberation_metadata (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL UNIQUE,
            label_to_model TEXT NOT NULL, aggregate_rankings TEXT, consensus TEXT, features TEXT,
            stage1_consensus TEXT, debate_history TEXT, voting_method TEXT, created_at TEXT NOT NULL);";

    #[test]
    fn a_v1_file_has_no_api_key_tables_and_that_is_fine() {
        let (_dir, path) = file(V1);
        let source = Source::open(&path, None, &tempfile::tempdir).expect("open");
        let layout = source.layout().expect("layout");
        assert_eq!(layout.len(), 8);
        assert!(layout.iter().take(6).all(|l| l.present));
        assert!(layout.iter().skip(6).all(|l| !l.present));
        assert_eq!(source.count(&layout[7]).ok(), Some(0));
    }

    #[test]
    fn extra_columns_are_listed_and_missing_ones_refused() {
        let (_dir, path) = file(&format!(
            "{V1} ALTER TABLE messages ADD COLUMN tokens INTEGER;"
        ));
        let source = Source::open(&path, None, &tempfile::tempdir).expect("open");
        let layout = source.layout().expect("layout");
        assert_eq!(layout[1].extra_columns, vec!["tokens".to_owned()]);

        let (_dir, path) = file(&V1.replace("meta_evaluation TEXT,", ""));
        let err =
            Source::open(&path, None, &tempfile::tempdir).and_then(|s| s.layout().map(|_| ()));
        assert!(
            matches!(
                err,
                Err(SourceError::MissingColumn {
                    column: "meta_evaluation",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_view_named_like_a_council_table_is_refused() {
        let v1_with_view = V1.replace(
            "CREATE TABLE stage3_synthesis (",
            "CREATE VIEW stage3_synthesis AS SELECT 1 AS id; CREATE TABLE unused (",
        );
        let (_dir, path) = file(&v1_with_view);
        let err =
            Source::open(&path, None, &tempfile::tempdir).and_then(|s| s.layout().map(|_| ()));
        assert!(
            matches!(
                err,
                Err(SourceError::NotATable {
                    table: "stage3_synthesis",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    /// A council table declared as a virtual table is refused, and no
    /// module a crafted file could name is compiled in.
    #[test]
    fn virtual_tables_are_refused_and_their_modules_absent() {
        for module in ["fts3", "fts4", "fts5", "rtree", "dbstat"] {
            let conn = Connection::open_in_memory().expect("memory");
            let created = conn.execute_batch(&format!("CREATE VIRTUAL TABLE v USING {module}(a)"));
            assert!(
                created.is_err_and(|e| e.to_string().contains("no such module")),
                "{module} is compiled in"
            );
        }
        let (_dir, path) = file(V1);
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE VIRTUAL TABLE stage3_synthesis USING fts5(id, message_id, chairman_model, response, meta_evaluation, created_at)'
             WHERE name = 'stage3_synthesis';",
        )
        .expect("declare it virtual");
        drop(conn);
        let err =
            Source::open(&path, None, &tempfile::tempdir).and_then(|s| s.layout().map(|_| ()));
        assert!(
            matches!(&err, Err(SourceError::NotATable { table: "stage3_synthesis", kind, .. }) if kind == "virtual table"),
            "{err:?}"
        );
    }

    #[test]
    fn files_that_are_not_council_databases_are_named_as_such() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.db");
        let err = Source::open(&missing, None, &tempfile::tempdir).err();
        assert!(
            matches!(
                err,
                Some(SourceError::Open {
                    sqlstate: sqlstate::UNDEFINED_FILE,
                    ..
                })
            ),
            "{err:?}"
        );

        let err = Source::open(dir.path(), None, &tempfile::tempdir).err();
        assert!(
            matches!(
                err,
                Some(SourceError::Open {
                    sqlstate: sqlstate::WRONG_OBJECT_TYPE,
                    ..
                })
            ),
            "{err:?}"
        );

        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "this is not a database, but it is long enough to have a header ".repeat(20),
        )
        .expect("write");
        let err =
            Source::open(&text, None, &tempfile::tempdir).and_then(|s| s.layout().map(|_| ()));
        assert!(matches!(err, Err(SourceError::NotSqlite { .. })), "{err:?}");

        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, "").expect("write");
        let err =
            Source::open(&empty, None, &tempfile::tempdir).and_then(|s| s.layout().map(|_| ()));
        assert!(
            matches!(err, Err(SourceError::NoCouncilTables { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn rows_stream_with_extra_columns_last() {
        let (_dir, path) = file(&format!(
            "{V1} ALTER TABLE messages ADD COLUMN tokens INTEGER;
             INSERT INTO messages VALUES (1, 'c', 'user', 'hi', '', 42);"
        ));
        let source = Source::open(&path, None, &tempfile::tempdir).expect("open");
        let layout = source.layout().expect("layout");
        let mut statement = source.select(&layout[1]).expect("select");
        let seen: Vec<(i64, i64)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(5)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(seen, vec![(1, 42)]);
        assert_eq!(
            Source::row_columns(&layout[1]).last().map(String::as_str),
            Some("tokens")
        );
    }

    #[test]
    fn the_interrupt_callback_stops_sqlite_inside_a_long_statement() {
        let (_dir, path) = file(&format!(
            "{V1} INSERT INTO stage1_responses (id, message_id, model, response, created_at)
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
                 SELECT i, i, 'm', 'r', '' FROM n;"
        ));
        let calm = Source::open(&path, Some(|| false), &tempfile::tempdir).expect("open");
        let layout = calm.layout().expect("layout");
        assert_eq!(calm.count(&layout[2]).ok(), Some(200_000));
        let cancelled = Source::open(&path, Some(|| true), &tempfile::tempdir).expect("open");
        let mut statement = cancelled.select(&layout[2]).expect("select");
        let mut rows = statement.query([]).expect("query");
        let mut read = 0;
        let err = loop {
            match rows.next() {
                Ok(Some(_)) => read += 1,
                Ok(None) => break None,
                Err(err) => break Some(cancelled.classify(&err, "reading")),
            }
        };
        assert!(
            matches!(err, Some(SourceError::Interrupted)),
            "{err:?} after {read} rows"
        );
        assert!(read < 200_000);
    }
}
