use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use council_app::QuotedIdentifier;
use council_loader::cluster::ClusterError;
use council_loader::connect::{self, Origin, Server};
use council_loader::export::{self, ExportError};
use council_loader::import::{
    self, ExtensionError, FileError, Import, LocalFile, Progress, Report, TableCounts, Transfer,
    UploadError, Verify,
};
use council_loader::install::{self, InstallError, Outcome, Package};
use council_loader::sample::{self, Journal, SampleError, SampleOptions, SchemaVersion};
use council_loader::{embedded, report};

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
struct Cli {
    /// The database, as a postgresql:// URL (passwords are never printed).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
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
    fn as_sql(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Quarantine => "quarantine",
            Mode::Sync => "sync",
        }
    }
}

#[derive(Subcommand)]
enum Command {
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
        /// How many conversations (about 36 rows and 55 KB each).
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
enum ServerAction {
    /// Start it (creating it on first use) and print its URL.
    Start,
    /// Stop it.
    Stop,
    /// Whether it exists and runs, and its URL.
    Status,
}

/// The exit status of a failed run, as the README documents them (0 is
/// success).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureCode {
    /// The server refused (an import that did not commit, with its
    /// SQLSTATE), or the check failed (a verify that found rows missing or
    /// differing).
    Refused = 1,
    /// A bad local file or argument.
    BadInput = 2,
    /// No server to talk to, or the extension is not installed or could not
    /// be.
    Unavailable = 3,
    /// The connection broke during COMMIT: whether the import committed is
    /// unknown until a verify says.
    OutcomeUnknown = 4,
}

/// A failure, with the exit status it maps to.
struct Failure {
    code: FailureCode,
    message: String,
}

impl Failure {
    fn new(code: FailureCode, message: impl std::fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

/// The server's own error with all it says, or a connection that failed.
impl From<postgres::Error> for Failure {
    fn from(err: postgres::Error) -> Failure {
        let Some(db) = err.as_db_error() else {
            return Failure::new(FailureCode::Unavailable, err);
        };
        let mut message = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            message.push_str(&format!("\nDETAIL: {detail}"));
        }
        if let Some(hint) = db.hint() {
            message.push_str(&format!("\nHINT: {hint}"));
        }
        message.push_str(&format!("\nSQLSTATE: {}", db.code().code()));
        Failure::new(FailureCode::Refused, message)
    }
}

/// A failed import or verify: the server's error, a local file's, or the transfer's.
impl From<UploadError> for Failure {
    fn from(err: UploadError) -> Failure {
        match err {
            UploadError::Postgres(err) => err.into(),
            UploadError::File(err) => err.into(),
            err @ UploadError::OutcomeUnknown(_) => Failure::new(FailureCode::OutcomeUnknown, err),
            other => Failure::new(FailureCode::Refused, other),
        }
    }
}

impl From<FileError> for Failure {
    fn from(err: FileError) -> Failure {
        Failure::new(FailureCode::BadInput, err)
    }
}

impl From<SampleError> for Failure {
    fn from(err: SampleError) -> Failure {
        Failure::new(FailureCode::BadInput, err)
    }
}

/// An export that did not write its file: the server's refusal, the local
/// file's trouble, or a database without a recent enough extension.
impl From<ExportError> for Failure {
    fn from(err: ExportError) -> Failure {
        match err {
            ExportError::Postgres(err) => err.into(),
            ExportError::Exists(_) | ExportError::Write { .. } => {
                Failure::new(FailureCode::BadInput, err)
            }
            ExportError::NotInstalled { .. } | ExportError::TooOld { .. } => {
                Failure::new(FailureCode::Unavailable, err)
            }
            ExportError::ReadBack(_) => Failure::new(FailureCode::Refused, err),
        }
    }
}

/// The private local cluster could not be made, started or stopped.
impl From<ClusterError> for Failure {
    fn from(err: ClusterError) -> Failure {
        Failure::new(FailureCode::Unavailable, err)
    }
}

/// Installing the files or the extension failed. A package that is not one
/// is bad input instead; `install_into` says so where it looks for one.
impl From<InstallError> for Failure {
    fn from(err: InstallError) -> Failure {
        match err {
            InstallError::Postgres(err) => err.into(),
            other => Failure::new(FailureCode::Unavailable, other),
        }
    }
}

/// The database lacks the extension (or its upload functions): the message
/// says what to run.
impl From<ExtensionError> for Failure {
    fn from(err: ExtensionError) -> Failure {
        match err {
            ExtensionError::Postgres(err) => err.into(),
            other => Failure::new(FailureCode::Unavailable, other),
        }
    }
}

/// The server named anywhere, or the private cluster with the extension in it.
fn target(url: Option<&str>) -> Result<(Server, bool), Failure> {
    // Settings that do not parse are the user's input; a failed connection
    // (in `client`) is not.
    let configured =
        connect::configured(url).map_err(|e| Failure::new(FailureCode::BadInput, e))?;
    match configured {
        Some((server, origin)) => {
            if origin == Origin::LibpqEnvironment {
                eprintln!(
                    "council-loader: using {} (from PG* variables)",
                    server.describe()
                );
            }
            Ok((server, false))
        }
        None => {
            let (config, printable) = embedded::ensure_running()?;
            eprintln!("council-loader: using the local cluster at {printable}");
            Ok((Server::from(config), true))
        }
    }
}

fn client(server: &Server, progress: Option<Progress>) -> Result<postgres::Client, Failure> {
    connect::connect(server, move |message| match &progress {
        Some(progress) => progress.notice(message),
        None => eprintln!("{message}"),
    })
    .map_err(|e| Failure::new(FailureCode::Unavailable, e))
}

/// Installs the files (when there are some here and the server is local)
/// and creates or updates the extension.
fn install(url: Option<&str>, from: Option<PathBuf>) -> Result<(), Failure> {
    let (server, embedded) = target(url)?;
    install_into(&server, embedded, from, false)
}

fn install_into(
    server: &Server,
    embedded: bool,
    from: Option<PathBuf>,
    quiet: bool,
) -> Result<(), Failure> {
    let major = install::server_major(&mut client(server, None)?)?;
    install_package(server, embedded, from, major)?;
    let mut client = client(server, None)?;
    if embedded && embedded::preload_library(&mut client)? {
        // The private cluster restarted to preload the library.
        client = self::client(server, None)?;
    }
    let outcome = install::ensure_extension(&mut client)?;
    if !quiet {
        println!("{}", installed(&outcome, &server.describe()));
    }
    Ok(())
}

/// Copies the build for the server's major into the server's directories,
/// when the server is on this machine; `from` names builds that must be
/// used.
fn install_package(
    server: &Server,
    embedded: bool,
    from: Option<PathBuf>,
    major: u32,
) -> Result<(), Failure> {
    let Some(dir) = from.clone().or_else(Package::default_location) else {
        return Ok(());
    };
    if server.is_local() || embedded {
        let build =
            install::build_for(&dir, major).map_err(|e| Failure::new(FailureCode::BadInput, e))?;
        let package = Package::find(&build).map_err(|e| Failure::new(FailureCode::BadInput, e))?;
        for file in &install::install_files(&package, major)? {
            eprintln!("council-loader: installed {}", file.display());
        }
    } else if from.is_some() {
        return Err(Failure::new(
            FailureCode::BadInput,
            format!(
                "{} is not this machine: run council-loader install --from on the database server",
                server.describe()
            ),
        ));
    }
    Ok(())
}

/// What `install` did, in `target`.
fn installed(outcome: &Outcome, target: &str) -> String {
    match outcome {
        Outcome::Created(v) => format!("created llm_council {v} in {target}"),
        Outcome::Updated { from, to } => format!("updated llm_council {from} → {to} in {target}"),
        Outcome::Current(v) => format!("llm_council {v} is installed in {target}"),
    }
}

/// How the server gets the file, and the extension's schema: the server
/// reads the file itself when it sees this very file, unless told to upload.
fn prepare_transfer(
    client: &mut postgres::Client,
    server: &Server,
    file: &LocalFile,
    force_upload: bool,
) -> Result<(Transfer, QuotedIdentifier), Failure> {
    let how = if !force_upload && server.is_local() && import::server_reads_same_file(client, file)
    {
        Transfer::ServerPath
    } else {
        Transfer::Upload
    };
    let schema = import::find_extension(client, how)?;
    Ok((how, schema))
}

fn import_command(
    url: Option<&str>,
    path: PathBuf,
    mode: Mode,
    dry_run: bool,
    json: bool,
    force_upload: bool,
) -> Result<(), Failure> {
    let file = import::check(&path)?;
    let (server, embedded) = target(url)?;
    if embedded {
        install_into(&server, embedded, None, true)?;
    }
    let progress = Progress::new(&file, std::io::stderr().is_terminal() && !json);
    let mut client = client(&server, Some(progress.clone()))?;
    let (how, schema) = prepare_transfer(&mut client, &server, &file, force_upload)?;
    let result = import::run::<Import>(
        &mut client,
        &file,
        how,
        &schema,
        &[&mode.as_sql(), &dry_run],
        &|sent| progress.uploaded(sent, file.size),
    );
    progress.finish();
    let rows = result?;
    print(&rows, json);
    if !json {
        eprintln!(
            "council-loader: {}",
            import_summary(&rows, &file, how, dry_run)
        );
    }
    Ok(())
}

/// The import's totals, in one line.
fn import_summary(
    rows: &[TableCounts<Import>],
    file: &LocalFile,
    how: Transfer,
    dry_run: bool,
) -> String {
    let total = |count: fn(&TableCounts<Import>) -> i64| rows.iter().map(count).sum::<i64>();
    let changed = match (total(TableCounts::updated), total(TableCounts::deleted)) {
        (0, 0) => String::new(),
        (updated, deleted) => format!(", {updated} updated, {deleted} deleted"),
    };
    format!(
        "{} {} rows from {} ({}): {} imported, {} skipped, {} rejected{changed}",
        if dry_run {
            "dry run, rolled back:"
        } else {
            "committed:"
        },
        total(|r| r.source_rows),
        file.path.display(),
        match how {
            Transfer::ServerPath => "read by the server",
            Transfer::Upload => "uploaded",
        },
        total(TableCounts::imported),
        total(TableCounts::skipped),
        total(TableCounts::rejected)
    )
}

fn print<R: Report>(rows: &[TableCounts<R>], json: bool) {
    if json {
        println!("{}", report::json(rows));
    } else {
        print!("{}", report::table(rows));
    }
}

fn verify_command(
    url: Option<&str>,
    path: PathBuf,
    json: bool,
    force_upload: bool,
) -> Result<(), Failure> {
    let file = import::check(&path)?;
    let (server, _) = target(url)?;
    let mut client = client(&server, None)?;
    let (how, schema) = prepare_transfer(&mut client, &server, &file, force_upload)?;
    let rows = import::run::<Verify>(&mut client, &file, how, &schema, &[], &|_| {})?;
    print(&rows, json);
    let off: i64 = rows.iter().map(|r| r.missing() + r.differing()).sum();
    if off > 0 {
        return Err(Failure::new(
            FailureCode::Refused,
            format!(
                "{off} rows of {} are missing or differ in the database",
                file.path.display()
            ),
        ));
    }
    Ok(())
}

fn export_command(url: Option<&str>, out: PathBuf, json: bool) -> Result<(), Failure> {
    if out.symlink_metadata().is_ok() {
        return Err(ExportError::Exists(out).into());
    }
    let (server, _) = target(url)?;
    let bar = (std::io::stderr().is_terminal() && !json).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg:28} {bytes} received ({elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar.set_message("the server writes the file");
        bar
    });
    let notices = bar.clone();
    let mut client = connect::connect(&server, move |message| {
        let table = message.strip_prefix("llm_council export: ");
        match (&notices, table) {
            (Some(bar), Some(table)) => bar.set_message(table.to_owned()),
            (Some(bar), None) => bar.println(message),
            (None, _) => eprintln!("{message}"),
        }
    })
    .map_err(|e| Failure::new(FailureCode::Unavailable, e))?;
    let received = |bytes: u64| {
        if let Some(bar) = &bar {
            bar.set_message("receiving the file");
            bar.set_position(bytes);
        }
    };
    let result = export::run(&mut client, &out, &received);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let exported = result?;
    if json {
        println!("{}", exported.to_json());
    } else {
        print!("{}", exported.to_text());
        eprintln!(
            "council-loader: exported {} rows into {} ({} bytes)",
            exported.rows(),
            exported.path.display(),
            exported.bytes
        );
    }
    Ok(())
}

fn status_command(url: Option<&str>, json: bool) -> Result<(), Failure> {
    let (server, _) = target(url)?;
    let mut client = client(&server, None)?;
    let status = report::status(&mut client)?;
    if json {
        println!("{}", status.to_json());
    } else {
        print!("{}", status.to_text(&server.describe()));
    }
    Ok(())
}

fn sample_command(out: PathBuf, options: SampleOptions) -> Result<(), Failure> {
    let summary = sample::write(&out, &options)?;
    for (table, rows) in &summary.tables {
        println!("{table:<24} {rows:>9}");
    }
    println!(
        "{:<24} {:>9}  ({} bytes) in {}",
        "total",
        summary.rows(),
        summary.bytes + summary.wal_bytes,
        out.display()
    );
    Ok(())
}

fn server_command(action: ServerAction) -> Result<(), Failure> {
    match action {
        ServerAction::Start => {
            let (_, printable) = embedded::ensure_running()?;
            println!("{printable}");
        }
        ServerAction::Stop => {
            let stopped = embedded::stop()?;
            println!("{}", if stopped { "stopped" } else { "not running" });
        }
        ServerAction::Status => match embedded::status()? {
            Some((url, running)) => {
                println!("{url} ({})", if running { "running" } else { "stopped" })
            }
            None => println!("no local cluster in {}", embedded::home().display()),
        },
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let url = cli.database_url.as_deref();
    let result = match cli.command {
        Command::Install { from } => install(url, from),
        Command::Import {
            file,
            mode,
            dry_run,
            json,
            upload,
        } => import_command(url, file, mode, dry_run, json, upload),
        Command::Verify { file, json, upload } => verify_command(url, file, json, upload),
        Command::Export { out, json } => export_command(url, out, json),
        Command::Status { json } => status_command(url, json),
        Command::Sample {
            out,
            conversations,
            schema,
            seed,
            journal,
        } => sample_command(
            out,
            SampleOptions {
                conversations,
                schema,
                seed,
                journal,
            },
        ),
        Command::Server { action } => server_command(action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("council-loader: {}", failure.message);
            ExitCode::from(failure.code as u8)
        }
    }
}
