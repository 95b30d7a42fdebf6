//! What each subcommand does.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use council_app::QuotedIdentifier;
use council_loader::connect::{self, Origin, Server};
use council_loader::export::{self, ExportError};
use council_loader::import::{
    self, Import, LocalFile, Progress, Report, TableCounts, Transfer, Verify,
};
use council_loader::install::{self, Outcome, Package};
use council_loader::sample::{self, SampleOptions};
use council_loader::{embedded, report};

use crate::args::{Mode, ServerAction};
use crate::failure::{Failure, FailureCode};

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
pub fn install(url: Option<&str>, from: Option<PathBuf>) -> Result<(), Failure> {
    let (server, embedded) = target(url)?;
    install_into(&server, embedded, from, false)
}

fn install_into(
    server: &Server,
    embedded: bool,
    from: Option<PathBuf>,
    quiet: bool,
) -> Result<(), Failure> {
    // This backend has loaded no library yet: installing the files under
    // it changes nothing it holds.
    let mut client = client(server, None)?;
    let major = install::server_major(&mut client)?;
    let replaced = install_package(server, embedded, from, major)?;
    if embedded {
        if embedded::preload_library(&mut client, replaced)? {
            // The private cluster restarted to preload the library.
            client = self::client(server, None)?;
        }
    } else if replaced && embedded::preloads_library(&mut client)? {
        eprintln!(
            "council-loader: {} preloads llm_council: restart it to run the library just \
             installed (until then it runs the one it started with)",
            server.describe()
        );
    }
    let outcome = install::ensure_extension(&mut client, major)?;
    if !quiet {
        println!("{}", installed(&outcome, &server.describe()));
    }
    Ok(())
}

/// Copies the build for the server's major into the server's directories,
/// when the server is on this machine; `from` names builds that must be
/// used. Returns whether the library was written anew.
fn install_package(
    server: &Server,
    embedded: bool,
    from: Option<PathBuf>,
    major: u32,
) -> Result<bool, Failure> {
    let Some(dir) = from.clone().or_else(Package::default_location) else {
        return Ok(false);
    };
    if server.is_local() || embedded {
        let build =
            install::build_for(&dir, major).map_err(|e| Failure::new(FailureCode::BadInput, e))?;
        let package = Package::find(&build).map_err(|e| Failure::new(FailureCode::BadInput, e))?;
        let written = install::install_files(&package, major)?;
        for file in &written {
            eprintln!("council-loader: installed {}", file.display());
        }
        return Ok(written
            .iter()
            .any(|file| file.file_name() == package.library.file_name()));
    } else if from.is_some() {
        return Err(Failure::new(
            FailureCode::BadInput,
            format!(
                "{} is not this machine: run council-loader install --from on the database server",
                server.describe()
            ),
        ));
    }
    Ok(false)
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

pub fn import_command(
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

pub fn verify_command(
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

pub fn export_command(url: Option<&str>, out: PathBuf, json: bool) -> Result<(), Failure> {
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

pub fn status_command(url: Option<&str>, json: bool) -> Result<(), Failure> {
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

pub fn sample_command(out: PathBuf, options: SampleOptions) -> Result<(), Failure> {
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

pub fn server_command(action: ServerAction) -> Result<(), Failure> {
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
