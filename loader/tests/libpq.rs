//! The loader chooses and reaches a server as libpq does. Each case gives
//! psql and the loader's own connection (`connect::configured` and
//! `connect::connect`, in a child process of this binary so that each case
//! has an environment of its own) the same environment and URL, against a
//! real cluster; both must reach the same database, user and port, or both
//! must fail.

use std::path::PathBuf;
use std::process::{Command, Output};

use council_loader::cluster::{Cluster, ClusterOptions};

const QUERY: &str = "select current_database() || ' ' || current_user || ' ' || inet_server_port()";

/// Set for the child that connects as the loader does, with the URL (if
/// any) in `PROBE_URL`.
const PROBE: &str = "COUNCIL_LIBPQ_PROBE";
const PROBE_URL: &str = "COUNCIL_LIBPQ_PROBE_URL";

/// The loader's side of every case, run by them in a child process (with
/// `PROBE` set); never run on its own.
#[test]
#[ignore = "the loader's side of the psql comparisons, run by them in a child process"]
fn probe_child() {
    if std::env::var_os(PROBE).is_none() {
        return;
    }
    let url = std::env::var(PROBE_URL).ok();
    let reached = council_loader::connect::configured(url.as_deref())
        .map_err(|err| err.to_string())
        .and_then(|found| found.ok_or_else(|| "nothing names a server".to_owned()))
        .and_then(|(config, _)| {
            council_loader::connect::connect(&config, |_| {}).map_err(|err| err.to_string())
        })
        .and_then(|mut client| {
            client
                .query_one(QUERY, &[])
                .map(|row| row.get::<_, String>(0))
                .map_err(|err| err.to_string())
        });
    match reached {
        Ok(reached) => println!("PROBE-OK {reached}"),
        Err(err) => println!("PROBE-ERR {}", err.replace('\n', " ")),
    }
}

/// A cluster, and a home directory with nothing in it: no `~/.pgpass`, no
/// `~/.pg_service.conf`, and a `PGSYSCONFDIR` of its own.
struct Scene {
    cluster: Cluster,
    home: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let cluster = Cluster::start_temporary(&ClusterOptions::default()).expect("a test cluster");
        for name in ["svcdb", "urldb"] {
            cluster.create_database(name).expect("create database");
        }
        Scene {
            cluster,
            home: tempfile::tempdir().expect("home"),
        }
    }

    fn port(&self) -> u16 {
        self.cluster.port()
    }

    /// What a successful connection reports.
    fn reached(&self, database: &str) -> String {
        format!("{database} postgres {}", self.port())
    }

    fn passfile(&self) -> String {
        self.cluster.passfile().display().to_string()
    }

    /// Writes a file under the home directory, 0600, and returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.home.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path.display().to_string()
    }

    /// A service file whose `[council]` reaches svcdb with the cluster's
    /// password file, after a section that must not be read.
    fn service_file(&self, name: &str, extra: &str) -> String {
        self.file(
            name,
            &format!(
                "# services for the tests\n\n[elsewhere]\nport=1\n\n[council]\n  host=127.0.0.1\nport={}\ndbname=svcdb\nuser=postgres\npassfile={}\n{extra}",
                self.port(),
                self.passfile()
            ),
        )
    }

    /// Only these variables, a PATH, the empty home and its sysconfdir.
    fn environment(&self, command: &mut Command, vars: &[(&str, &str)]) {
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env("PGSYSCONFDIR", self.home.path().join("etc"));
        for (name, value) in vars {
            command.env(name, value);
        }
    }

    fn psql(&self, vars: &[(&str, &str)], url: Option<&str>) -> Result<String, String> {
        let mut command = Command::new(psql_program(&self.cluster));
        self.environment(&mut command, vars);
        command.args(["-X", "-A", "-t", "-w", "-c", QUERY]);
        if let Some(url) = url {
            command.args(["-d", url]);
        }
        let output = command.output().expect("running psql");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    fn loader(&self, vars: &[(&str, &str)], url: Option<&str>) -> Result<String, String> {
        let mut command = Command::new(std::env::current_exe().expect("this test binary"));
        self.environment(&mut command, vars);
        command.env(PROBE, "1").args([
            "probe_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        if let Some(url) = url {
            command.env(PROBE_URL, url);
        }
        probe_result(&command.output().expect("running the probe"))
    }

    /// psql and the loader both reach `expected` (database user port), or,
    /// with None, both fail.
    fn agree(&self, vars: &[(&str, &str)], url: Option<&str>, expected: Option<&str>) {
        let psql = self.psql(vars, url);
        let loader = self.loader(vars, url);
        let context = format!("vars {vars:?}, url {url:?}\npsql:   {psql:?}\nloader: {loader:?}");
        match expected {
            Some(expected) => {
                assert_eq!(psql.as_deref(), Ok(expected), "psql: {context}");
                assert_eq!(loader.as_deref(), Ok(expected), "loader: {context}");
            }
            None => {
                assert!(psql.is_err(), "psql connected: {context}");
                assert!(loader.is_err(), "the loader connected: {context}");
            }
        }
    }
}

/// `$PG_CONFIG --bindir`'s psql (the cluster's bin directory), else the
/// one on the PATH.
fn psql_program(cluster: &Cluster) -> PathBuf {
    let beside = cluster.bin("psql");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("/usr/bin/psql")
    }
}

/// The probe's one line; a probe that printed none (it panicked) fails the
/// test rather than counting as a failed connection.
fn probe_result(output: &Output) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    // libtest prints the test's name on the same line.
    for line in stdout.lines() {
        if let Some((_, reached)) = line.split_once("PROBE-OK ") {
            return Ok(reached.to_owned());
        }
        if let Some((_, err)) = line.split_once("PROBE-ERR ") {
            return Err(err.to_owned());
        }
    }
    panic!(
        "the probe printed no result ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_service_named_by_pgservice_beats_the_environment() {
    let scene = Scene::new();
    let file = scene.service_file("services.conf", "");
    let svcdb = scene.reached("svcdb");
    // The service's database and port win over PGDATABASE and PGPORT.
    scene.agree(
        &[
            ("PGSERVICE", "council"),
            ("PGSERVICEFILE", &file),
            ("PGDATABASE", "postgres"),
            ("PGPORT", "1"),
        ],
        None,
        Some(&svcdb),
    );
    // The environment fills what the service leaves out.
    let partial = scene.file(
        "partial.conf",
        &format!(
            "[council]\nhost=127.0.0.1\nport={}\nuser=postgres\n",
            scene.port()
        ),
    );
    scene.agree(
        &[
            ("PGSERVICE", "council"),
            ("PGSERVICEFILE", &partial),
            ("PGDATABASE", "urldb"),
            ("PGPASSFILE", &scene.passfile()),
        ],
        None,
        Some(&scene.reached("urldb")),
    );
}

#[test]
fn a_service_in_the_url_fills_only_what_the_url_leaves_out() {
    let scene = Scene::new();
    let file = scene.service_file("services.conf", "");
    let vars = [("PGSERVICEFILE", file.as_str()), ("PGDATABASE", "postgres")];
    scene.agree(
        &vars,
        Some("postgresql:///urldb?service=council"),
        Some(&scene.reached("urldb")),
    );
    scene.agree(
        &vars,
        Some("postgresql://?service=council"),
        Some(&scene.reached("svcdb")),
    );
    scene.agree(
        &vars,
        Some("service=council dbname=urldb"),
        Some(&scene.reached("urldb")),
    );
    // The URL's port beats the service's: nothing listens on port 1.
    scene.agree(
        &vars,
        Some("postgresql://127.0.0.1:1/urldb?service=council"),
        None,
    );
    // Without ~/.pg_service.conf, the system one ($PGSYSCONFDIR) is read;
    // so it is when PGSERVICEFILE lacks the service.
    scene.service_file("etc/pg_service.conf", "");
    let svcdb = scene.reached("svcdb");
    scene.agree(&[], Some("postgresql://?service=council"), Some(&svcdb));
    let other = scene.file("other.conf", "[other]\nport=1\n");
    scene.agree(
        &[("PGSERVICEFILE", &other)],
        Some("postgresql://?service=council"),
        Some(&svcdb),
    );
    // A PGSERVICEFILE that is not there is an error, not a fallback.
    let absent = scene.home.path().join("absent").display().to_string();
    scene.agree(
        &[("PGSERVICEFILE", &absent)],
        Some("postgresql://?service=council"),
        None,
    );
}

#[test]
fn a_missing_or_malformed_service_fails_for_both() {
    let scene = Scene::new();
    let file = scene.service_file("services.conf", "");
    scene.agree(
        &[("PGSERVICE", "nosuch"), ("PGSERVICEFILE", &file)],
        None,
        None,
    );
    scene.agree(
        &[("PGSERVICEFILE", &file)],
        Some("postgresql:///svcdb?service=nosuch"),
        None,
    );
    let unknown_key = scene.service_file("unknown.conf", "colour=blue\n");
    scene.agree(
        &[("PGSERVICE", "council"), ("PGSERVICEFILE", &unknown_key)],
        None,
        None,
    );
    let spaced_key = scene.service_file("spaced.conf", "sslmode =disable\n");
    scene.agree(
        &[("PGSERVICE", "council"), ("PGSERVICEFILE", &spaced_key)],
        None,
        None,
    );
    // The same line in another section is never read.
    let elsewhere = scene.file(
        "elsewhere.conf",
        &format!(
            "[other]\ncolour=blue\n[council]\nhost=127.0.0.1\nport={}\nuser=postgres\ndbname=svcdb\npassfile={}\n",
            scene.port(),
            scene.passfile()
        ),
    );
    scene.agree(
        &[("PGSERVICE", "council"), ("PGSERVICEFILE", &elsewhere)],
        None,
        Some(&scene.reached("svcdb")),
    );
}

#[test]
fn pghostaddr_reaches_the_server_whatever_the_host_name() {
    let scene = Scene::new();
    let port = scene.port().to_string();
    let password = scene.cluster.password().to_owned();
    // Passwords only for the host name, or only for the address: which
    // one is found says what the password file was searched by.
    let by_name = scene.file(
        "by-name.pgpass",
        &format!("council.invalid:{port}:*:postgres:{password}\n"),
    );
    let by_address = scene.file(
        "by-address.pgpass",
        &format!("127.0.0.1:{port}:*:postgres:{password}\n"),
    );
    let reached = scene.reached("postgres");
    let base = [
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
        ("PGDATABASE", "postgres"),
    ];
    scene.agree(
        &joined(
            &base,
            &[
                ("PGHOST", "council.invalid"),
                ("PGHOSTADDR", "127.0.0.1"),
                ("PGPASSFILE", &by_name),
            ],
        ),
        None,
        Some(&reached),
    );
    // The host name alone does not resolve.
    scene.agree(
        &joined(
            &base,
            &[("PGHOST", "council.invalid"), ("PGPASSFILE", &by_name)],
        ),
        None,
        None,
    );
    // With a host name, the password file is not searched by the address.
    scene.agree(
        &joined(
            &base,
            &[
                ("PGHOST", "council.invalid"),
                ("PGHOSTADDR", "127.0.0.1"),
                ("PGPASSFILE", &by_address),
            ],
        ),
        None,
        None,
    );
    // Without one, the address serves as the host name.
    scene.agree(
        &joined(
            &base,
            &[("PGHOSTADDR", "127.0.0.1"), ("PGPASSFILE", &by_address)],
        ),
        None,
        Some(&reached),
    );
    scene.agree(
        &joined(
            &base,
            &[
                ("PGHOST", "council.invalid"),
                ("PGHOSTADDR", "not-an-address"),
                ("PGPASSFILE", &by_name),
            ],
        ),
        None,
        None,
    );
    // hostaddr in the URL, and the URL's beats PGHOSTADDR.
    let url = format!(
        "postgresql://postgres@council.invalid:{port}/postgres?hostaddr=127.0.0.1&passfile={by_name}"
    );
    scene.agree(&base, Some(&url), Some(&reached));
    scene.agree(
        &joined(&base, &[("PGHOSTADDR", "192.0.2.1")]),
        Some(&url),
        Some(&reached),
    );
}

#[test]
fn the_urls_sslmode_beats_pgsslmode() {
    // The cluster has no TLS: sslmode=require cannot connect.
    let scene = Scene::new();
    let url = scene.cluster.url_with_passfile("urldb");
    let urldb = scene.reached("urldb");
    let require = [("PGSSLMODE", "require")];
    scene.agree(
        &require,
        Some(&format!("{url}&sslmode=disable")),
        Some(&urldb),
    );
    scene.agree(&require, Some(&url), None);
    scene.agree(
        &[("PGSSLMODE", "verify-full")],
        Some(&format!("{url}&sslmode=prefer")),
        Some(&urldb),
    );
    scene.agree(&[], Some(&format!("{url}&sslmode=verify-ca")), None);
    // A service's sslmode beats PGSSLMODE as well.
    let file = scene.service_file("services.conf", "sslmode=disable\n");
    scene.agree(
        &[
            ("PGSERVICE", "council"),
            ("PGSERVICEFILE", &file),
            ("PGSSLMODE", "require"),
        ],
        None,
        Some(&scene.reached("svcdb")),
    );
}

fn joined<'a>(
    base: &[(&'a str, &'a str)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(extra).copied().collect()
}
