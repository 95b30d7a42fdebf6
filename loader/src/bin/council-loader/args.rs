//! The command line: its arguments and subcommands, as clap reads them.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use council_loader::sample::{Journal, SchemaVersion};

/// Moves an LLM Council deployment from SQLite to PostgreSQL.
///
/// The llm_council extension holds the app's schema, imports its council.db
/// losslessly in one transaction, and serves its response cache. The server
/// is named by --database-url, DATABASE_URL or libpq's PG* variables; with
/// none of them, council-loader starts (or reuses) a private local cluster.
///
/// Exit status: 0 success; 1 the server refused or the check failed (an
/// import that did not commit, a verify that found differences); 2 a bad
/// local file or argument; 3 no server to talk to, or the extension is not
/// installed or could not be; 4 the connection broke during COMMIT, so
/// whether the import committed is unknown (run verify).
#[derive(Parser)]
#[command(name = "council-loader", version, about, long_about)]
pub struct Cli {
    /// The database, as a postgresql:// URL (passwords are never printed).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// stop at the first row that cannot be imported; nothing is imported
    Strict,
    /// import the rest; keep bad rows in council_import_rejects
    Quarantine,
    /// make the tables equal to the file: insert new rows, update changed
    /// ones, delete the ones the file lacks (the cutover's catch-up; refused
    /// once the app has written to PostgreSQL)
    Sync,
}

impl Mode {
    /// As council_import takes it.
    pub fn as_sql(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Quarantine => "quarantine",
            Mode::Sync => "sync",
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Install the extension in the database (and its files, when the server
    /// runs on this machine), or update it to the files' version.
    ///
    /// Idempotent: a second run changes nothing.
    Install {
        /// Builds to install the files from: a `cargo pgrx package` output
        /// (`llm_council-pgN`), or a directory holding one per major, of
        /// which the server's is taken (default: the directory of this
        /// binary, when it holds any).
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
    },
    /// Import a council.db: every row, in one transaction.
    ///
    /// The file is checked here first. The server reads it where it lies
    /// when it can (same machine, same file); otherwise it is uploaded.
    /// Progress shows as a bar on a terminal and as lines otherwise.
    Import {
        /// The app's council.db (its -wal file, if any, is read too).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Mode::Strict)]
        mode: Mode,
        /// Do everything, report, and roll back.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Always upload the file, even when the server could read it.
        #[arg(long)]
        upload: bool,
    },
    /// Compare a council.db with the database, row by row.
    ///
    /// Exits 1 when a row is missing or differs.
    Verify {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        upload: bool,
    },
    /// Write the database back into a new council.db on this host: the
    /// app's schema and journal mode, every row, values as the app wrote
    /// them. The way back after a cutover, from any server.
    ///
    /// The server writes the file under one snapshot and streams it; it
    /// takes OUT's name only once complete. An existing file is never
    /// replaced.
    Export {
        /// The council.db to create.
        out: PathBuf,
        /// Print the rows per table as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Server and extension versions, rows per table, rejects, cache statistics.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Write a council.db in the app's format, to try the tools on.
    ///
    /// The content is realistic (multi-stage deliberations, every timestamp
    /// form the app writes, '' timestamps, caller-supplied ids) and
    /// deterministic: the same options give the same rows.
    Sample {
        /// The file to create; an existing file is never overwritten.
        out: PathBuf,
        /// How many conversations (about 36 rows and 57 KB each).
        #[arg(long, default_value_t = 100)]
        conversations: u64,
        /// The app's schema version: v1 (no API-key tables) or v2.
        #[arg(long, default_value_t = SchemaVersion::V2)]
        schema: SchemaVersion,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// wal (what the app leaves: WAL mode, checkpointed, no -wal file),
        /// wal-uncheckpointed (a live copy whose last conversations sit only
        /// in the -wal file), or delete (a rollback-journal file).
        #[arg(long, default_value_t = Journal::Wal)]
        journal: Journal,
    },
    /// The private local cluster used when no server is named.
    Server {
        #[command(subcommand)]
        action: ServerAction,
    },
}

#[derive(Subcommand)]
pub enum ServerAction {
    /// Start it (creating it on first use) and print its URL.
    Start,
    /// Stop it.
    Stop,
    /// Whether it exists and runs, and its URL.
    Status,
}
