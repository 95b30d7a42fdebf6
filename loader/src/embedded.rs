//! The private local cluster the loader uses when no server is named: made
//! from the machine's PostgreSQL binaries (`$PG_CONFIG`'s, else Debian's
//! PostgreSQL 15) under a data directory of the loader's own, on a loopback
//! port it keeps, with the extension's library preloaded once installed.

use std::path::{Path, PathBuf};

use nix::unistd::Uid;
use postgres::Config;

use crate::cluster::{Cluster, ClusterError, ClusterOptions};

/// Where the cluster lives: `$LLM_COUNCIL_HOME`, else
/// `$XDG_DATA_HOME/llm_council` (`~/.local/share/llm_council`). Run as
/// root, the server runs as `postgres`, which cannot enter root's home:
/// then `/var/lib/llm_council`.
pub fn home() -> PathBuf {
    if let Some(home) = std::env::var_os("LLM_COUNCIL_HOME") {
        return PathBuf::from(home);
    }
    if Uid::effective().is_root() {
        return PathBuf::from("/var/lib/llm_council");
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data_home.join("llm_council")
}

fn cluster_dir() -> PathBuf {
    home().join("cluster")
}

/// Starts the cluster, or finds it running, and returns how to reach it and
/// what to print for psql (the password file named, not the password).
pub fn ensure_running() -> Result<(Config, String), ClusterError> {
    let base = cluster_dir();
    let cluster = Cluster::open_or_create(&base, &ClusterOptions::default())?;
    let mut config = Config::new();
    config
        .host("127.0.0.1")
        .port(cluster.port())
        .user("postgres")
        .password(cluster.password())
        .dbname("postgres")
        .application_name("council-loader");
    let printable = cluster.url_with_passfile("postgres");
    cluster.detach();
    Ok((config, printable))
}

/// The URL of the cluster, and whether it runs; None when there is none.
pub fn status() -> Result<Option<(String, bool)>, ClusterError> {
    let base = cluster_dir();
    if !base.join("data/PG_VERSION").is_file() {
        return Ok(None);
    }
    let cluster = Cluster::open_existing(&base)?;
    let url = cluster.url_with_passfile("postgres");
    let running = cluster.is_running();
    cluster.detach();
    Ok(Some((url, running)))
}

/// Stops the cluster if it runs; true if it did.
pub fn stop() -> Result<bool, ClusterError> {
    let base = cluster_dir();
    if !base.join("data/PG_VERSION").is_file() {
        return Ok(false);
    }
    let mut cluster = Cluster::open_existing(&base)?;
    let was_running = cluster.is_running();
    cluster.stop()?;
    cluster.detach();
    Ok(was_running)
}

/// The libraries the server preloads, as `shared_preload_libraries` lists
/// them, and its library directory.
fn preloaded(client: &mut postgres::Client) -> Result<(Vec<String>, Option<String>), ClusterError> {
    let row = client.query_one(
        "SELECT current_setting('shared_preload_libraries'), \
                (SELECT setting FROM pg_catalog.pg_config WHERE name = 'PKGLIBDIR')",
        &[],
    )?;
    let listed: String = row.get(0);
    // current_setting() joins the list with ", ", each element in double
    // quotes where it needs them.
    let libraries = listed
        .split(',')
        .map(|l| l.trim().trim_matches('"').to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    Ok((libraries, row.get(1)))
}

/// Whether the server preloads the extension's library: then a library
/// installed under it runs only once it restarts, its postmaster's copy
/// being the one every new backend inherits.
pub fn preloads_library(client: &mut postgres::Client) -> Result<bool, ClusterError> {
    Ok(preloaded(client)?.0.iter().any(|l| l == "llm_council"))
}

/// Restarts the private cluster.
fn restart() -> Result<(), ClusterError> {
    let mut cluster = Cluster::open_existing(&cluster_dir())?;
    cluster.stop()?;
    cluster.start()?;
    cluster.detach();
    Ok(())
}

/// Preloads the extension's library in the private cluster, so that the
/// cache's shared hit counters and its expiry worker run there as on a
/// server set up by its DBA; restarts the cluster once for it, or once
/// `replaced` (the library file was just installed anew) where it preloads
/// it already, so that the new library runs. Only when the library is
/// installed: a server told to preload a library it lacks does not start.
/// Returns whether the cluster restarted.
pub fn preload_library(
    client: &mut postgres::Client,
    replaced: bool,
) -> Result<bool, ClusterError> {
    let (libraries, library_dir) = preloaded(client)?;
    if libraries.iter().any(|l| l == "llm_council") {
        if replaced {
            restart()?;
        }
        return Ok(replaced);
    }
    if !library_dir.is_some_and(|dir| Path::new(&dir).join("llm_council.so").is_file()) {
        return Ok(false);
    }
    let wanted: Vec<&str> = libraries
        .iter()
        .map(String::as_str)
        .chain(["llm_council"])
        .collect();
    // ALTER SYSTEM takes no parameters; format() quotes each library as an
    // element of the list (one quoted string would be one library's name).
    let statement: String = client
        .query_one(
            "SELECT 'ALTER SYSTEM SET shared_preload_libraries = '
                    || string_agg(format('%L', library), ', ' ORDER BY n)
             FROM unnest($1::text[]) WITH ORDINALITY AS l(library, n)",
            &[&wanted],
        )?
        .get(0);
    client.batch_execute(&statement)?;
    restart()?;
    Ok(true)
}
