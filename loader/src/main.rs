use clap::Parser;

/// Moves an LLM Council deployment from SQLite to PostgreSQL.
///
/// The llm_council extension holds the app's schema, imports its council.db
/// losslessly in one transaction, and serves its response cache.
#[derive(Parser)]
#[command(name = "council-loader", version, about, long_about)]
struct Cli {}

fn main() {
    Cli::parse();
}
