//! The configuration file of `davit serve`: reading it, checking it whole (`davit
//! check-config`: every error with its key, then the effective settings) and what a reload
//! may change.

use davit_server::auth::{Auth, AuthConfig};
use davit_server::DavConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where `davit serve` listens when neither the command line nor the file says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4918";

/// The configuration file. Command-line flags win over it.
#[derive(Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub root: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub dav: DavConfig,
    /// Users and access rules; without this table everyone may do everything.
    pub auth: Option<AuthConfig>,
    /// HTTPS.
    pub tls: Option<TlsFiles>,
    /// The admin listener (metrics, health); off without this table.
    pub admin: Option<AdminConfig>,
    /// Where the namespace, properties and locks live: `directory` (the default: files in
    /// `root`, SQLite beside them) or `postgres` (several instances share one store).
    pub store: Option<StoreConfig>,
    /// The object store holding the content, for the `postgres` store.
    pub blobs: Option<davit_distributed::BlobConfig>,
}

/// The `[store]` table.
#[derive(Deserialize, Serialize, Clone)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum StoreConfig {
    /// Files in `root`, dead properties and locks in SQLite in the state directory.
    Directory,
    /// Namespace, dead properties and locks in PostgreSQL; content in `[blobs]`.
    Postgres(davit_distributed::PgConfig),
}

/// The `[tls]` table.
#[derive(Deserialize, Serialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The `[admin]` table.
#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`); never the WebDAV
    /// port.
    pub listen: SocketAddr,
}

/// Reads and checks `path`; the error names every bad setting on one line.
pub fn read(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    parse(&text).map_err(|errors| anyhow::anyhow!("{}: {}", path.display(), errors.join("; ")))
}

/// Parses a configuration, or says everything that is wrong with it, each error with its
/// key (`dav.max_upload: invalid type: ...`).
pub fn parse(text: &str) -> Result<FileConfig, Vec<String>> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        vec![format!("not valid TOML: {}", one_line(&e.to_string()))]
    })?;
    let mut errors = Vec::new();
    let config = match toml::Value::Table(table.clone()).try_into::<FileConfig>() {
        Ok(c) => c,
        Err(_) => {
            for (key, value) in &table {
                match (key.as_str(), value) {
                    ("dav", toml::Value::Table(t)) => each_key::<DavConfig>("dav.", t, &mut errors),
                    ("auth", toml::Value::Table(t)) => {
                        each_key::<AuthConfig>("auth.", t, &mut errors)
                    }
                    _ => each_key::<FileConfig>("", &one(key, value), &mut errors),
                }
            }
            if errors.is_empty() {
                // Not found key by key (should not happen): say what serde says.
                if let Err(e) = toml::Value::Table(table).try_into::<FileConfig>() {
                    errors.push(one_line(&e.to_string()));
                }
            }
            return Err(errors);
        }
    };
    check(&config, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// The checks beyond types: paths that must be paths, users and rules, TLS files that must
/// load, listeners that must differ.
fn check(c: &FileConfig, errors: &mut Vec<String>) {
    for result in [
        c.dav.quota_limits().map(drop),
        c.dav.batch_endpoint_path().map(drop),
        c.dav.principals_collection().map(drop),
    ] {
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if c.dav.busy_poll_us > davit_server::config::BUSY_POLL_MAX_US {
        errors.push(format!(
            "dav.busy_poll_us: {} is more than {} (one second)",
            c.dav.busy_poll_us,
            davit_server::config::BUSY_POLL_MAX_US
        ));
    }
    if let Some(auth) = &c.auth {
        if let Err(e) = Auth::new(auth) {
            errors.push(format!(
                "auth: {}",
                e.to_string().trim_start_matches("auth configuration: ")
            ));
        }
    }
    if let Some(tls) = &c.tls {
        if let Err(e) = davit_server::tls::Tls::from_files(&tls.cert, &tls.key) {
            errors.push(format!("tls: {e}"));
        }
    }
    if let (Some(admin), Some(listen)) = (&c.admin, c.listen) {
        if same_port(admin.listen, listen) {
            errors.push(format!(
                "admin.listen: {} is the WebDAV port; the admin listener needs its own",
                admin.listen
            ));
        }
    }
    if matches!(c.store, Some(StoreConfig::Postgres(_))) && c.blobs.is_none() {
        errors.push("store: the postgres backend needs a [blobs] table (the object store)".into());
    }
    if let Some(root) = &c.root {
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => errors.push(format!("root: {} is not a directory", root.display())),
            Err(e) => errors.push(format!("root: {}: {e}", root.display())),
        }
    }
}

/// True when two listen addresses would take the same port on some interface.
pub fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Deserializes `T` from each key of `table` alone, recording the keys that fail (and, for an
/// array of tables, the elements that fail). Only for tables whose fields all have defaults.
fn each_key<T: DeserializeOwned>(prefix: &str, table: &toml::Table, errors: &mut Vec<String>) {
    for (key, value) in table {
        let Err(e) = toml::Value::Table(one(key, value)).try_into::<T>() else {
            continue;
        };
        let before = errors.len();
        if let toml::Value::Array(items) = value {
            for (i, item) in items.iter().enumerate() {
                let single = toml::Value::Array(vec![item.clone()]);
                if let Err(e) = toml::Value::Table(one(key, &single)).try_into::<T>() {
                    errors.push(format!("{prefix}{key}[{i}]: {}", one_line(&e.to_string())));
                }
            }
        }
        if errors.len() == before {
            errors.push(format!("{prefix}{key}: {}", one_line(&e.to_string())));
        }
    }
}

fn one(key: &str, value: &toml::Value) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert(key.to_owned(), value.clone());
    t
}

/// serde and toml messages can span lines (a snippet of the input, `1 | x = [`, under it
/// `^`): keep the message.
fn one_line(message: &str) -> String {
    let snippet = |l: &str| {
        let rest = l.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        rest.starts_with('|') || l.chars().all(|c| c == '^' || c == ' ')
    };
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !snippet(l))
        .collect();
    lines.join(" ")
}

/// The settings `davit serve --config FILE` would run with (defaults filled in), as TOML.
pub fn effective(mut c: FileConfig) -> anyhow::Result<String> {
    let root = c.root.clone().unwrap_or_else(|| PathBuf::from("."));
    c.listen = Some(c.listen.unwrap_or(DEFAULT_LISTEN.parse()?));
    c.state_dir = Some(
        c.state_dir
            .clone()
            .unwrap_or_else(|| davit_server::config::default_state_dir(&root)),
    );
    c.root = Some(root);
    Ok(toml::to_string(&c)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_reported_with_its_key() {
        let text = r#"
listen = "not an address"
colour = "blue"
[dav]
max_upload = "big"
depth_infinity = true
batch_endpoint = "no/leading/slash/../.."
[auth]
anonymous = "sometimes"
[[auth.user]]
name = "ann"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
[[auth.user]]
name = "bob"
[admin]
listen = "127.0.0.1:9100"
"#;
        let errors = match parse(text) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        let keys: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            keys,
            [
                "auth.anonymous",
                "auth.user[1]",
                "colour",
                "dav.max_upload",
                "listen"
            ],
            "{errors:#?}"
        );
        assert!(errors[1].contains("password_hash"), "{}", errors[1]);
    }

    #[test]
    fn checks_beyond_types_name_their_key() {
        let text = r#"
listen = "127.0.0.1:4918"
[dav]
principals_path = "principals"
busy_poll_us = 5000000
[admin]
listen = "0.0.0.0:4918"
"#;
        let errors = match parse(text) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        let keys: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            keys,
            ["dav.principals_path", "dav.busy_poll_us", "admin.listen"],
            "{errors:#?}"
        );
    }

    #[test]
    fn a_good_file_gives_its_effective_settings() {
        let c = parse("listen = \"127.0.0.1:8080\"\n[admin]\nlisten = \"127.0.0.1:9100\"\n")
            .unwrap_or_else(|e| panic!("{e:?}"));
        let text = effective(c).unwrap_or_else(|e| panic!("{e}"));
        let back: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back["listen"].as_str(), Some("127.0.0.1:8080"));
        assert_eq!(back["root"].as_str(), Some("."));
        assert_eq!(back["admin"]["listen"].as_str(), Some("127.0.0.1:9100"));
        assert_eq!(back["dav"]["max_connections"].as_integer(), Some(1024));
        // The effective settings read back as the same configuration.
        assert!(parse(&text).is_ok(), "{text}");
    }
}
