//! Which server the loader talks to, by libpq's conventions: `--database-url`,
//! else `DATABASE_URL`, else the `PG*` variables; with none of them, the
//! private local cluster (see `embedded`).

use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the connection string is not valid: {0}")]
    BadUrl(postgres::Error),
    #[error("{0} is not a number")]
    BadPort(String),
    #[error(
        "sslmode={0} needs TLS, which this build of council-loader does not have; \
         connect through a TLS-terminating proxy or with sslmode=prefer on a trusted network"
    )]
    TlsRequired(String),
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
    let mut config: Config = url.parse().map_err(ConnectError::BadUrl)?;
    apply_environment_defaults(&mut config)?;
    Ok(config)
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
        config.ssl_mode(match mode.as_str() {
            "disable" => SslMode::Disable,
            "require" | "verify-ca" | "verify-full" => return Err(ConnectError::TlsRequired(mode)),
            _ => SslMode::Prefer,
        });
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err(ConnectError::TlsRequired("require".into()));
    }
    Ok(())
}

fn from_environment() -> Result<Config, ConnectError> {
    let mut config = Config::new();
    apply_environment_defaults(&mut config)?;
    Ok(config)
}

/// The target as people write it, never with the password.
pub fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
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

pub fn connect(
    config: &Config,
    on_notice: impl Fn(&str) + Send + Sync + 'static,
) -> Result<postgres::Client, ConnectError> {
    let mut config = config.clone();
    config.notice_callback(move |notice| on_notice(notice.message()));
    config
        .connect(postgres::NoTls)
        .map_err(|source| ConnectError::Connect {
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
}
