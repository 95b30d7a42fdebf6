//! Private PostgreSQL clusters built from the machine's own server binaries.
//!
//! The tests start a throwaway cluster per test; the loader's embedded default
//! keeps one under a data directory of its own. PostgreSQL refuses to run as
//! root, so when we are root the server runs as the `postgres` OS user.

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use council_app::QuotedIdentifier;
use nix::unistd::{Gid, Uid, User};

/// The OS user a root process hands the server to.
pub const SERVER_OS_USER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot find PostgreSQL's server binaries: {0}")]
    Binaries(String),
    #[error("running as root, but there is no `{SERVER_OS_USER}` OS user to run the server as")]
    NoServerUser,
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}):\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("the server did not start; its log says:\n{0}")]
    Start(String),
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let action = action.into();
    move |source| ClusterError::Io { action, source }
}

/// Where the PostgreSQL server binaries are: `$PG_CONFIG --bindir`, else the
/// Debian location of PostgreSQL 15, else `pg_config` on the PATH.
pub fn server_bin_dir() -> Result<PathBuf, ClusterError> {
    let candidates: Vec<PathBuf> = match std::env::var_os("PG_CONFIG") {
        Some(pg_config) => vec![PathBuf::from(pg_config)],
        None => vec![
            PathBuf::from("/usr/lib/postgresql/15/bin/pg_config"),
            PathBuf::from("pg_config"),
        ],
    };
    for pg_config in &candidates {
        let Ok(output) = Command::new(pg_config).arg("--bindir").output() else {
            continue;
        };
        if output.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            if dir.join("postgres").is_file() && dir.join("initdb").is_file() {
                return Ok(dir);
            }
        }
    }
    Err(ClusterError::Binaries(format!(
        "tried {}; install postgresql-15 or set PG_CONFIG",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Whom the server processes run as: ourselves, or `postgres` when we are root.
#[derive(Clone, Copy, Debug)]
struct ServerUser {
    switch_to: Option<(Uid, Gid)>,
}

impl ServerUser {
    fn for_this_process() -> Result<ServerUser, ClusterError> {
        if !Uid::effective().is_root() {
            return Ok(ServerUser { switch_to: None });
        }
        let user = User::from_name(SERVER_OS_USER)
            .ok()
            .flatten()
            .ok_or(ClusterError::NoServerUser)?;
        Ok(ServerUser {
            switch_to: Some((user.uid, user.gid)),
        })
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if let Some((uid, gid)) = self.switch_to {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        // The server inherits nothing of ours: no PG* variable that could
        // point it elsewhere, no RUST_BACKTRACE that would print a backtrace
        // into every ERROR a user sees. Its locale is set explicitly.
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin");
        command
    }

    fn give(&self, path: &Path) -> Result<(), ClusterError> {
        if let Some((uid, gid)) = self.switch_to {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|errno| ClusterError::Io {
                action: format!("giving {} to {SERVER_OS_USER}", path.display()),
                source: errno.into(),
            })?;
        }
        Ok(())
    }
}

fn run(mut command: Command) -> Result<Output, ClusterError> {
    let description = format!("{command:?}");
    let output = command
        .output()
        .map_err(io(format!("running {description}")))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ClusterError::Command {
            command: description,
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// The file PostgreSQL loads for a `shared_preload_libraries` entry: a bare
/// name or `$libdir/NAME` in the package library directory, any other path
/// as it is; `.so` added where the name has no extension.
fn library_file(library_dir: &Path, name: &str) -> PathBuf {
    let path = match name.strip_prefix("$libdir/") {
        Some(rest) => library_dir.join(rest),
        None if name.contains('/') => PathBuf::from(name),
        None => library_dir.join(name),
    };
    if path.extension().is_some() {
        path
    } else {
        path.with_extension("so")
    }
}

/// A new random password: 48 hex digits from the kernel's generator.
fn random_password() -> Result<String, ClusterError> {
    use std::io::Read as _;
    let mut bytes = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(io("reading /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner may read, created so from the start.
fn write_private(path: &Path, content: &str) -> Result<(), ClusterError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all(content.as_bytes())
        .map_err(io(format!("writing {}", path.display())))
}

/// Closes a cluster's directory (and so its socket) to other OS users.
fn private(dir: &Path) -> Result<(), ClusterError> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io(format!("closing {} to other users", dir.display())))
}

/// Writes the superuser's password file (`PASSFILE`) beside the data directory.
fn write_passfile(base: &Path, password: &str) -> Result<(), ClusterError> {
    write_private(
        &base.join(PASSFILE),
        &format!("*:*:*:postgres:{password}\n"),
    )
}

/// Adds settings to a data directory's postgresql.conf; later lines win.
fn append_settings(data: &Path, lines: &str) -> Result<(), ClusterError> {
    let mut conf = fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .map_err(io("opening postgresql.conf"))?;
    conf.write_all(lines.as_bytes())
        .map_err(io("writing postgresql.conf"))
}

/// A port on the loopback interface that nothing listens on right now.
pub fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port();
    Ok(port)
}

/// Settings for a new cluster, appended to its postgresql.conf.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    pub settings: Vec<(String, String)>,
}

impl ClusterOptions {
    pub fn setting(mut self, name: &str, value: &str) -> ClusterOptions {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// The superuser's password, in pgpass form (`*:*:*:postgres:PASSWORD`),
/// beside the data directory: 0600, owned by whoever made the cluster.
pub const PASSFILE: &str = "superuser.pgpass";

/// A running PostgreSQL cluster on a loopback port. Nobody else on the
/// machine gets in: the superuser authenticates with SCRAM and a random
/// password only its maker can read (`PASSFILE`), over TCP and over the
/// socket alike, and the socket lies in a directory only the server's OS
/// user (and root) may enter.
pub struct Cluster {
    base: PathBuf,
    data: PathBuf,
    port: u16,
    password: String,
    bin: PathBuf,
    user: ServerUser,
    temporary: bool,
    running: bool,
    /// A kept cluster listens where its postgresql.conf says, always.
    fixed_port: bool,
}

impl Cluster {
    /// Starts a cluster in a new temporary directory, removed again when the
    /// value is dropped (also when a test panics).
    pub fn start_temporary(options: &ClusterOptions) -> Result<Cluster, ClusterError> {
        let base = tempfile::Builder::new()
            .prefix("llm_council-pg-")
            .tempdir()
            .map_err(io("creating a temporary directory"))?
            .keep();
        let mut cluster = Cluster::create(base, options)?;
        cluster.temporary = true;
        cluster.start()?;
        Ok(cluster)
    }

    /// Initializes a cluster under `base/data` without starting it.
    fn create(base: PathBuf, options: &ClusterOptions) -> Result<Cluster, ClusterError> {
        let bin = server_bin_dir()?;
        let user = ServerUser::for_this_process()?;
        user.give(&base)?;
        private(&base)?;
        let data = base.join("data");
        let password = random_password()?;
        // initdb reads the password from a file the server's user owns,
        // gone again as soon as it has.
        let pwfile = base.join("initdb.password");
        write_private(&pwfile, &password)?;
        user.give(&pwfile)?;
        let mut initdb = user.command(&bin.join("initdb"));
        initdb
            .current_dir(&base)
            .arg("--pgdata")
            .arg(&data)
            .args(["--username=postgres", "--encoding=UTF8"])
            .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--locale=C.UTF-8", "--no-sync"]);
        let initialized = run(initdb);
        let _ = fs::remove_file(&pwfile);
        initialized?;
        write_passfile(&base, &password)?;
        let mut lines = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            base.display()
        );
        for (name, value) in &options.settings {
            lines.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        append_settings(&data, &lines)?;
        Ok(Cluster {
            base,
            data,
            port: 0,
            password,
            bin,
            user,
            temporary: false,
            running: false,
            fixed_port: false,
        })
    }

    /// The cluster kept under `base` (made there on first use, on a free
    /// port it then keeps), started if it is not running. It outlives this
    /// process: `stop` ends it.
    pub fn open_or_create(base: &Path, options: &ClusterOptions) -> Result<Cluster, ClusterError> {
        let data = base.join("data");
        let mut cluster = if data.join("PG_VERSION").is_file() {
            Cluster::open_existing(base)?
        } else {
            fs::create_dir_all(base).map_err(io(format!("creating {}", base.display())))?;
            let port = free_port()?;
            let mut cluster = Cluster::create(
                base.to_owned(),
                &options.clone().setting("port", &port.to_string()),
            )?;
            fs::write(base.join("port"), format!("{port}\n"))
                .map_err(io("writing the port file"))?;
            cluster.port = port;
            cluster.fixed_port = true;
            cluster
        };
        cluster.running = cluster.is_running();
        if !cluster.running {
            cluster.start()?;
        }
        if cluster.password.is_empty() {
            cluster.end_trust()?;
        }
        Ok(cluster)
    }

    /// A cluster made by an earlier loader trusted every local connection:
    /// it gets a password and SCRAM in place of trust, and its directory
    /// is closed to others.
    fn end_trust(&mut self) -> Result<(), ClusterError> {
        let password = random_password()?;
        let mut client = postgres::Client::connect(
            &format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port),
            postgres::NoTls,
        )?;
        // A password cannot be a parameter of ALTER ROLE; format() quotes it.
        let statement: String = client
            .query_one(
                "SELECT format('ALTER ROLE postgres PASSWORD %L', $1::text)",
                &[&password],
            )?
            .get(0);
        client.batch_execute(&statement)?;
        let hba = self.data.join("pg_hba.conf");
        let rules = fs::read_to_string(&hba).map_err(io("reading pg_hba.conf"))?;
        let secured: String = rules
            .lines()
            .map(|line| {
                if line.trim_start().starts_with('#') {
                    line.to_owned()
                } else {
                    line.replace("trust", "scram-sha-256")
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        fs::write(&hba, secured + "\n").map_err(io("writing pg_hba.conf"))?;
        client.batch_execute("SELECT pg_reload_conf()")?;
        write_passfile(&self.base, &password)?;
        private(&self.base)?;
        self.password = password;
        Ok(())
    }

    /// The cluster kept under `base`, running or not, as it is.
    pub fn open_existing(base: &Path) -> Result<Cluster, ClusterError> {
        let port = fs::read_to_string(base.join("port"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| ClusterError::Start(format!("{} has no port file", base.display())))?;
        let password = fs::read_to_string(base.join(PASSFILE))
            .ok()
            .and_then(|line| line.trim().rsplit(':').next().map(str::to_owned))
            .unwrap_or_default();
        let mut cluster = Cluster {
            base: base.to_owned(),
            data: base.join("data"),
            port,
            password,
            bin: server_bin_dir()?,
            user: ServerUser::for_this_process()?,
            temporary: false,
            running: false,
            fixed_port: true,
        };
        cluster.running = cluster.is_running();
        Ok(cluster)
    }

    /// `pg_ctl ACTION` on this cluster's data directory, run as the server's
    /// OS user; the caller adds the action's options.
    fn pg_ctl(&self, action: &str) -> Command {
        let mut pg_ctl = self.user.command(&self.bin.join("pg_ctl"));
        pg_ctl
            .current_dir(&self.base)
            .arg(action)
            .arg("--pgdata")
            .arg(&self.data);
        pg_ctl
    }

    /// Whether the server of this data directory is up (pg_ctl status).
    pub fn is_running(&self) -> bool {
        self.pg_ctl("status")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Leaves a kept cluster running when this value goes away.
    pub fn detach(mut self) {
        self.running = false;
    }

    /// Starts the server on a free port; a port taken between our look and the
    /// server's bind is retried on another.
    pub fn start(&mut self) -> Result<(), ClusterError> {
        let mut last_error = None;
        let attempts = if self.fixed_port { 1 } else { 5 };
        for _ in 0..attempts {
            if !self.fixed_port {
                self.port = free_port()?;
            }
            let mut options = format!("-p {}", self.port);
            if let Some(libraries) = self.installed_preload_libraries() {
                options.push_str(&format!(" -c shared_preload_libraries={libraries}"));
            }
            let mut pg_ctl = self.pg_ctl("start");
            pg_ctl
                .arg("--log")
                .arg(self.log_path())
                .args(["--wait", "--timeout=60", "--silent"])
                .arg(format!("--options={options}"));
            match run(pg_ctl) {
                Ok(_) => {
                    self.running = true;
                    return Ok(());
                }
                Err(err) => last_error = Some(err),
            }
        }
        let log = self.log();
        match last_error {
            Some(ClusterError::Command { .. }) | None => Err(ClusterError::Start(log)),
            Some(other) => Err(other),
        }
    }

    /// When the server is told to preload a library that is not installed,
    /// the libraries it is told to preload that are; None when every one is
    /// there, or when that cannot be told. A server told to preload a
    /// library it lacks refuses to start: a package removed (or a library
    /// not built for this major) would otherwise lock the loader out of its
    /// own cluster, and `install --from` with it.
    fn installed_preload_libraries(&self) -> Option<String> {
        let mut postgres = self.user.command(&self.bin.join("postgres"));
        postgres
            .args(["-C", "shared_preload_libraries", "-D"])
            .arg(&self.data);
        let configured = run(postgres).ok()?;
        let configured = String::from_utf8_lossy(&configured.stdout).into_owned();
        let pg_config = Command::new(self.bin.join("pg_config"))
            .arg("--pkglibdir")
            .output()
            .ok()?;
        let library_dir = PathBuf::from(String::from_utf8_lossy(&pg_config.stdout).trim());
        if !library_dir.is_dir() {
            return None;
        }
        let libraries: Vec<&str> = configured
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .collect();
        // The list goes on pg_ctl's command line, which a shell reads: a
        // name with any other character is left to the configuration.
        let plain = |name: &&str| {
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./$".contains(&b))
        };
        if !libraries.iter().all(plain) {
            return None;
        }
        let installed: Vec<&str> = libraries
            .iter()
            .copied()
            .filter(|name| library_file(&library_dir, name).is_file())
            .collect();
        (installed.len() < libraries.len()).then(|| installed.join(","))
    }

    /// Starts a hot standby of this cluster (pg_basebackup -R) in a new
    /// temporary directory, streaming from it over loopback.
    pub fn start_standby(&self) -> Result<Cluster, ClusterError> {
        let base = tempfile::Builder::new()
            .prefix("llm_council-standby-")
            .tempdir()
            .map_err(io("creating a temporary directory"))?
            .keep();
        self.user.give(&base)?;
        let data = base.join("data");
        let mut backup = self.user.command(&self.bin.join("pg_basebackup"));
        // -R writes the password into the standby's primary_conninfo.
        backup
            .env("PGPASSWORD", &self.password)
            .current_dir(&base)
            .arg("--pgdata")
            .arg(&data)
            .args(["--write-recovery-conf", "--checkpoint=fast", "--no-sync"])
            .args(["--host=127.0.0.1", "--username=postgres"])
            .arg(format!("--port={}", self.port));
        run(backup)?;
        // The copied configuration names the primary's socket directory.
        append_settings(
            &data,
            &format!("\nunix_socket_directories = '{}'\n", base.display()),
        )?;
        private(&base)?;
        let mut standby = Cluster {
            base,
            data,
            port: 0,
            password: self.password.clone(),
            bin: self.bin.clone(),
            user: self.user,
            temporary: true,
            running: false,
            fixed_port: false,
        };
        standby.start()?;
        Ok(standby)
    }

    /// Stops the server, waiting for it to shut down cleanly.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        if !self.running && !self.is_running() {
            return Ok(());
        }
        let mut pg_ctl = self.pg_ctl("stop");
        pg_ctl.args(["--mode=fast", "--wait", "--timeout=60", "--silent"]);
        run(pg_ctl)?;
        self.running = false;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A directory the server's OS user owns, for files the server must read.
    pub fn scratch_dir(&self) -> &Path {
        &self.base
    }

    /// Gives a file or directory to the server's OS user, so that the server
    /// can read what a test wrote there.
    pub fn give_to_server(&self, path: &Path) -> Result<(), ClusterError> {
        self.user.give(path)
    }

    pub fn bin(&self, program: &str) -> PathBuf {
        self.bin.join(program)
    }

    /// The connection string for `database`, password included, as the
    /// loader and the `postgres` crate take it.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The connection string for `database` without the password, naming
    /// the password file instead: what psql and libpq take, and what may be
    /// printed.
    pub fn url_with_passfile(&self, database: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/{database}?passfile={}",
            self.port,
            self.passfile().display()
        )
    }

    /// The superuser's password file (pgpass form).
    pub fn passfile(&self) -> PathBuf {
        self.base.join(PASSFILE)
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn connect(&self, database: &str) -> Result<postgres::Client, ClusterError> {
        Ok(postgres::Client::connect(
            &self.url(database),
            postgres::NoTls,
        )?)
    }

    /// A client of `database` logged in as `role` with `password`.
    pub fn connect_as(
        &self,
        database: &str,
        role: &str,
        password: &str,
    ) -> Result<postgres::Client, ClusterError> {
        let mut config: postgres::Config = self.url(database).parse()?;
        config.user(role).password(password);
        Ok(config.connect(postgres::NoTls)?)
    }

    /// Creates `name` and returns a connection to it.
    pub fn create_database(&self, name: &str) -> Result<postgres::Client, ClusterError> {
        let mut admin = self.connect("postgres")?;
        admin.batch_execute(&format!("CREATE DATABASE {}", QuotedIdentifier::new(name)))?;
        self.connect(name)
    }

    pub fn log_path(&self) -> PathBuf {
        self.base.join("server.log")
    }

    /// The server's log so far (empty when there is none yet).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the server accepts connections again, e.g. after a backend
    /// crash made the postmaster reinitialize.
    pub fn wait_until_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.connect("postgres") {
                Ok(_) => return Ok(()),
                Err(err) if std::time::Instant::now() > deadline => return Err(err),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _stopped = self
                .pg_ctl("stop")
                .args(["--mode=immediate", "--wait", "--silent"])
                .output();
        }
        if self.temporary {
            let _removed = fs::remove_dir_all(&self.base);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preloaded_library_is_looked_for_where_postgres_loads_it_from() {
        let dir = Path::new("/usr/lib/postgresql/15/lib");
        for (name, file) in [
            ("llm_council", "/usr/lib/postgresql/15/lib/llm_council.so"),
            (
                "$libdir/llm_council",
                "/usr/lib/postgresql/15/lib/llm_council.so",
            ),
            (
                "auto_explain.so",
                "/usr/lib/postgresql/15/lib/auto_explain.so",
            ),
            ("/opt/lib/timescaledb", "/opt/lib/timescaledb.so"),
        ] {
            assert_eq!(library_file(dir, name), PathBuf::from(file), "{name}");
        }
    }
}
