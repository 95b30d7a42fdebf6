use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use council_loader::sample::{self, Journal, SampleOptions, SchemaVersion};

/// Moves an LLM Council deployment from SQLite to PostgreSQL.
///
/// The llm_council extension holds the app's schema, imports its council.db
/// losslessly in one transaction, and serves its response cache.
#[derive(Parser)]
#[command(name = "council-loader", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        /// delete (a closed file), wal, or wal-uncheckpointed (a live copy
        /// whose last conversations sit only in the -wal file).
        #[arg(long, default_value_t = Journal::Delete)]
        journal: Journal,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sample {
            out,
            conversations,
            schema,
            seed,
            journal,
        } => {
            let options = SampleOptions {
                conversations,
                schema,
                seed,
                journal,
            };
            match sample::write(&out, &options) {
                Ok(summary) => {
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
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("council-loader: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
