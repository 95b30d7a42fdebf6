//! `council-loader export`: the database back into a council.db on this
//! host, from any server. The server writes the file (`council_export_stream`,
//! the same file `council_export(path)` writes) and streams its bytes; they go
//! into a file of a temporary name beside the target, which takes the
//! target's name only once complete and synced, and never replaces a file.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use council_app::catalog::EXTENSION_QUERY;
use council_app::tables::COUNCIL;
use council_app::QuotedIdentifier;
use postgres::fallible_iterator::FallibleIterator as _;
use postgres::Client;
use rusqlite::OpenFlags;

/// Why an export did not produce its file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{} already exists; an export never replaces a file", .0.display())]
    Exists(PathBuf),
    #[error("could not write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the llm_council extension is not installed in database \"{database}\": run \
         council-loader install (with the same connection settings)"
    )]
    NotInstalled { database: String },
    #[error(
        "llm_council {version} in database \"{database}\" cannot export: run council-loader \
         install, or ALTER EXTENSION llm_council UPDATE"
    )]
    TooOld { database: String, version: String },
    #[error("the exported file does not read back: {0}")]
    ReadBack(String),
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
}

/// What the export wrote.
pub struct Exported {
    pub path: PathBuf,
    pub bytes: u64,
    /// rows per council table, counted in the written file
    pub tables: Vec<(String, i64)>,
}

impl Exported {
    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|(_, rows)| rows).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.tables
                .iter()
                .map(|(table, rows)| serde_json::json!({ "table_name": table, "rows": rows }))
                .collect(),
        )
    }

    pub fn to_text(&self) -> String {
        let mut text = format!("{:<24} {:>9}\n", "table_name", "rows");
        for (table, rows) in &self.tables {
            text.push_str(&format!("{table:<24} {rows:>9}\n"));
        }
        text
    }
}

/// Streams the database's export into `path`, which must not exist;
/// `received` is told the bytes so far.
pub fn run(
    client: &mut Client,
    path: &Path,
    received: &dyn Fn(u64),
) -> Result<Exported, ExportError> {
    if path.symlink_metadata().is_ok() {
        return Err(ExportError::Exists(path.to_owned()));
    }
    let schema = extension_schema(client)?;
    let write = |source| ExportError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".council-export-")
        .suffix(".db")
        .tempfile_in(dir)
        .map_err(write)?;
    // Rows of the select list go out as the server reads them; in FROM the
    // server would gather them all first.
    let query = format!("SELECT {schema}.council_export_stream()");
    let mut rows = client.query_raw(query.as_str(), std::iter::empty::<&str>())?;
    let mut bytes = 0u64;
    while let Some(row) = rows.next()? {
        let chunk: &[u8] = row.get(0);
        temp.write_all(chunk).map_err(write)?;
        bytes += chunk.len() as u64;
        received(bytes);
    }
    temp.as_file().sync_all().map_err(write)?;
    let tables = count_rows(temp.path())?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644)).map_err(write)?;
    }
    temp.persist_noclobber(path).map_err(|err| {
        if err.error.kind() == std::io::ErrorKind::AlreadyExists {
            ExportError::Exists(path.to_owned())
        } else {
            write(err.error)
        }
    })?;
    if let Ok(dir) = fs::File::open(dir) {
        dir.sync_all().map_err(write)?;
    }
    Ok(Exported {
        path: path.to_owned(),
        bytes,
        tables,
    })
}

fn extension_schema(client: &mut Client) -> Result<QuotedIdentifier, ExportError> {
    let database = |client: &mut Client| -> Result<String, postgres::Error> {
        Ok(client
            .query_one("SELECT pg_catalog.current_database()::pg_catalog.text", &[])?
            .get(0))
    };
    let Some(row) = client.query_opt(EXTENSION_QUERY, &[])? else {
        return Err(ExportError::NotInstalled {
            database: database(client)?,
        });
    };
    let (schema, version): (String, String) = (row.get(0), row.get(1));
    if version == "0.1.0" {
        return Err(ExportError::TooOld {
            database: database(client)?,
            version,
        });
    }
    Ok(QuotedIdentifier::new(&schema))
}

/// Each council table's rows in the written file: the file reads back, and
/// the report says what it holds. Read as immutable, which leaves no -shm
/// beside a WAL-mode file.
fn count_rows(path: &Path) -> Result<Vec<(String, i64)>, ExportError> {
    let read_back = |err: rusqlite::Error| ExportError::ReadBack(err.to_string());
    let conn = rusqlite::Connection::open_with_flags(
        council_file::immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(read_back)?;
    COUNCIL
        .iter()
        .map(|table| {
            let rows: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM {}", QuotedIdentifier::new(table)),
                    [],
                    |r| r.get(0),
                )
                .map_err(read_back)?;
            Ok(((*table).to_owned(), rows))
        })
        .collect()
}
