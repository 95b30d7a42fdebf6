//! Which server the loader talks to, by libpq's conventions: `--database-url`,
//! else `DATABASE_URL`, else the `PG*` variables; with none of them, the
//! private local cluster (see `embedded`).
//!
//! The connection string is read here, not by the `postgres` crate, because
//! libpq's rules are not that crate's: what the string gives wins, then the
//! service file's settings fill what it left out, then the `PG*` variables,
//! then the defaults (libpq's `conninfo_add_defaults`). A single host without
//! a port takes `PGPORT`, `hostaddr` is honoured, and `sslmode` takes
//! `verify-ca` and `verify-full`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use native_tls::{Certificate, Protocol, TlsConnector};
use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
use postgres::config::{
    ChannelBinding, Host, LoadBalanceHosts, SslMode, SslNegotiation, TargetSessionAttrs,
};
use postgres::Config;
use postgres_native_tls::MakeTlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the connection string is not valid: {0}")]
    BadUrl(String),
    #[error("{0} is not a port number")]
    BadPort(String),
    #[error("{0} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    BadSslMode(String),
    #[error("{0} is not an IP address")]
    BadHostaddr(String),
    #[error("{0} is not a valid value")]
    BadValue(String),
    #[error("{0}")]
    HostCount(String),
    #[error("{0} is a libpq setting council-loader cannot honour")]
    Unsupported(String),
    #[error("definition of service \"{service}\" not found{}", searched_files(.searched))]
    ServiceNotFound {
        service: String,
        searched: Vec<PathBuf>,
    },
    #[error("syntax error in service file \"{}\", line {line}: {reason}", .path.display())]
    ServiceFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot read the service file \"{}\": {reason}", .path.display())]
    ServiceFileUnreadable { path: PathBuf, reason: String },
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

/// Which service files were read, for ServiceNotFound.
fn searched_files(files: &[PathBuf]) -> String {
    if files.is_empty() {
        return " (there is no service file)".into();
    }
    let names = files
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>();
    format!(" (looked in {})", names.join(", "))
}

/// Where the connection settings came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    DatabaseUrl,
    LibpqEnvironment,
}

/// A server to connect to: the `postgres` crate's settings, and what TLS
/// must check, which they cannot carry (their sslmode knows no verify-ca or
/// verify-full, roots or protocol versions).
#[derive(Clone, Debug)]
pub struct Server {
    pub config: Config,
    tls: TlsWish,
}

impl Server {
    /// See [`describe`].
    pub fn describe(&self) -> String {
        describe(&self.config)
    }

    /// See [`is_local`].
    pub fn is_local(&self) -> bool {
        is_local(&self.config)
    }
}

impl From<Config> for Server {
    /// Settings made here (the private cluster's), with libpq's TLS defaults.
    fn from(config: Config) -> Server {
        Server {
            config,
            tls: TlsWish::default(),
        }
    }
}

/// The libpq environment variables that name a server: with any of them
/// set, the loader connects where libpq would rather than start its own.
pub const SERVER_ENVIRONMENT: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGSERVICE",
];

/// The settings named anywhere, or None when nothing names a server.
pub fn configured(url: Option<&str>) -> Result<Option<(Server, Origin)>, ConnectError> {
    if let Some(url) = url {
        return parse(url).map(|c| Some((c, Origin::Flag)));
    }
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()) {
        return parse(&url).map(|c| Some((c, Origin::DatabaseUrl)));
    }
    let names_a_server = SERVER_ENVIRONMENT
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if names_a_server {
        return from_environment().map(|c| Some((c, Origin::LibpqEnvironment)));
    }
    Ok(None)
}

fn parse(url: &str) -> Result<Server, ConnectError> {
    settle(given(url)?)
}

fn from_environment() -> Result<Server, ConnectError> {
    settle(Settings::new())
}

/// The connection string's settings completed as libpq completes them.
fn settle(given: Settings) -> Result<Server, ConnectError> {
    let settings = with_defaults(given)?;
    let mut config = build(&settings)?;
    password_from_file(&mut config, &settings);
    Ok(Server {
        config,
        tls: tls_wish(&settings)?,
    })
}

/// Where a setting was given, so that an error can point there.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Given {
    ConnectionString,
    ServiceFile { path: PathBuf, line: usize },
    Environment(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Setting {
    value: String,
    given: Given,
}

impl Setting {
    /// `key=value` and where it was given, for messages.
    fn shown(&self, key: &str) -> String {
        match &self.given {
            Given::ConnectionString => format!("{key}={} in the connection string", self.value),
            Given::ServiceFile { path, line } => {
                format!("{key}={} in {}, line {line}", self.value, path.display())
            }
            Given::Environment(var) => format!("{var}={}", self.value),
        }
    }
}

/// libpq's connection keywords with what was given for them.
type Settings = BTreeMap<&'static str, Setting>;

/// libpq's connection keywords and their environment variables (libpq 15's
/// `PQconninfoOptions`, plus the few that later versions added). `service`
/// has no variable here: `PGSERVICE` is read where the service is looked up.
const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("service", None),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("dbname", Some("PGDATABASE")),
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslpassword", None),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("sslsni", Some("PGSSLSNI")),
    ("requirepeer", Some("PGREQUIREPEER")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    ("gsslib", Some("PGGSSLIB")),
    ("replication", None),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
    ("require_auth", Some("PGREQUIREAUTH")),
    ("sslcertmode", Some("PGSSLCERTMODE")),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("gssdelegation", Some("PGGSSDELEGATION")),
];

fn keyword(name: &str) -> Option<&'static str> {
    KEYWORDS.iter().map(|(k, _)| *k).find(|k| *k == name)
}

/// C's isspace, which libpq's parsers use (Rust's ASCII whitespace lacks \v).
fn c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// What the connection string gives: a `postgresql://` URI or `key=value`
/// pairs, read as libpq reads them (later values win).
fn given(text: &str) -> Result<Settings, ConnectError> {
    let uri = ["postgresql://", "postgres://"]
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix));
    let pairs = match uri {
        Some(rest) => uri_pairs(rest)?,
        None => keyword_pairs(text)?,
    };
    let mut settings = Settings::new();
    for (key, value, unknown) in pairs {
        // libpq's conninfo_storeval: the old requiressl is an sslmode.
        let (key, value) = match key.as_str() {
            "requiressl" if value.starts_with('1') => ("sslmode".to_owned(), "require".to_owned()),
            "requiressl" => ("sslmode".to_owned(), "prefer".to_owned()),
            _ => (key, value),
        };
        let Some(key) = keyword(&key) else {
            return Err(ConnectError::BadUrl(unknown));
        };
        settings.insert(
            key,
            Setting {
                value,
                given: Given::ConnectionString,
            },
        );
    }
    Ok(settings)
}

/// libpq's conninfo_uri_parse_options on what follows the scheme: keyword,
/// value, and the message for a keyword libpq does not know.
fn uri_pairs(rest: &str) -> Result<Vec<(String, String, String)>, ConnectError> {
    let bad = |message: &str| ConnectError::BadUrl(message.to_owned());
    let mut pairs = Vec::new();
    let mut push = |key: &str, value: String| {
        pairs.push((
            key.to_owned(),
            value,
            format!("invalid URI query parameter: \"{key}\""),
        ));
    };
    let mut p = rest;
    // Credentials only when an '@' comes before any '/'.
    if let Some(at) = p.find(['@', '/']).filter(|&i| p[i..].starts_with('@')) {
        let credentials = &p[..at];
        let (user, password) = match credentials.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (credentials, None),
        };
        if !user.is_empty() {
            push("user", uri_decoded(user)?);
        }
        if let Some(password) = password.filter(|p| !p.is_empty()) {
            push("password", uri_decoded(password)?);
        }
        p = &p[at + 1..];
    }
    let mut hosts = String::new();
    let mut ports = String::new();
    let terminator = loop {
        let host;
        if let Some(after) = p.strip_prefix('[') {
            let close = after.find(']').ok_or_else(|| {
                bad("end of string reached when looking for matching \"]\" in IPv6 host address")
            })?;
            if close == 0 {
                return Err(bad("IPv6 host address may not be empty"));
            }
            host = &after[..close];
            p = &after[close + 1..];
            if let Some(c) = p
                .chars()
                .next()
                .filter(|c| !matches!(c, ':' | '/' | '?' | ','))
            {
                return Err(ConnectError::BadUrl(format!(
                    "unexpected character \"{c}\" after an IPv6 host address (expected \":\" or \"/\")"
                )));
            }
        } else {
            let end = p.find([':', '/', '?', ',']).unwrap_or(p.len());
            host = &p[..end];
            p = &p[end..];
        }
        hosts.push_str(host);
        if let Some(after) = p.strip_prefix(':') {
            let end = after.find(['/', '?', ',']).unwrap_or(after.len());
            ports.push_str(&after[..end]);
            p = &after[end..];
        }
        match p.strip_prefix(',') {
            Some(after) => {
                p = after;
                hosts.push(',');
                ports.push(',');
            }
            None => break p.chars().next(),
        }
    };
    // Several hosts without ports still give a port list (",").
    if !hosts.is_empty() {
        push("host", uri_decoded(&hosts)?);
    }
    if !ports.is_empty() {
        push("port", uri_decoded(&ports)?);
    }
    if terminator == Some('/') {
        let after = &p[1..];
        let end = after.find('?').unwrap_or(after.len());
        // An empty path leaves dbname to PGDATABASE, as in libpq.
        if end > 0 {
            push("dbname", uri_decoded(&after[..end])?);
        }
        p = &after[end..];
    }
    let mut params = p.strip_prefix('?').unwrap_or("");
    while !params.is_empty() {
        let (param, next) = params.split_once('&').unwrap_or((params, ""));
        let Some((key, value)) = param.split_once('=') else {
            return Err(ConnectError::BadUrl(format!(
                "missing key/value separator \"=\" in URI query parameter: \"{param}\""
            )));
        };
        if value.contains('=') {
            return Err(ConnectError::BadUrl(format!(
                "extra key/value separator \"=\" in URI query parameter: \"{key}\""
            )));
        }
        let (key, value) = (uri_decoded(key)?, uri_decoded(value)?);
        // libpq's concession to JDBC.
        if key == "ssl" && value == "true" {
            push("sslmode", "require".to_owned());
        } else {
            push(&key, value);
        }
        params = next;
    }
    Ok(pairs)
}

/// libpq's conninfo_uri_decode: `%XX` must be two hex digits, and not `%00`.
fn uri_decoded(text: &str) -> Result<String, ConnectError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'%' {
            out.push(byte);
            continue;
        }
        let hex = rest
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(0) => {
                return Err(ConnectError::BadUrl(
                    "forbidden value %00 in percent-encoded value".into(),
                ))
            }
            Some(decoded) => {
                out.push(decoded);
                rest = &rest[2..];
            }
            None => {
                return Err(ConnectError::BadUrl(
                    "invalid percent-encoded token in the URI".into(),
                ))
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnectError::BadUrl("a percent-encoded value is not UTF-8".into()))
}

/// libpq's conninfo_parse: `key = value` pairs, values bare (with `\`
/// escapes) or in single quotes.
fn keyword_pairs(text: &str) -> Result<Vec<(String, String, String)>, ConnectError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    let skip_spaces = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.next_if(|c| c_space(*c)).is_some() {}
    };
    loop {
        skip_spaces(&mut chars);
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c_space(*c)) {
            key.push(c);
        }
        skip_spaces(&mut chars);
        if chars.next_if_eq(&'=').is_none() {
            return Err(ConnectError::BadUrl(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            )));
        }
        skip_spaces(&mut chars);
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(ConnectError::BadUrl(
                            "unterminated quoted string in connection info string".into(),
                        ))
                    }
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next() {
                match c {
                    c if c_space(c) => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        }
        let unknown = format!("invalid connection option \"{key}\"");
        pairs.push((key, value, unknown));
    }
}

/// The service's settings fill what the connection string left out, then
/// the environment's, as libpq's conninfo_add_defaults.
fn with_defaults(mut settings: Settings) -> Result<Settings, ConnectError> {
    let service = match settings.get("service") {
        Some(setting) => Some(setting.value.clone()),
        // Set but empty still names a service, as in libpq.
        None => std::env::var_os("PGSERVICE").map(|v| v.to_string_lossy().into_owned()),
    };
    if let Some(service) = service {
        for (key, setting) in service_settings(&service)? {
            settings.entry(key).or_insert(setting);
        }
    }
    for &(key, var) in KEYWORDS {
        let Some(var) = var else { continue };
        if settings.contains_key(key) {
            continue;
        }
        if let Some(value) = environment(var) {
            settings.insert(
                key,
                Setting {
                    value,
                    given: Given::Environment(var),
                },
            );
        }
    }
    // The deprecated PGREQUIRESSL=1 counts when nothing gave an sslmode.
    if !settings.contains_key("sslmode")
        && environment("PGREQUIRESSL").is_some_and(|v| v.starts_with('1'))
    {
        settings.insert(
            "sslmode",
            Setting {
                value: "require".into(),
                given: Given::Environment("PGREQUIRESSL"),
            },
        );
    }
    Ok(settings)
}

/// A variable's value; libpq ignores empty ones.
fn environment(var: &str) -> Option<String> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned())
}

/// Debian's libpq is built with this sysconfdir.
const SYSCONFDIR: &str = "/etc/postgresql-common";

/// Debian's default socket directory (libpq's DEFAULT_PGSOCKET_DIR).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The home directory as libpq finds it: `HOME`, else the password database.
fn home_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home));
    }
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|user| user.dir)
}

/// The service's settings from the first file that defines it: the user's
/// (`PGSERVICEFILE`, which must be there when set, else
/// `~/.pg_service.conf` if there is one), then the system's
/// (`$PGSYSCONFDIR/pg_service.conf`, if there is one).
fn service_settings(service: &str) -> Result<Vec<(&'static str, Setting)>, ConnectError> {
    let user_file = match std::env::var_os("PGSERVICEFILE") {
        Some(file) => Some(PathBuf::from(file)),
        None => home_dir()
            .map(|home| home.join(".pg_service.conf"))
            .filter(|file| file.metadata().is_ok()),
    };
    let mut system_file =
        std::env::var_os("PGSYSCONFDIR").unwrap_or_else(|| OsString::from(SYSCONFDIR));
    system_file.push("/pg_service.conf");
    let system_file = Some(PathBuf::from(system_file)).filter(|file| file.metadata().is_ok());
    let mut searched = Vec::new();
    for file in user_file.into_iter().chain(system_file) {
        if let Some(settings) = service_in_file(&file, service)? {
            return Ok(settings);
        }
        searched.push(file);
    }
    Err(ConnectError::ServiceNotFound {
        service: service.to_owned(),
        searched,
    })
}

/// libpq reads service files with a 1024-byte buffer and refuses longer lines.
const SERVICE_LINE_LIMIT: usize = 1023;

/// The `[service]` section of one file, None when it has none. Only that
/// section's lines must be settings; its first value of a key wins.
fn service_in_file(
    path: &Path,
    service: &str,
) -> Result<Option<Vec<(&'static str, Setting)>>, ConnectError> {
    let text = std::fs::read(path).map_err(|err| ConnectError::ServiceFileUnreadable {
        path: path.to_owned(),
        reason: err.to_string(),
    })?;
    let error = |line: usize, reason: &str| ConnectError::ServiceFile {
        path: path.to_owned(),
        line,
        reason: reason.to_owned(),
    };
    let mut found = false;
    let mut settings: Vec<(&'static str, Setting)> = Vec::new();
    for (index, raw) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if raw.len() >= SERVICE_LINE_LIMIT {
            return Err(error(number, "line too long"));
        }
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_matches(c_space);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            if found {
                break;
            }
            found = name
                .strip_prefix(service)
                .is_some_and(|rest| rest.starts_with(']'));
            continue;
        }
        if !found {
            continue;
        }
        if line.starts_with("ldap") {
            return Err(error(number, "LDAP service lookups are not supported"));
        }
        // Neither side of '=' is trimmed, as in libpq.
        let Some((key, value)) = line.split_once('=') else {
            return Err(error(number, "expected key=value"));
        };
        if key == "service" {
            return Err(error(
                number,
                "nested service specifications are not supported",
            ));
        }
        let Some(key) = keyword(key) else {
            return Err(error(
                number,
                &format!("\"{key}\" is not a connection option"),
            ));
        };
        if settings.iter().all(|(k, _)| *k != key) {
            settings.push((
                key,
                Setting {
                    value: value.to_owned(),
                    given: Given::ServiceFile {
                        path: path.to_owned(),
                        line: number,
                    },
                },
            ));
        }
    }
    Ok(found.then_some(settings))
}

/// A setting's value unless it is empty, which libpq takes as not given.
fn text<'a>(settings: &'a Settings, key: &str) -> Option<&'a str> {
    settings
        .get(key)
        .map(|s| s.value.as_str())
        .filter(|v| !v.is_empty())
}

/// libpq's parse_int_param: an int with optional spaces around it.
fn integer(settings: &Settings, key: &str) -> Result<Option<i32>, ConnectError> {
    let Some(setting) = settings.get(key) else {
        return Ok(None);
    };
    setting
        .value
        .trim_matches(c_space)
        .parse()
        .map(Some)
        .map_err(|_| ConnectError::BadValue(setting.shown(key)))
}

/// One of a setting's allowed values, mapped; None when not given.
fn choice<T: Copy>(
    settings: &Settings,
    key: &str,
    allowed: &[(&str, T)],
) -> Result<Option<T>, ConnectError> {
    let Some(setting) = settings.get(key) else {
        return Ok(None);
    };
    allowed
        .iter()
        .find(|(name, _)| *name == setting.value)
        .map(|(_, value)| Some(*value))
        .ok_or_else(|| ConnectError::BadValue(setting.shown(key)))
}

/// The settings as a Config; what tokio-postgres cannot do is refused
/// when it would loosen a check libpq makes.
fn build(settings: &Settings) -> Result<Config, ConnectError> {
    let mut config = Config::new();
    let user = text(settings, "user")
        .map(str::to_owned)
        .unwrap_or_else(os_user);
    config.user(&user);
    if let Some(password) = text(settings, "password") {
        config.password(password);
    }
    if let Some(dbname) = text(settings, "dbname") {
        config.dbname(dbname);
    }
    if let Some(options) = text(settings, "options") {
        config.options(options);
    }
    config.application_name(
        text(settings, "application_name")
            .or_else(|| text(settings, "fallback_application_name"))
            .unwrap_or("council-loader"),
    );
    place(settings, &mut config)?;
    config.ssl_mode(ssl_mode(settings)?.0);
    timeouts(settings, &mut config)?;
    if let Some(binding) = choice(
        settings,
        "channel_binding",
        &[
            ("disable", ChannelBinding::Disable),
            ("prefer", ChannelBinding::Prefer),
            ("require", ChannelBinding::Require),
        ],
    )? {
        config.channel_binding(binding);
    }
    let attrs = choice(
        settings,
        "target_session_attrs",
        &[
            ("any", Some(TargetSessionAttrs::Any)),
            ("read-write", Some(TargetSessionAttrs::ReadWrite)),
            ("read-only", Some(TargetSessionAttrs::ReadOnly)),
            ("primary", None),
            ("standby", None),
            ("prefer-standby", None),
        ],
    )?;
    match attrs {
        Some(Some(attrs)) => {
            config.target_session_attrs(attrs);
        }
        Some(None) => return Err(unsupported(settings, "target_session_attrs")),
        None => {}
    }
    if let Some(balance) = choice(
        settings,
        "load_balance_hosts",
        &[
            ("disable", LoadBalanceHosts::Disable),
            ("random", LoadBalanceHosts::Random),
        ],
    )? {
        config.load_balance_hosts(balance);
    }
    if let Some(negotiation) = choice(
        settings,
        "sslnegotiation",
        &[
            ("postgres", SslNegotiation::Postgres),
            ("direct", SslNegotiation::Direct),
        ],
    )? {
        config.ssl_negotiation(negotiation);
    }
    refuse_unsupported(settings)?;
    Ok(config)
}

fn unsupported(settings: &Settings, key: &str) -> ConnectError {
    ConnectError::Unsupported(shown(settings, key))
}

/// A setting as `Setting::shown` shows it, or its keyword.
fn shown(settings: &Settings, key: &str) -> String {
    settings
        .get(key)
        .map_or_else(|| key.to_owned(), |s| s.shown(key))
}

/// Settings this client cannot honour and whose silent omission would
/// accept a server or a login that libpq refuses. The others without a
/// counterpart here (client_encoding, sslcert, krbsrvname, ...) only
/// matter to features it does not use.
fn refuse_unsupported(settings: &Settings) -> Result<(), ConnectError> {
    for key in ["requirepeer", "require_auth", "sslcrl", "sslcrldir"] {
        if text(settings, key).is_some() {
            return Err(unsupported(settings, key));
        }
    }
    let gss = choice(
        settings,
        "gssencmode",
        &[("disable", true), ("prefer", true), ("require", false)],
    )?;
    let certificate = choice(
        settings,
        "sslcertmode",
        &[("disable", true), ("allow", true), ("require", false)],
    )?;
    if gss == Some(false) {
        return Err(unsupported(settings, "gssencmode"));
    }
    if certificate == Some(false) {
        return Err(unsupported(settings, "sslcertmode"));
    }
    Ok(())
}

/// Hosts, their addresses and ports, paired as libpq pairs them: the i-th
/// host with the i-th hostaddr and port; a hostaddr alone stands for its
/// host too, and with neither the default socket directory is used.
fn place(settings: &Settings, config: &mut Config) -> Result<(), ConnectError> {
    let hosts = list(settings, "host");
    let addresses = list(settings, "hostaddr");
    let ports = list(settings, "port");
    if !hosts.is_empty() && !addresses.is_empty() && hosts.len() != addresses.len() {
        return Err(ConnectError::HostCount(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addresses.len()
        )));
    }
    let count = hosts.len().max(addresses.len()).max(1);
    if ports.len() > 1 && ports.len() != count {
        return Err(ConnectError::HostCount(format!(
            "could not match {} port numbers to {count} hosts",
            ports.len()
        )));
    }
    let parsed = addresses
        .iter()
        .map(|address| match address.trim_matches(c_space) {
            "" => Ok(None),
            text => text
                .parse::<IpAddr>()
                .map(Some)
                .map_err(|_| ConnectError::BadHostaddr(shown(settings, "hostaddr"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // tokio-postgres takes a hostaddr for every host or for none.
    if parsed.iter().any(Option::is_some) && parsed.iter().any(Option::is_none) {
        return Err(unsupported(settings, "hostaddr"));
    }
    for index in 0..count {
        let host = hosts.get(index).copied().unwrap_or("");
        match (host, parsed.get(index).copied().flatten()) {
            ("", Some(address)) => {
                config
                    .host(addresses.get(index).copied().unwrap_or_default())
                    .hostaddr(address);
            }
            (host, Some(address)) => {
                config.host(host).hostaddr(address);
            }
            ("", None) => {
                config.host_path(DEFAULT_SOCKET_DIR);
            }
            (host, None) => {
                config.host(host);
            }
        }
    }
    for port in &ports {
        config.port(port_number(settings, port)?);
    }
    Ok(())
}

/// A comma-separated setting's elements; none when it is empty or not given.
fn list<'a>(settings: &'a Settings, key: &str) -> Vec<&'a str> {
    text(settings, key).map_or_else(Vec::new, |v| v.split(',').collect())
}

/// A port of a port list; empty is the default.
fn port_number(settings: &Settings, port: &str) -> Result<u16, ConnectError> {
    if port.is_empty() {
        return Ok(5432);
    }
    port.trim_matches(c_space)
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| ConnectError::BadPort(shown(settings, "port")))
}

fn timeouts(settings: &Settings, config: &mut Config) -> Result<(), ConnectError> {
    // libpq waits forever without connect_timeout; the loader gives up after
    // 30 seconds. Zero or less is forever; libpq waits at least 2 seconds.
    match integer(settings, "connect_timeout")? {
        None => {
            config.connect_timeout(Duration::from_secs(30));
        }
        Some(seconds) if seconds > 0 => {
            config.connect_timeout(Duration::from_secs(seconds.max(2).unsigned_abs().into()));
        }
        Some(_) => {}
    }
    if let Some(keepalives) = integer(settings, "keepalives")? {
        config.keepalives(keepalives != 0);
    }
    let positive = |key| -> Result<Option<u64>, ConnectError> {
        Ok(integer(settings, key)?
            .filter(|v| *v > 0)
            .map(|v| v.unsigned_abs().into()))
    };
    if let Some(seconds) = positive("keepalives_idle")? {
        config.keepalives_idle(Duration::from_secs(seconds));
    }
    if let Some(seconds) = positive("keepalives_interval")? {
        config.keepalives_interval(Duration::from_secs(seconds));
    }
    if let Some(count) = positive("keepalives_count")? {
        config.keepalives_retries(u32::try_from(count).unwrap_or(u32::MAX));
    }
    // Milliseconds in libpq.
    if let Some(millis) = positive("tcp_user_timeout")? {
        config.tcp_user_timeout(Duration::from_millis(millis));
    }
    Ok(())
}

/// The OS user's name, libpq's default user.
fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|user| user.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "postgres".into())
}

/// Without a password in the settings, the password file's, looked up as
/// libpq does: by the first host's name, else its hostaddr, and "localhost"
/// for the default socket directory.
fn password_from_file(config: &mut Config, settings: &Settings) {
    if config.get_password().is_some() {
        return;
    }
    let file = match text(settings, "passfile") {
        Some(file) => PathBuf::from(file),
        None => match home_dir() {
            Some(home) => home.join(".pgpass"),
            None => return,
        },
    };
    let host = list(settings, "host").first().copied().unwrap_or("");
    let address = list(settings, "hostaddr").first().copied().unwrap_or("");
    let host = match (host, address) {
        ("", "") => "localhost",
        ("", address) => address,
        (DEFAULT_SOCKET_DIR, _) => "localhost",
        (host, _) => host,
    };
    let port = list(settings, "port")
        .first()
        .copied()
        .filter(|p| !p.is_empty())
        .unwrap_or("5432")
        .to_owned();
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let database = config.get_dbname().unwrap_or(&user).to_owned();
    if let Some(password) = lookup(&file, host, &port, &database, &user) {
        config.password(password);
    }
}

/// `crate::pgpass::lookup` with the port as libpq compares it, as text.
fn lookup(file: &Path, host: &str, port: &str, database: &str, user: &str) -> Option<String> {
    let port = port.trim_matches(c_space).parse::<u16>().ok()?;
    crate::pgpass::lookup(file, host, port, database, user)
}

/// How much of the server's certificate TLS checks, as libpq's sslmode
/// says: `require` (and `prefer`, `allow`) encrypt without checking,
/// `verify-ca` checks the chain, `verify-full` the chain and the host name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Verify {
    #[default]
    Nothing,
    Chain,
    ChainAndHost,
}

/// The effective sslmode (the connection string's or service's, else
/// `PGSSLMODE`, else prefer) as tokio-postgres's mode and the checks.
fn ssl_mode(settings: &Settings) -> Result<(SslMode, Verify), ConnectError> {
    let Some(setting) = settings.get("sslmode") else {
        return Ok((SslMode::Prefer, Verify::Nothing));
    };
    match setting.value.as_str() {
        "disable" => Ok((SslMode::Disable, Verify::Nothing)),
        // tokio-postgres has no allow (plain first, TLS if the server insists).
        "allow" | "prefer" => Ok((SslMode::Prefer, Verify::Nothing)),
        "require" => Ok((SslMode::Require, Verify::Nothing)),
        "verify-ca" => Ok((SslMode::Require, Verify::Chain)),
        "verify-full" => Ok((SslMode::Require, Verify::ChainAndHost)),
        _ => Err(ConnectError::BadSslMode(setting.shown("sslmode"))),
    }
}

/// What TLS checks beyond what a Config holds: the certificate checks of
/// `sslmode`, the trusted roots of `sslrootcert`, the protocol versions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TlsWish {
    verify: Verify,
    root: Option<PathBuf>,
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
}

/// libpq's compiled default: at least TLS 1.2.
impl Default for TlsWish {
    fn default() -> TlsWish {
        TlsWish {
            verify: Verify::Nothing,
            root: None,
            min: Some(TlsVersion::V1_2),
            max: None,
        }
    }
}

/// ssl_min_protocol_version's and ssl_max_protocol_version's values, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

impl TlsVersion {
    fn named(name: &str) -> Option<TlsVersion> {
        [
            ("TLSv1", TlsVersion::V1_0),
            ("TLSv1.1", TlsVersion::V1_1),
            ("TLSv1.2", TlsVersion::V1_2),
            ("TLSv1.3", TlsVersion::V1_3),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, version)| version)
    }

    fn protocol(self) -> Protocol {
        match self {
            TlsVersion::V1_0 => Protocol::Tlsv10,
            TlsVersion::V1_1 => Protocol::Tlsv11,
            TlsVersion::V1_2 => Protocol::Tlsv12,
            TlsVersion::V1_3 => Protocol::Tlsv13,
        }
    }
}

fn tls_wish(settings: &Settings) -> Result<TlsWish, ConnectError> {
    // Not given: the default; empty: no bound.
    let version = |key: &str| -> Result<Option<Option<TlsVersion>>, ConnectError> {
        let Some(setting) = settings.get(key) else {
            return Ok(None);
        };
        if setting.value.is_empty() {
            return Ok(Some(None));
        }
        TlsVersion::named(&setting.value)
            .map(|version| Some(Some(version)))
            .ok_or_else(|| ConnectError::BadValue(setting.shown(key)))
    };
    let min = version("ssl_min_protocol_version")?.unwrap_or(TlsWish::default().min);
    let max = version("ssl_max_protocol_version")?.flatten();
    if let (Some(low), Some(high)) = (min, max) {
        if low > high {
            return Err(ConnectError::BadValue(format!(
                "{} above {}",
                shown(settings, "ssl_min_protocol_version"),
                shown(settings, "ssl_max_protocol_version")
            )));
        }
    }
    Ok(TlsWish {
        verify: ssl_mode(settings)?.1,
        root: text(settings, "sslrootcert").map(PathBuf::from),
        min,
        max,
    })
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
            Host::Unix(path) => {
                percent_encode(path.as_os_str().as_bytes(), URL_ESCAPED).to_string()
            }
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let hostaddr = config
        .get_hostaddrs()
        .first()
        .map(|address| format!("?hostaddr={address}"))
        .unwrap_or_default();
    format!(
        "postgresql://{}@{host}:{port}/{}{hostaddr}",
        config.get_user().unwrap_or("postgres"),
        config
            .get_dbname()
            .unwrap_or(config.get_user().unwrap_or("postgres"))
    )
}

/// RFC 3986's unreserved characters stay as they are; every other byte
/// is `%XX`, as libpq's URLs take them.
const URL_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Whether the server runs on this machine, so that files here are files
/// there; a hostaddr is where the connection goes.
pub fn is_local(config: &Config) -> bool {
    let addresses = config.get_hostaddrs();
    if !addresses.is_empty() {
        return addresses.iter().all(IpAddr::is_loopback);
    }
    config.get_hosts().iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1"),
    })
}

/// TLS as the settings ask for it: sslmode's checks against sslrootcert's
/// root certificate (the system's roots without one).
fn tls(wish: &TlsWish) -> Result<MakeTlsConnector, ConnectError> {
    let mut builder = TlsConnector::builder();
    builder
        .danger_accept_invalid_certs(wish.verify == Verify::Nothing)
        .danger_accept_invalid_hostnames(wish.verify != Verify::ChainAndHost)
        .min_protocol_version(wish.min.map(TlsVersion::protocol))
        .max_protocol_version(wish.max.map(TlsVersion::protocol));
    if let Some(path) = &wish.root {
        let pem = std::fs::read(path).map_err(|err| ConnectError::RootCertificate {
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
    server: &Server,
    on_notice: impl Fn(&str) + Send + Sync + 'static,
) -> Result<postgres::Client, ConnectError> {
    let wish = &server.tls;
    let mut config = server.config.clone();
    config.notice_callback(move |notice| on_notice(notice.message()));
    let result = if config.get_ssl_mode() == SslMode::Disable {
        config.connect(postgres::NoTls)
    } else {
        config.connect(tls(wish)?)
    };
    result.map_err(|source| ConnectError::Connect {
        target: describe(&config),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::{Mutex, MutexGuard, PoisonError};

    /// The environment is the process's: the tests that read or set it
    /// take turns.
    static ENVIRONMENT: Mutex<()> = Mutex::new(());

    /// A test's environment: every variable libpq reads cleared, no service
    /// or password file but the test's own; all restored when dropped.
    struct Environment {
        saved: Vec<(String, Option<OsString>)>,
        dir: tempfile::TempDir,
        _turn: MutexGuard<'static, ()>,
    }

    impl Environment {
        fn new(vars: &[(&str, &str)]) -> Environment {
            let turn = ENVIRONMENT.lock().unwrap_or_else(PoisonError::into_inner);
            let names = KEYWORDS.iter().filter_map(|(_, var)| *var).chain([
                "DATABASE_URL",
                "PGSERVICE",
                "PGSERVICEFILE",
                "PGSYSCONFDIR",
                "PGREQUIRESSL",
            ]);
            let saved = names
                .map(|name| (name.to_owned(), std::env::var_os(name)))
                .collect::<Vec<_>>();
            for (name, _) in &saved {
                std::env::remove_var(name);
            }
            let env = Environment {
                saved,
                dir: tempfile::tempdir().expect("tempdir"),
                _turn: turn,
            };
            // PGSERVICEFILE must exist when set: an empty one.
            env.set("PGSERVICEFILE", &env.file("empty-service-file", ""));
            env.set("PGSYSCONFDIR", &env.path("no-sysconfdir"));
            env.set("PGPASSFILE", &env.path("no-passfile"));
            for (name, value) in vars {
                env.set(name, value);
            }
            env
        }

        fn set(&self, name: &str, value: &str) {
            std::env::set_var(name, value);
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        /// Writes `name` in the test's directory, 0600, and returns its path.
        fn file(&self, name: &str, text: &str) -> String {
            let path = self.dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            path.display().to_string()
        }
    }

    impl Drop for Environment {
        fn drop(&mut self) {
            for (name, value) in &self.saved {
                match value {
                    Some(value) => std::env::set_var(name, value),
                    None => std::env::remove_var(name),
                }
            }
        }
    }

    fn tcp(config: &Config) -> Vec<String> {
        config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect()
    }

    const SERVICE: &str = "\
# the team's services
[other]
dbname=wrong

[council]
  host=svc-host
port=6000
dbname=svcdb
user=svcuser
dbname=second-value-ignored
application_name=from service
[later]
this line is never read
";

    #[test]
    fn a_url_keeps_its_parts_and_describe_hides_the_password() {
        let _env = Environment::new(&[]);
        let config = parse("postgresql://dba:s3cret@db1:6543/council")
            .expect("parse")
            .config;
        assert_eq!(describe(&config), "postgresql://dba@db1:6543/council");
        assert!(!describe(&config).contains("s3cret"));
        assert!(!is_local(&config));
        let local = parse("postgresql://postgres@127.0.0.1:5432/postgres")
            .expect("parse")
            .config;
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
            uri_decoded("%2Fvar%2Frun%2Fpostgresql").expect("decode"),
            "/var/run/postgresql"
        );
    }

    #[test]
    fn a_passfile_parameter_is_read_and_left_out_of_the_url() {
        let env = Environment::new(&[]);
        let file = env.file("my pass", "*:*:*:postgres:from-the-file\n");
        let url = format!(
            "postgresql://postgres@127.0.0.1:5432/postgres?passfile={}&application_name=x",
            file.replace(' ', "%20")
        );
        let config = parse(&url).expect("parse").config;
        assert_eq!(config.get_password(), Some(&b"from-the-file"[..]));
        assert_eq!(config.get_application_name(), Some("x"));
    }

    #[test]
    fn connect_url_beats_service_beats_environment() {
        let env = Environment::new(&[
            ("PGHOST", "env-host"),
            ("PGPORT", "7000"),
            ("PGDATABASE", "envdb"),
            ("PGUSER", "envuser"),
            ("PGCONNECT_TIMEOUT", "9"),
        ]);
        let file = env.file("services", SERVICE);
        env.set("PGSERVICEFILE", &file);

        // The URL's user, host and database; the service's port (a single
        // host without one leaves it unset); the environment's timeout.
        let config = parse("postgresql://urluser@url-host/urldb?service=council")
            .expect("parse")
            .config;
        assert_eq!(config.get_user(), Some("urluser"));
        assert_eq!(tcp(&config), ["url-host"]);
        assert_eq!(config.get_dbname(), Some("urldb"));
        assert_eq!(config.get_ports(), [6000]);
        assert_eq!(config.get_application_name(), Some("from service"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(9)));

        // PGSERVICE names it for the environment too: the service beats PG*.
        env.set("PGSERVICE", "council");
        let (Server { config, .. }, origin) =
            configured(None).expect("configured").expect("a server");
        assert_eq!(origin, Origin::LibpqEnvironment);
        assert_eq!(config.get_user(), Some("svcuser"));
        assert_eq!(tcp(&config), ["svc-host"]);
        assert_eq!(config.get_ports(), [6000]);
        assert_eq!(config.get_dbname(), Some("svcdb"), "the first value wins");

        // ... and a URL without service= as well, where it fills gaps.
        let config = parse("postgresql://urluser@url-host:5433")
            .expect("parse")
            .config;
        assert_eq!(config.get_dbname(), Some("svcdb"));
        assert_eq!(config.get_ports(), [5433]);
    }

    #[test]
    fn connect_keyword_strings_and_uris_parse_as_libpq_does() {
        let _env = Environment::new(&[("PGPORT", "7000")]);
        let config =
            parse("host=h1 port = 6000 dbname='my \\'db\\'' user=u\\ v password='' requiressl=1")
                .expect("parse")
                .config;
        assert_eq!(tcp(&config), ["h1"]);
        assert_eq!(config.get_ports(), [6000]);
        assert_eq!(config.get_dbname(), Some("my 'db'"));
        assert_eq!(config.get_user(), Some("u v"));
        assert_eq!(config.get_password(), None);
        assert_eq!(config.get_ssl_mode(), SslMode::Require);

        // One host without a port takes PGPORT; several take 5432 each.
        let one = parse("postgresql://h1/db").expect("parse").config;
        assert_eq!(one.get_ports(), [7000]);
        let two = parse("postgresql://h1,[::1]/db?ssl=true")
            .expect("parse")
            .config;
        assert_eq!(tcp(&two), ["h1", "::1"]);
        assert_eq!(two.get_ports(), [5432, 5432]);
        assert_eq!(two.get_ssl_mode(), SslMode::Require);
        let socket = parse("postgresql://%2Ftmp%2Fsock:5444/db")
            .expect("parse")
            .config;
        assert_eq!(socket.get_hosts(), [Host::Unix("/tmp/sock".into())]);

        for bad in [
            "postgresql://h/db?nonsense=1",
            "host=h nonsense=1",
            "postgresql://h/db?port",
            "postgresql://h/db?port=1=2",
            "host='h",
            "postgresql://h/db%zz",
            "postgresql://h:1,h:2/db?port=1,2,3",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
        assert!(matches!(
            parse("postgresql://h:99999/db"),
            Err(ConnectError::BadPort(shown)) if shown.contains("99999")
        ));
    }

    #[test]
    fn connect_pgsslmode_fills_a_missing_sslmode_but_never_overrides_one() {
        let env = Environment::new(&[("PGSSLMODE", "require")]);
        let url = "postgresql://u@db1:5432/db";
        let disabled = parse(&format!("{url}?sslmode=disable"))
            .expect("parse")
            .config;
        assert_eq!(disabled.get_ssl_mode(), SslMode::Disable);
        let filled = parse(url).expect("parse").config;
        assert_eq!(filled.get_ssl_mode(), SslMode::Require);

        // A service's sslmode beats PGSSLMODE too.
        let file = env.file("services", "[plain]\nsslmode=disable\n");
        env.set("PGSERVICEFILE", &file);
        let service = parse(&format!("{url}?service=plain"))
            .expect("parse")
            .config;
        assert_eq!(service.get_ssl_mode(), SslMode::Disable);

        // Without any sslmode at all, libpq prefers TLS.
        env.set("PGSSLMODE", "");
        assert_eq!(
            parse(url).expect("parse").config.get_ssl_mode(),
            SslMode::Prefer
        );
    }

    #[test]
    fn connect_verify_modes_of_the_url_reach_connect() {
        let env = Environment::new(&[("PGSSLMODE", "verify-full")]);
        let root = env.file("root.crt", "");
        let url = "postgresql://u@db2:5432/db";
        let ca_server =
            parse(&format!("{url}?sslmode=verify-ca&sslrootcert={root}")).expect("parse");
        let ca = &ca_server.config;
        assert_eq!(ca.get_ssl_mode(), SslMode::Require);
        let wish = &ca_server.tls;
        assert_eq!(wish.verify, Verify::Chain);
        assert_eq!(wish.root.as_deref(), Some(Path::new(&root)));

        // The URL's prefer beats PGSSLMODE=verify-full: nothing is checked.
        let prefer_server = parse(&format!("{url}?sslmode=prefer")).expect("parse");
        assert_eq!(prefer_server.tls.verify, Verify::Nothing);
        // Without one in the URL, PGSSLMODE's verify-full holds.
        let full_server = parse(url).expect("parse");
        let full = &full_server.config;
        assert_eq!(full.get_ssl_mode(), SslMode::Require);
        assert_eq!(full_server.tls.verify, Verify::ChainAndHost);
        // A Config made elsewhere gets libpq's defaults.
        assert_eq!(Server::from(Config::new()).tls, TlsWish::default());
    }

    #[test]
    fn connect_a_bad_sslmode_names_where_it_was_given() {
        let _env = Environment::new(&[("PGSSLMODE", "sometimes")]);
        let from_env = parse("postgresql://u@h/db").expect_err("bad PGSSLMODE");
        assert!(
            matches!(&from_env, ConnectError::BadSslMode(s) if s == "PGSSLMODE=sometimes"),
            "{from_env}"
        );
        let from_url = parse("postgresql://u@h/db?sslmode=always").expect_err("bad sslmode");
        assert!(
            from_url
                .to_string()
                .contains("sslmode=always in the connection string"),
            "{from_url}"
        );
    }

    #[test]
    fn connect_service_files_skip_comments_and_other_sections() {
        let env = Environment::new(&[("PGSERVICE", "council")]);
        let file = env.file("services", SERVICE);
        env.set("PGSERVICEFILE", &file);
        let settings = service_settings("council").expect("found");
        let values: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, s)| (*k, s.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("host", "svc-host"),
                ("port", "6000"),
                ("dbname", "svcdb"),
                ("user", "svcuser"),
                ("application_name", "from service"),
            ]
        );
        assert_eq!(
            settings[1].1.given,
            Given::ServiceFile {
                path: file.clone().into(),
                line: 7
            }
        );
    }

    #[test]
    fn connect_the_user_service_file_comes_first_then_the_system_one() {
        let env = Environment::new(&[]);
        let user = env.file("user.conf", "[both]\nport=1111\n");
        env.file(
            "etc/pg_service.conf",
            "[both]\nport=2222\n[system]\nport=3333\n",
        );
        env.set("PGSERVICEFILE", &user);
        env.set("PGSYSCONFDIR", &env.path("etc"));
        let port = |service: &str| {
            parse(&format!("host=h service={service}")).map(|c| c.config.get_ports().to_vec())
        };
        assert_eq!(port("both").expect("both"), [1111]);
        assert_eq!(port("system").expect("system"), [3333]);
        // A user file without the service sends libpq to the system file.
        env.set("PGSERVICEFILE", &env.file("empty.conf", "# nothing\n"));
        assert_eq!(port("both").expect("both"), [2222]);
        // PGSERVICEFILE names a file that must be there.
        env.set("PGSERVICEFILE", &env.path("absent.conf"));
        assert!(matches!(
            port("both"),
            Err(ConnectError::ServiceFileUnreadable { .. })
        ));
        env.set("PGSERVICEFILE", &env.file("empty.conf", "# nothing\n"));

        let missing = port("nowhere").expect_err("no such service");
        assert!(
            matches!(&missing, ConnectError::ServiceNotFound { service, searched }
                if service == "nowhere" && searched.len() == 2),
            "{missing}"
        );
        assert!(missing
            .to_string()
            .contains("definition of service \"nowhere\" not found"));
        // PGSERVICE names one even without anything else.
        env.set("PGSERVICE", "nowhere");
        assert!(matches!(
            configured(None),
            Err(ConnectError::ServiceNotFound { .. })
        ));
    }

    #[test]
    fn connect_bad_service_file_lines_name_the_file_and_line() {
        let env = Environment::new(&[]);
        for (text, line) in [
            ("[s]\nhost=h\ncolour=blue\n", 3),
            ("[s]\n# fine\nhost h\n", 3),
            ("[s]\nhost =h\n", 2),
            ("[s]\nservice=other\n", 2),
        ] {
            let file = env.file("bad.conf", text);
            env.set("PGSERVICEFILE", &file);
            let err = parse("service=s").expect_err(text);
            assert!(
                matches!(&err, ConnectError::ServiceFile { path, line: l, .. }
                    if path == Path::new(&file) && *l == line),
                "{text:?}: {err}"
            );
            assert!(err.to_string().contains(&format!("line {line}")), "{err}");
        }
        // Lines outside the service's section are not read as settings.
        let file = env.file("other.conf", "[x]\ncolour=blue\n[s]\nport=5\n");
        env.set("PGSERVICEFILE", &file);
        assert_eq!(parse("service=s").expect("parse").config.get_ports(), [5]);
        // libpq's buffer: a line of 1023 bytes or more is refused anywhere.
        let long = format!("# {}\n[s]\nport=5\n", "x".repeat(1020));
        let file = env.file("long.conf", &long);
        env.set("PGSERVICEFILE", &file);
        assert!(matches!(
            parse("service=s"),
            Err(ConnectError::ServiceFile { line: 1, .. })
        ));
    }

    #[test]
    fn connect_pghostaddr_is_where_the_connection_goes() {
        let env = Environment::new(&[
            ("PGHOST", "council.invalid"),
            ("PGHOSTADDR", "127.0.0.1"),
            ("PGPORT", "5444"),
            ("PGUSER", "postgres"),
        ]);
        let passfile = env.file(
            "pgpass",
            "127.0.0.1:5444:*:postgres:by-address\ncouncil.invalid:5444:*:postgres:by-name\n",
        );
        env.set("PGPASSFILE", &passfile);
        let (Server { config, .. }, _) = configured(None).expect("configured").expect("a server");
        assert_eq!(tcp(&config), ["council.invalid"]);
        assert_eq!(
            config.get_hostaddrs(),
            ["127.0.0.1".parse::<IpAddr>().expect("ip")]
        );
        // The password file is searched by the host name, as in libpq.
        assert_eq!(config.get_password(), Some(&b"by-name"[..]));
        assert!(is_local(&config));
        assert!(describe(&config).ends_with("?hostaddr=127.0.0.1"));

        // A hostaddr alone serves as the host as well.
        env.set("PGHOST", "");
        let (Server { config, .. }, _) = configured(None).expect("configured").expect("a server");
        assert_eq!(tcp(&config), ["127.0.0.1"]);
        assert_eq!(config.get_password(), Some(&b"by-address"[..]));

        // The URL's hostaddr beats PGHOSTADDR.
        let url = parse("postgresql://postgres@db.invalid:5444/x?hostaddr=::1")
            .expect("parse")
            .config;
        assert_eq!(url.get_hostaddrs(), ["::1".parse::<IpAddr>().expect("ip")]);

        env.set("PGHOSTADDR", "council.example");
        let bad = configured(None).expect_err("not an address");
        assert!(
            matches!(&bad, ConnectError::BadHostaddr(s) if s == "PGHOSTADDR=council.example"),
            "{bad}"
        );
    }
}
