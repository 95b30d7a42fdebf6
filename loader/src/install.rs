//! `council-loader install`: the extension's files into the directories
//! pg_config names (when the server runs here and we may write there), then
//! `CREATE EXTENSION` or `ALTER EXTENSION … UPDATE` in the target database.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the server runs PostgreSQL {found}; llm_council supports PostgreSQL 15 to 18")]
    WrongServer { found: String },
    #[error(
        "the llm_council extension's files are not installed on the server, and there are none \
         here to install: install the postgresql-{major}-llm-council package on the server, or build \
         the files with `cargo pgrx package --pg-config PATH` and pass --from target/release/llm_council-pg{major}"
    )]
    NoFiles { major: u32 },
    #[error(
        "the server runs PostgreSQL {server}, and {dir} holds builds of llm_council for PostgreSQL {} only: \
         build one for {server} with `cargo pgrx package --pg-config` and that major's pg_config, \
         or install the postgresql-{server}-llm-council package on the server",
        list(available)
    )]
    NoBuildForMajor {
        server: u32,
        available: Vec<u32>,
        dir: PathBuf,
    },
    #[error("{pg_config} is PostgreSQL {found}'s, but the server runs PostgreSQL {server}: set PG_CONFIG to the server's pg_config")]
    OtherMajorPgConfig {
        pg_config: PathBuf,
        found: String,
        server: u32,
    },
    #[error("{dir} holds no llm_council.control and llm_council.so (a `cargo pgrx package` output is expected)")]
    BadPackage { dir: PathBuf },
    #[error("{path} is {why}: its files would run inside the server; install from a directory only you and root can write")]
    Unsafe { path: PathBuf, why: String },
    #[error(
        "cannot write {path}: {source}; run as root or as the owner of the PostgreSQL installation"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run pg_config ({0}); set PG_CONFIG to the server's pg_config")]
    PgConfig(String),
    #[error("{role} may not create the extension: {message}")]
    Privilege { role: String, message: String },
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
}

/// The majors llm_council builds for.
pub const SUPPORTED_MAJORS: std::ops::RangeInclusive<u32> = 15..=18;

fn list(majors: &[u32]) -> String {
    majors
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The major of a `cargo pgrx package` output, from the name pgrx gives it
/// (`llm_council-pg16`).
fn major_of_build(dir: &Path) -> Option<u32> {
    dir.file_name()?
        .to_str()?
        .strip_prefix("llm_council-pg")?
        .parse()
        .ok()
}

/// The builds `dir` holds, by major: `dir` itself when it is one build
/// (`llm_council-pgN`, or files of no known major, as None), else each
/// `llm_council-pgN` directory in it.
pub fn builds(dir: &Path) -> Vec<(Option<u32>, PathBuf)> {
    if let Some(major) = major_of_build(dir) {
        return vec![(Some(major), dir.to_owned())];
    }
    let mut found: Vec<(Option<u32>, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| major_of_build(&entry.path()).map(|major| (Some(major), entry.path())))
        .collect();
    if found.is_empty() {
        return vec![(None, dir.to_owned())];
    }
    found.sort();
    found
}

/// The build in `dir` for the server's major (see [`builds`]); a build of
/// no known major is taken as the user's explicit choice.
pub fn build_for(dir: &Path, server: u32) -> Result<PathBuf, InstallError> {
    let builds = builds(dir);
    if let Some((_, path)) = builds
        .iter()
        .find(|(major, _)| major.is_none() || *major == Some(server))
    {
        return Ok(path.clone());
    }
    Err(InstallError::NoBuildForMajor {
        server,
        available: builds.iter().filter_map(|(major, _)| *major).collect(),
        dir: dir.to_owned(),
    })
}

/// The files of one build of the extension.
#[derive(Debug)]
pub struct Package {
    pub control: PathBuf,
    pub scripts: Vec<PathBuf>,
    pub library: PathBuf,
}

impl Package {
    /// Finds the files in a `cargo pgrx package` output (or any directory
    /// holding them, a few levels deep). Symbolic links are not followed,
    /// and every directory and file must be safe to install from (see
    /// [`check_safe`]).
    pub fn find(dir: &Path) -> Result<Package, InstallError> {
        // pgrx lays a build out under pg_config's own directories, which for
        // a wheel's server lie nine levels down.
        const DEPTH: usize = 16;
        check_safe(dir)?;
        if let Some(parent) = dir.canonicalize().ok().as_deref().and_then(Path::parent) {
            check_safe(parent)?;
        }
        let mut control = None;
        let mut library = None;
        let mut scripts = Vec::new();
        let mut pending = vec![(dir.to_owned(), 0)];
        while let Some((current, depth)) = pending.pop() {
            let Ok(entries) = fs::read_dir(&current) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_symlink() {
                    continue;
                }
                check_safe(&path)?;
                if kind.is_dir() {
                    if depth < DEPTH {
                        pending.push((path, depth + 1));
                    }
                } else if name == "llm_council.control" {
                    control = Some(path);
                } else if name == "llm_council.so" {
                    library = Some(path);
                } else if name.starts_with("llm_council--") && name.ends_with(".sql") {
                    scripts.push(path);
                }
            }
        }
        match (control, library) {
            (Some(control), Some(library)) if !scripts.is_empty() => Ok(Package {
                control,
                scripts,
                library,
            }),
            _ => Err(InstallError::BadPackage {
                dir: dir.to_owned(),
            }),
        }
    }

    /// The directory beside this very binary (`target/release/` of a
    /// checkout) when it holds builds (`llm_council-pgN`), if there is one:
    /// never a directory relative to where the command happens to run.
    pub fn default_location() -> Option<PathBuf> {
        let binary = std::env::current_exe().ok()?;
        let dir = binary.parent()?;
        builds(dir)
            .iter()
            .any(|(major, _)| major.is_some())
            .then(|| dir.to_owned())
    }
}

/// A file or directory others could have put there: writable by its group
/// or by anyone, or, when we are root, owned by a user other than root and
/// the one who ran sudo. Its library would run as the server.
pub fn check_safe(path: &Path) -> Result<(), InstallError> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = fs::symlink_metadata(path).map_err(|source| InstallError::Write {
        path: path.to_owned(),
        source,
    })?;
    let unsafe_because = |why: String| InstallError::Unsafe {
        path: path.to_owned(),
        why,
    };
    // A sticky directory (/tmp) lets nobody replace another's entries.
    let sticky_dir = metadata.is_dir() && metadata.mode() & 0o1000 != 0;
    if metadata.mode() & 0o022 != 0 && !sticky_dir {
        return Err(unsafe_because(format!(
            "writable by {} (mode {:o})",
            if metadata.mode() & 0o002 != 0 {
                "anyone"
            } else {
                "its group"
            },
            metadata.mode() & 0o7777
        )));
    }
    if nix::unistd::Uid::effective().is_root() {
        let sudo_user = std::env::var("SUDO_UID")
            .ok()
            .and_then(|u| u.parse::<u32>().ok());
        if metadata.uid() != 0 && Some(metadata.uid()) != sudo_user {
            return Err(unsafe_because(format!(
                "owned by user {}, neither root nor the user who ran sudo",
                metadata.uid()
            )));
        }
    }
    Ok(())
}

/// The pg_config of the server's major: `$PG_CONFIG` (which must be that
/// major's), else Debian's for that major.
fn pg_config_for(server: u32) -> Result<PathBuf, InstallError> {
    let program = match std::env::var_os("PG_CONFIG") {
        Some(program) => PathBuf::from(program),
        None => PathBuf::from(format!("/usr/lib/postgresql/{server}/bin/pg_config")),
    };
    let version = run_pg_config(&program, "--version")?;
    // "PostgreSQL 16.2" or "PostgreSQL 17.10 (Debian 17.10-1)".
    let found = version
        .to_string_lossy()
        .trim_start_matches("PostgreSQL ")
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    if found.split('.').next().and_then(|m| m.parse().ok()) != Some(server) {
        return Err(InstallError::OtherMajorPgConfig {
            pg_config: program,
            found,
            server,
        });
    }
    Ok(program)
}

fn run_pg_config(program: &Path, arg: &str) -> Result<PathBuf, InstallError> {
    let output = Command::new(program)
        .arg(arg)
        .output()
        .map_err(|err| InstallError::PgConfig(format!("{}: {err}", program.display())))?;
    if !output.status.success() {
        return Err(InstallError::PgConfig(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// Writes `bytes` to `target` by a rename, so a server that has the old
/// library mapped keeps its copy instead of crashing; unchanged files are
/// left alone. Returns whether anything was written.
fn replace_file(source: &Path, target: &Path) -> Result<bool, InstallError> {
    let write_error = |source| InstallError::Write {
        path: target.to_owned(),
        source,
    };
    let bytes = fs::read(source).map_err(|source_err| InstallError::Write {
        path: source.to_owned(),
        source: source_err,
    })?;
    if fs::read(target).ok().as_deref() == Some(bytes.as_slice()) {
        return Ok(false);
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    let staged = staged_copy(&bytes, dir).map_err(write_error)?;
    staged
        .persist(target)
        .map_err(|err| write_error(err.error))?;
    Ok(true)
}

/// A file beside its target holding `bytes`, readable by the server's OS
/// user as package managers leave them. The mode is set before the rename:
/// a backend that loads the library in between must never find a file it
/// cannot open.
fn staged_copy(bytes: &[u8], dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut staged = tempfile::Builder::new()
        .prefix(".llm_council-install")
        .tempfile_in(dir)?;
    staged.write_all(bytes)?;
    staged
        .as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    Ok(staged)
}

/// Copies the package into the directories of the server's major; returns
/// the files written.
pub fn install_files(package: &Package, server: u32) -> Result<Vec<PathBuf>, InstallError> {
    let pg_config = pg_config_for(server)?;
    let extension_dir = run_pg_config(&pg_config, "--sharedir")?.join("extension");
    let library_dir = run_pg_config(&pg_config, "--pkglibdir")?;
    let mut written = Vec::new();
    let mut copy = |source: &Path, dir: &Path| -> Result<(), InstallError> {
        let name = source.file_name().map(PathBuf::from).unwrap_or_default();
        let target = dir.join(name);
        if replace_file(source, &target)? {
            written.push(target);
        }
        Ok(())
    };
    copy(&package.library, &library_dir)?;
    for script in &package.scripts {
        copy(script, &extension_dir)?;
    }
    // The control file last: it names the version the scripts provide.
    copy(&package.control, &extension_dir)?;
    Ok(written)
}

/// What `ensure_extension` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created(String),
    Updated { from: String, to: String },
    Current(String),
}

/// The server's major, one llm_council supports.
pub fn server_major(client: &mut postgres::Client) -> Result<u32, InstallError> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])?
        .get(0);
    let major = u32::try_from(version / 10_000).unwrap_or(0);
    if !SUPPORTED_MAJORS.contains(&major) {
        let found: String = client
            .query_one("SELECT current_setting('server_version')", &[])?
            .get(0);
        return Err(InstallError::WrongServer { found });
    }
    Ok(major)
}

/// Creates the extension, or updates it to the version the server's files
/// provide; `major` is the server's (see [`server_major`]).
pub fn ensure_extension(
    client: &mut postgres::Client,
    major: u32,
) -> Result<Outcome, InstallError> {
    let available: Option<String> = client
        .query_opt(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'llm_council'",
            &[],
        )?
        .map(|row| row.get(0));
    let Some(available) = available else {
        return Err(InstallError::NoFiles { major });
    };
    let installed: Option<String> = client
        .query_opt(
            "SELECT extversion FROM pg_extension WHERE extname = 'llm_council'",
            &[],
        )?
        .map(|row| row.get(0));
    let privilege = |err: postgres::Error, client: &mut postgres::Client| -> InstallError {
        if err.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
            let role = client
                .query_one("SELECT current_user::text", &[])
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|_| "this role".into());
            InstallError::Privilege {
                role,
                message: err
                    .as_db_error()
                    .map(|e| format!("{} (llm_council is not a trusted extension: a superuser must install it)", e.message()))
                    .unwrap_or_else(|| err.to_string()),
            }
        } else {
            err.into()
        }
    };
    match installed {
        None => {
            if let Err(err) = client.batch_execute("CREATE EXTENSION IF NOT EXISTS llm_council") {
                return Err(privilege(err, client));
            }
            Ok(Outcome::Created(available))
        }
        Some(current) if current != available => {
            if let Err(err) = client.batch_execute("ALTER EXTENSION llm_council UPDATE") {
                return Err(privilege(err, client));
            }
            Ok(Outcome::Updated {
                from: current,
                to: available,
            })
        }
        Some(current) => Ok(Outcome::Current(current)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn package(dir: &Path) {
        fs::create_dir_all(dir).expect("dir");
        for name in [
            "llm_council.control",
            "llm_council.so",
            "llm_council--0.2.0.sql",
        ] {
            fs::write(dir.join(name), "x").expect("file");
            fs::set_permissions(dir.join(name), fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn a_staged_file_is_readable_by_the_server_before_it_is_renamed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staged = staged_copy(b"library", dir.path()).expect("staged");
        let mode = staged
            .as_file()
            .metadata()
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(fs::read(staged.path()).expect("read"), b"library");
    }

    #[test]
    fn a_package_others_could_write_to_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("pkg");
        package(&dir);
        assert!(Package::find(&dir).is_ok());
        fs::set_permissions(
            dir.join("llm_council.so"),
            fs::Permissions::from_mode(0o666),
        )
        .expect("chmod");
        let err = Package::find(&dir).err();
        assert!(
            matches!(&err, Some(InstallError::Unsafe { path, .. }) if path.ends_with("llm_council.so")),
            "{err:?}"
        );
        fs::set_permissions(
            dir.join("llm_council.so"),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o775)).expect("chmod");
        assert!(matches!(
            Package::find(&dir),
            Err(InstallError::Unsafe { .. })
        ));
    }

    #[test]
    fn symbolic_links_are_not_followed_and_loops_end() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("pkg");
        package(&dir);
        std::os::unix::fs::symlink(&dir, dir.join("loop")).expect("symlink");
        let outside = root.path().join("outside");
        package(&outside);
        fs::remove_file(dir.join("llm_council.so")).expect("rm");
        std::os::unix::fs::symlink(outside.join("llm_council.so"), dir.join("llm_council.so"))
            .expect("symlink");
        let err = Package::find(&dir).err();
        assert!(
            matches!(err, Some(InstallError::BadPackage { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn the_default_builds_are_beside_the_binary_never_the_working_directory() {
        let binary = std::env::current_exe().expect("exe");
        let dir = binary.parent().expect("dir");
        let beside = dir.join("llm_council-pg15");
        let created = !beside.exists() && fs::create_dir(&beside).is_ok();
        assert_eq!(Package::default_location().as_deref(), Some(dir));
        if created {
            fs::remove_dir(&beside).expect("cleanup");
        }
    }

    #[test]
    fn the_build_for_the_servers_major_is_picked_or_the_majors_there_are_named() {
        let root = tempfile::tempdir().expect("tempdir");
        for major in [15, 17] {
            package(&root.path().join(format!("llm_council-pg{major}")));
        }
        assert_eq!(
            build_for(root.path(), 17).expect("17 is there"),
            root.path().join("llm_council-pg17")
        );
        let missing = build_for(root.path(), 16).expect_err("no build for 16");
        assert!(
            matches!(&missing, InstallError::NoBuildForMajor { server: 16, available, .. } if available == &[15, 17]),
            "{missing:?}"
        );
        let message = missing.to_string();
        assert!(
            message.contains("PostgreSQL 16") && message.contains("PostgreSQL 15, 17 only"),
            "{message}"
        );
        // One build named for its major is that major's alone.
        let one = root.path().join("llm_council-pg15");
        assert_eq!(build_for(&one, 15).expect("15"), one);
        assert!(build_for(&one, 18).is_err());
        // Files of no known major are the user's explicit choice.
        let bare = root.path().join("bare");
        package(&bare);
        assert_eq!(build_for(&bare, 18).expect("bare"), bare);
    }
}
