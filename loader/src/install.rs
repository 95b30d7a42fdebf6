//! `council-loader install`: the extension's files into the directories
//! pg_config names (when the server runs here and we may write there), then
//! `CREATE EXTENSION` or `ALTER EXTENSION … UPDATE` in the target database.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the server runs PostgreSQL {found}; llm_council is built for PostgreSQL 15")]
    WrongServer { found: String },
    #[error(
        "the llm_council extension's files are not installed on the server, and there are none \
         here to install: build them with `cargo pgrx package` and pass --from target/release/llm_council-pg15, \
         or run `cargo pgrx install` on the server"
    )]
    NoFiles,
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
        const DEPTH: usize = 8;
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

    /// The package built beside this very binary (`target/release/` of a
    /// checkout), if there is one: never a directory relative to where the
    /// command happens to run.
    pub fn default_location() -> Option<PathBuf> {
        let binary = std::env::current_exe().ok()?;
        let candidate = binary.parent()?.join("llm_council-pg15");
        candidate.is_dir().then_some(candidate)
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

fn pg_config(arg: &str) -> Result<PathBuf, InstallError> {
    let program = std::env::var_os("PG_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin/pg_config"));
    let output = Command::new(&program)
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
    let mut temporary = tempfile::Builder::new()
        .prefix(".llm_council-install")
        .tempfile_in(dir)
        .map_err(write_error)?;
    temporary.write_all(&bytes).map_err(write_error)?;
    let file = temporary
        .persist(target)
        .map_err(|err| write_error(err.error))?;
    // Readable by the server's OS user, as package managers leave them.
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(write_error)?;
    Ok(true)
}

/// Copies the package into the server's directories; returns the files written.
pub fn install_files(package: &Package) -> Result<Vec<PathBuf>, InstallError> {
    let extension_dir = pg_config("--sharedir")?.join("extension");
    let library_dir = pg_config("--pkglibdir")?;
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

/// Creates the extension, or updates it to the version the server's files
/// provide.
pub fn ensure_extension(client: &mut postgres::Client) -> Result<Outcome, InstallError> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])?
        .get(0);
    if !(150_000..160_000).contains(&version) {
        let found: String = client
            .query_one("SELECT current_setting('server_version')", &[])?
            .get(0);
        return Err(InstallError::WrongServer { found });
    }
    let available: Option<String> = client
        .query_opt(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'llm_council'",
            &[],
        )?
        .map(|row| row.get(0));
    let Some(available) = available else {
        return Err(InstallError::NoFiles);
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
    fn the_default_package_is_beside_the_binary_never_the_working_directory() {
        let binary = std::env::current_exe().expect("exe");
        let beside = binary.parent().expect("dir").join("llm_council-pg15");
        let created = !beside.exists() && fs::create_dir(&beside).is_ok();
        assert_eq!(Package::default_location(), Some(beside.clone()));
        if created {
            fs::remove_dir(&beside).expect("cleanup");
        }
    }
}
