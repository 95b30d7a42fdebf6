//! Which server the loader talks to, by libpq's conventions: `--database-url`,
//! else `DATABASE_URL`, else the `PG*` variables; with none of them, the
//! private local cluster (see `embedded`).

use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::time::Duration;

use native_tls::{Certificate, TlsConnector};
use postgres::config::{Host, SslMode};
use postgres::Config;
use postgres_native_tls::MakeTlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the connection string is not valid: {0}")]
    BadUrl(postgres::Error),
    #[error("{0} is not a number")]
    BadPort(String),
    #[error("PGSSLMODE={0} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    BadSslMode(String),
    #[error("cannot read the root certificate {path}: {reason}")]
    RootCertificate { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("could not connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: postgres::Error,
    },
}

/// Where the connection settings came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    DatabaseUrl,
    LibpqEnvironment,
}

/// The settings named anywhere, or None when nothing names a server.
pub fn configured(url: Option<&str>) -> Result<Option<(Config, Origin)>, ConnectError> {
    if let Some(url) = url {
        return parse(url).map(|c| Some((c, Origin::Flag)));
    }
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()) {
        return parse(&url).map(|c| Some((c, Origin::DatabaseUrl)));
    }
    let names_a_server = [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGSERVICE",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some());
    if names_a_server {
        return from_environment().map(|c| Some((c, Origin::LibpqEnvironment)));
    }
    Ok(None)
}

fn parse(url: &str) -> Result<Config, ConnectError> {
    let (url, passfile) = without_passfile(url);
    let mut config: Config = url.parse().map_err(ConnectError::BadUrl)?;
    apply_environment_defaults(&mut config)?;
    password_from_file(&mut config, passfile.as_deref());
    Ok(config)
}

/// The URL without its `passfile=` parameter (which the `postgres` crate
/// does not know), and that parameter's value.
fn without_passfile(url: &str) -> (String, Option<PathBuf>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut passfile = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("passfile=") {
            Some(value) => {
                passfile = Some(PathBuf::from(percent_decoded(value)));
                false
            }
            None => true,
        })
        .collect();
    if kept.is_empty() {
        (base.to_owned(), passfile)
    } else {
        (format!("{base}?{}", kept.join("&")), passfile)
    }
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every byte but RFC 3986's unreserved characters as `%XX`.
fn percent_encoded(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Without a password in the settings, the password file's, as libpq.
fn password_from_file(config: &mut Config, named: Option<&std::path::Path>) {
    if config.get_password().is_some() {
        return;
    }
    let Some(file) = crate::pgpass::file(named) else {
        return;
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        _ => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    if let Some(password) = crate::pgpass::lookup(&file, &host, port, &database, &user) {
        config.password(password);
    }
}

/// Fills what a URL left out from the PG* variables, as libpq does.
fn apply_environment_defaults(config: &mut Config) -> Result<(), ConnectError> {
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .ok()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_hosts().is_empty() {
        let host = std::env::var("PGHOST").unwrap_or_else(|_| "/var/run/postgresql".into());
        for host in host.split(',') {
            config.host(host);
        }
    }
    if config.get_ports().is_empty() {
        if let Ok(port) = std::env::var("PGPORT") {
            config.port(
                port.parse()
                    .map_err(|_| ConnectError::BadPort(port.clone()))?,
            );
        }
    }
    if config.get_dbname().is_none() {
        if let Ok(database) = std::env::var("PGDATABASE") {
            config.dbname(&database);
        }
    }
    if config.get_application_name().is_none() {
        config.application_name("council-loader");
    }
    if config.get_connect_timeout().is_none() {
        let seconds = std::env::var("PGCONNECT_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30);
        config.connect_timeout(Duration::from_secs(seconds));
    }
    if let Ok(mode) = std::env::var("PGSSLMODE") {
        config.ssl_mode(match verification(&mode)? {
            None => SslMode::Disable,
            Some(Verify::Nothing) if mode != "require" => SslMode::Prefer,
            Some(_) => SslMode::Require,
        });
    }
    Ok(())
}

fn from_environment() -> Result<Config, ConnectError> {
    let mut config = Config::new();
    apply_environment_defaults(&mut config)?;
    password_from_file(&mut config, None);
    Ok(config)
}

/// The target as a URL psql accepts, never with the password.
pub fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            // libpq takes a socket directory as the host, its slashes
            // percent-encoded so that they do not end the host part.
            Host::Unix(path) => percent_encoded(path.as_os_str().as_bytes()),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql://{}@{host}:{port}/{}",
        config.get_user().unwrap_or("postgres"),
        config
            .get_dbname()
            .unwrap_or(config.get_user().unwrap_or("postgres"))
    )
}

/// Whether the server runs on this machine, so that files here are files there.
pub fn is_local(config: &Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1"),
    })
}

/// How much of the server's certificate TLS checks, as libpq's sslmode
/// says: `require` (and `prefer`, `allow`) encrypt without checking,
/// `verify-ca` checks the chain, `verify-full` the chain and the host name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    ChainAndHost,
}

/// None for sslmode=disable.
fn verification(mode: &str) -> Result<Option<Verify>, ConnectError> {
    match mode {
        "disable" => Ok(None),
        "allow" | "prefer" | "require" => Ok(Some(Verify::Nothing)),
        "verify-ca" => Ok(Some(Verify::Chain)),
        "verify-full" => Ok(Some(Verify::ChainAndHost)),
        other => Err(ConnectError::BadSslMode(other.to_owned())),
    }
}

/// TLS as the settings ask for it: PGSSLMODE's verification, PGSSLROOTCERT's
/// root certificate.
fn tls() -> Result<MakeTlsConnector, ConnectError> {
    let mode = std::env::var("PGSSLMODE").unwrap_or_else(|_| "prefer".into());
    let verify = verification(&mode)?.unwrap_or(Verify::Nothing);
    let mut builder = TlsConnector::builder();
    builder
        .danger_accept_invalid_certs(verify == Verify::Nothing)
        .danger_accept_invalid_hostnames(verify != Verify::ChainAndHost);
    if let Some(path) = std::env::var_os("PGSSLROOTCERT").map(PathBuf::from) {
        let pem = std::fs::read(&path).map_err(|err| ConnectError::RootCertificate {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        let certificate =
            Certificate::from_pem(&pem).map_err(|err| ConnectError::RootCertificate {
                path: path.clone(),
                reason: err.to_string(),
            })?;
        // As libpq: the named roots replace the system's, so that
        // verify-ca trusts this CA only, not every public one.
        builder
            .disable_built_in_roots(true)
            .add_root_certificate(certificate);
    }
    let connector = builder
        .build()
        .map_err(|err| ConnectError::Tls(err.to_string()))?;
    Ok(MakeTlsConnector::new(connector))
}

pub fn connect(
    config: &Config,
    on_notice: impl Fn(&str) + Send + Sync + 'static,
) -> Result<postgres::Client, ConnectError> {
    let mut config = config.clone();
    config.notice_callback(move |notice| on_notice(notice.message()));
    let result = if config.get_ssl_mode() == SslMode::Disable {
        config.connect(postgres::NoTls)
    } else {
        config.connect(tls()?)
    };
    result.map_err(|source| ConnectError::Connect {
        target: describe(&config),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_keeps_its_parts_and_describe_hides_the_password() {
        let config = parse("postgresql://dba:s3cret@db1:6543/council").expect("parse");
        assert_eq!(describe(&config), "postgresql://dba@db1:6543/council");
        assert!(!describe(&config).contains("s3cret"));
        assert!(!is_local(&config));
        let local = parse("postgresql://postgres@127.0.0.1:5432/postgres").expect("parse");
        assert!(is_local(&local));
    }

    #[test]
    fn describe_prints_urls_psql_takes_for_tcp_hosts_and_socket_directories() {
        let mut tcp = Config::new();
        tcp.host("db1").port(6543).user("dba").dbname("council");
        assert_eq!(describe(&tcp), "postgresql://dba@db1:6543/council");
        let mut socket = Config::new();
        socket
            .host("/var/run/postgresql")
            .port(5432)
            .user("u")
            .dbname("db");
        assert_eq!(
            describe(&socket),
            "postgresql://u@%2Fvar%2Frun%2Fpostgresql:5432/db"
        );
        assert_eq!(
            percent_decoded("%2Fvar%2Frun%2Fpostgresql"),
            "/var/run/postgresql"
        );
    }

    #[test]
    fn a_passfile_parameter_is_read_and_left_out_of_the_url() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("my pass");
        std::fs::write(&file, "*:*:*:postgres:from-the-file\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let url = format!(
            "postgresql://postgres@127.0.0.1:5432/postgres?passfile={}&application_name=x",
            file.display().to_string().replace(' ', "%20")
        );
        let config = parse(&url).expect("parse");
        assert_eq!(config.get_password(), Some(&b"from-the-file"[..]));
        assert_eq!(config.get_application_name(), Some("x"));
    }
}
