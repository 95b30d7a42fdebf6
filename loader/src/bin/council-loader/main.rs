//! council-loader: dispatches each subcommand to `commands`.

mod args;
mod commands;
mod failure;

use std::process::ExitCode;

use clap::Parser as _;

use args::{Cli, Command};
use commands::{
    export_command, import_command, install, sample_command, server_command, status_command,
    verify_command,
};
use council_loader::sample::SampleOptions;

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
