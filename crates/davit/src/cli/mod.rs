//! The client commands of `davit`: `ls`, `stat`, `get`, `put`, `mkdir`, `rm`, `cp`, `mv`,
//! `props`, `lock`, `unlock`, `batch`, all on `davit-client`.
//!
//! Exit status: 0 when everything succeeded, [`EXIT_PARTIAL`] when the server reported that
//! some resources failed (each printed to stderr with its status), 1 for any other error,
//! 2 for usage errors (clap).

mod netrc;
mod sync;
mod transfer;

use anyhow::Context;
use davit_client::{
    Client, Depth, Failure, LockRequest, Outcome, PatchValue, PropPatch, PropRequest, QName,
    Resource, Url,
};
use davit_proto::status::reason;
use serde_json::{json, Value};
use std::io::Write;

/// Exit status when the server reported a partial failure.
pub const EXIT_PARTIAL: u8 = 3;

/// Exit status for usage errors (bad arguments), as for clap's own.
pub const EXIT_USAGE: u8 = 2;

/// A usage error: the command line asks for something that cannot be done as given.
#[derive(Debug)]
pub(crate) struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Returns a [`Usage`] error from the enclosing function.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::cli::Usage(format!($($arg)*))))
    };
}
pub(crate) use usage;

/// Options every client command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// User for HTTP Basic authentication [default: $DAVIT_USER, else ~/.netrc].
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Password [default: $DAVIT_PASSWORD, else ~/.netrc].
    #[arg(long)]
    password: Option<String>,
    /// Machine-readable output: one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Seconds connecting may take.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    connect_timeout: u64,
    /// Seconds the server may keep the client waiting for the next bytes of an answer.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    idle_timeout: u64,
    /// Times a request that changes nothing is tried again after a failed connection or a
    /// 503 (after 0.5 s, 1 s, 2 s, ... or the server's Retry-After).
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u32,
}

/// Options of the commands that change something.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Locks {
    /// Submit this lock token (repeatable) in an If header, so that the holder of a lock can
    /// change the locked resource: `If: (<TOKEN>)`, one list per token.
    #[arg(long = "lock-token", value_name = "TOKEN")]
    lock_tokens: Vec<String>,
}

/// Set (to anything but `0`) to pass URL arguments already percent-encoded, used as they are.
pub const ENCODED_URLS_ENV: &str = "DAVIT_ENCODED_URLS";

fn encoded_urls() -> bool {
    std::env::var_os(ENCODED_URLS_ENV).is_some_and(|v| v != "0")
}

/// A URL argument: `http(s)://host[:port]/path`, whose path is taken literally: every
/// character after the host is part of the names, `#`, `?` and `%` included, and is
/// percent-encoded when sent (`.` and `..` segments are resolved). With
/// `DAVIT_ENCODED_URLS=1` the argument is an already percent-encoded URL instead.
pub fn parse_url(s: &str) -> Result<Url, String> {
    const EXPECTED: &str = "expected http://host[:port]/path";
    if encoded_urls() {
        let url = Url::parse(s).map_err(|e| format!("{e} ({EXPECTED})"))?;
        return match url.scheme() {
            "http" | "https" => Ok(url),
            other => Err(format!("unsupported scheme {other:?}")),
        };
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("not a URL ({EXPECTED})"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported scheme {scheme:?}"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.contains(['?', '#']) {
        return Err(format!(
            "the host part {authority:?} holds '?' or '#' ({EXPECTED})"
        ));
    }
    let mut url =
        Url::parse(&format!("{scheme}://{authority}/")).map_err(|e| format!("{e} ({EXPECTED})"))?;
    push_literal(&mut url, path, false)?;
    Ok(url)
}

/// Replaces the path of `url` with the literal `path` (starting with `/`), or with `relative`
/// appends `path`'s names after removing the URL's last name; each name is percent-encoded,
/// `.` and `..` are resolved.
fn push_literal(url: &mut Url, path: &str, relative: bool) -> Result<(), String> {
    let mut segs = url
        .path_segments_mut()
        .map_err(|()| "not a hierarchical URL".to_owned())?;
    let path = if relative {
        segs.pop_if_empty().pop();
        path
    } else {
        segs.clear();
        path.strip_prefix('/').unwrap_or(path)
    };
    let names: Vec<&str> = path.split('/').collect();
    let last = names.len() - 1;
    for (i, name) in names.into_iter().enumerate() {
        match name {
            "." | ".." => {
                if name == ".." {
                    segs.pop_if_empty().pop();
                }
                // `dir/..` still names a collection.
                if i == last {
                    segs.push("");
                }
            }
            _ => {
                segs.push(name);
            }
        }
    }
    Ok(())
}

/// The client subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// List a collection (PROPFIND).
    Ls {
        /// The collection or resource.
        #[arg(value_parser = parse_url)]
        url: Url,
        /// Long listing: type, size, modification time, name.
        #[arg(short = 'l')]
        long: bool,
        /// Recursive (Depth: infinity).
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Depth: 0, 1 or infinity [default: 1].
        #[arg(long, conflicts_with = "recursive")]
        depth: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Show the quota of a collection (RFC 4331): bytes used and available.
    Df {
        #[arg(value_parser = parse_url)]
        url: Url,
        #[command(flatten)]
        common: Common,
    },
    /// Show one resource's live properties (with its resource id, bindings, quota and what
    /// you may do there, where the server says).
    Stat {
        #[arg(value_parser = parse_url)]
        url: Url,
        #[command(flatten)]
        common: Common,
    },
    /// Download a file, or a collection as a directory tree.
    Get {
        #[arg(value_parser = parse_url)]
        url: Url,
        /// Local destination [default: the resource's name in the current directory].
        dest: Option<std::path::PathBuf>,
        /// Resume a partial download (Range request).
        #[arg(short = 'c', long = "continue")]
        resume: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Upload a file, or a directory tree as a collection.
    Put {
        /// Local file or directory.
        src: std::path::PathBuf,
        /// Destination; ending in '/' means "into this collection".
        #[arg(value_parser = parse_url)]
        url: Url,
        /// Upload resumably (a file): an interrupted upload continues from where the server's
        /// bytes stop when the same command runs again (servers that offer resumable uploads,
        /// as davit does; others get a plain PUT).
        #[arg(short = 'c', long = "continue")]
        resume: bool,
        #[command(flatten)]
        locks: Locks,
        #[command(flatten)]
        common: Common,
    },
    /// Create a collection (MKCOL).
    Mkdir {
        #[arg(value_parser = parse_url)]
        url: Url,
        /// Create missing parents too; an existing collection is fine.
        #[arg(short = 'p', long)]
        parents: bool,
        #[command(flatten)]
        locks: Locks,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a resource (DELETE).
    Rm {
        #[arg(value_parser = parse_url)]
        url: Url,
        /// Required to delete a collection with everything in it.
        #[arg(short = 'r', long)]
        recursive: bool,
        #[command(flatten)]
        locks: Locks,
        #[command(flatten)]
        common: Common,
    },
    /// Copy a resource or tree on the server (COPY).
    Cp {
        #[arg(value_parser = parse_url)]
        src: Url,
        /// Destination URL, or a path resolved against SRC.
        dest: String,
        /// Fail instead of replacing an existing destination.
        #[arg(short = 'n', long)]
        no_overwrite: bool,
        #[command(flatten)]
        locks: Locks,
        #[command(flatten)]
        common: Common,
    },
    /// Move or rename a resource or tree on the server (MOVE).
    Mv {
        #[arg(value_parser = parse_url)]
        src: Url,
        /// Destination URL, or a path resolved against SRC.
        dest: String,
        /// Fail instead of replacing an existing destination.
        #[arg(short = 'n', long)]
        no_overwrite: bool,
        #[command(flatten)]
        locks: Locks,
        #[command(flatten)]
        common: Common,
    },
    /// Read or change properties (names as `{namespace}local`; a bare name is in DAV:).
    #[command(subcommand)]
    Props(PropsCommand),
    /// Take a write lock; prints the lock token.
    Lock {
        #[arg(value_parser = parse_url)]
        url: Url,
        /// Seconds [default: the server's].
        #[arg(long)]
        timeout: Option<u64>,
        /// A shared lock instead of an exclusive one.
        #[arg(long)]
        shared: bool,
        /// Lock only the resource, not a collection's members (Depth: 0).
        #[arg(long)]
        shallow: bool,
        /// Owner text.
        #[arg(long)]
        owner: Option<String>,
        /// Refresh the lock with this token instead of taking a new one.
        #[arg(long)]
        refresh: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Run a batch document (docs/batch.md): many operations in one request, one result each.
    Batch {
        /// The batch document, XML (`urn:davit:batch`) or JSON; `-` reads standard input.
        file: std::path::PathBuf,
        /// The collection the batch runs in (relative hrefs resolve against it).
        #[arg(value_parser = parse_url)]
        url: Url,
        /// Content type of FILE [default: application/json for a .json file, else
        /// application/xml].
        #[arg(long)]
        content_type: Option<String>,
        #[command(flatten)]
        locks: Locks,
        #[command(flatten)]
        common: Common,
    },
    /// Mirror a tree one way, transferring only what changed: `sync DIR URL` uploads the
    /// local directory into the collection, `sync URL DIR` downloads the collection into the
    /// directory. One line per change; exit 3 when some failed.
    Sync {
        /// Source: a local directory or a collection URL.
        #[arg(value_parser = parse_endpoint)]
        from: Endpoint,
        /// Destination: a collection URL or a local directory (the other kind).
        #[arg(value_parser = parse_endpoint)]
        to: Endpoint,
        /// Delete on the destination what the source does not have (never under a source
        /// collection that could not be read completely).
        #[arg(long)]
        delete: bool,
        /// Say what would be done, change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Files transferred at once.
        #[arg(long, short = 'j', default_value_t = 4)]
        jobs: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Release a lock.
    Unlock {
        #[arg(value_parser = parse_url)]
        url: Url,
        /// The lock token (with or without <>).
        token: String,
        #[command(flatten)]
        common: Common,
    },
}

/// `davit props ...`.
#[derive(clap::Subcommand, Debug)]
pub enum PropsCommand {
    /// Show properties: the named ones, or all (allprop).
    Get {
        #[arg(value_parser = parse_url)]
        url: Url,
        names: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Set a property.
    Set {
        #[arg(value_parser = parse_url)]
        url: Url,
        name: String,
        value: String,
        /// VALUE is XML content, not text.
        #[arg(long)]
        xml: bool,
        #[command(flatten)]
        locks: Locks,
        #[command(flatten)]
        common: Common,
    },
    /// Remove properties.
    Rm {
        #[arg(value_parser = parse_url)]
        url: Url,
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        locks: Locks,
        #[command(flatten)]
        common: Common,
    },
}

impl ClientCommand {
    fn common(&self) -> &Common {
        match self {
            ClientCommand::Ls { common, .. }
            | ClientCommand::Stat { common, .. }
            | ClientCommand::Df { common, .. }
            | ClientCommand::Sync { common, .. }
            | ClientCommand::Get { common, .. }
            | ClientCommand::Put { common, .. }
            | ClientCommand::Mkdir { common, .. }
            | ClientCommand::Rm { common, .. }
            | ClientCommand::Cp { common, .. }
            | ClientCommand::Mv { common, .. }
            | ClientCommand::Lock { common, .. }
            | ClientCommand::Unlock { common, .. }
            | ClientCommand::Batch { common, .. }
            | ClientCommand::Props(PropsCommand::Get { common, .. })
            | ClientCommand::Props(PropsCommand::Set { common, .. })
            | ClientCommand::Props(PropsCommand::Rm { common, .. }) => common,
        }
    }

    fn url(&self) -> Option<&Url> {
        Some(match self {
            ClientCommand::Sync { from, to, .. } => {
                return [from, to].into_iter().find_map(|e| match e {
                    Endpoint::Remote(u) => Some(u),
                    Endpoint::Local(_) => None,
                })
            }
            ClientCommand::Ls { url, .. }
            | ClientCommand::Stat { url, .. }
            | ClientCommand::Df { url, .. }
            | ClientCommand::Get { url, .. }
            | ClientCommand::Put { url, .. }
            | ClientCommand::Mkdir { url, .. }
            | ClientCommand::Rm { url, .. }
            | ClientCommand::Lock { url, .. }
            | ClientCommand::Unlock { url, .. }
            | ClientCommand::Batch { url, .. }
            | ClientCommand::Props(PropsCommand::Get { url, .. })
            | ClientCommand::Props(PropsCommand::Set { url, .. })
            | ClientCommand::Props(PropsCommand::Rm { url, .. }) => url,
            ClientCommand::Cp { src, .. } | ClientCommand::Mv { src, .. } => src,
        })
    }

    /// The lock tokens to submit (none for commands that change nothing).
    fn lock_tokens(&self) -> Vec<String> {
        match self {
            ClientCommand::Put { locks, .. }
            | ClientCommand::Mkdir { locks, .. }
            | ClientCommand::Rm { locks, .. }
            | ClientCommand::Cp { locks, .. }
            | ClientCommand::Mv { locks, .. }
            | ClientCommand::Batch { locks, .. }
            | ClientCommand::Props(PropsCommand::Set { locks, .. })
            | ClientCommand::Props(PropsCommand::Rm { locks, .. }) => locks
                .lock_tokens
                .iter()
                .map(|t| strip_token(t).to_owned())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Runs a client command and returns the process exit status.
pub fn run(cmd: ClientCommand) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("davit: {e}");
            return 1;
        }
    };
    match runtime.block_on(dispatch(cmd)) {
        Ok(true) => 0,
        Ok(false) => EXIT_PARTIAL,
        Err(e) => {
            eprintln!("davit: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                EXIT_USAGE
            } else {
                1
            }
        }
    }
}

/// The output context: JSON or human, and where failures go.
pub(crate) struct Out {
    pub json: bool,
}

impl Out {
    pub fn line(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        // A closed pipe (`davit ls | head`) is not an error worth a message.
        let _ = writeln!(o, "{s}");
    }

    pub fn json(&self, v: &Value) {
        self.line(&v.to_string());
    }

    /// One failed resource, on stderr.
    pub fn failure(&self, what: &str, status: u16, detail: &str) {
        eprintln!("davit: {what}: {status} {}{detail}", reason(status));
    }

    /// Something asked for that the server's answer does not mention.
    pub fn missing(&self, what: &str) {
        eprintln!("davit: {what}: not in the server's answer");
    }

    pub fn failures(&self, fs: &[Failure]) {
        for f in fs {
            let cond = f
                .error
                .iter()
                .map(|q| format!(" ({})", clark(q)))
                .collect::<String>();
            let desc = f
                .description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            self.failure(&f.path, f.status, &format!("{cond}{desc}"));
        }
    }
}

fn client(common: &Common, url: Option<&Url>) -> anyhow::Result<Client> {
    let mut user = common
        .user
        .clone()
        .or_else(|| std::env::var("DAVIT_USER").ok());
    let mut password = common
        .password
        .clone()
        .or_else(|| std::env::var("DAVIT_PASSWORD").ok());
    if user.is_none() || password.is_none() {
        if let Some((u, p)) = url.and_then(netrc_credentials) {
            // The netrc password belongs to the netrc login only.
            if user.is_none() || user.as_deref() == Some(u.as_str()) {
                user.get_or_insert(u);
                if password.is_none() {
                    password = p;
                }
            }
        }
    }
    let mut b = Client::builder()
        .connect_timeout(std::time::Duration::from_secs(
            common.connect_timeout.max(1),
        ))
        .idle_timeout(std::time::Duration::from_secs(common.idle_timeout.max(1)))
        .retries(common.retries);
    if let Some(u) = user {
        b = b.credentials(u, password);
    }
    Ok(b.build()?)
}

fn netrc_credentials(url: &Url) -> Option<(String, Option<String>)> {
    let path = match std::env::var_os("NETRC") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".netrc"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    netrc::lookup(&text, url.host_str()?)
}

/// `{ns}local`, or `local` for DAV:.
pub(crate) fn clark(q: &QName) -> String {
    if q.ns == davit_proto::xml::DAV {
        q.local.clone()
    } else {
        format!("{{{}}}{}", q.ns, q.local)
    }
}

fn parse_name(s: &str) -> anyhow::Result<QName> {
    let q = match s.strip_prefix('{') {
        Some(rest) => {
            let Some((ns, local)) = rest.split_once('}') else {
                usage!("property name {s:?}: missing '}}'");
            };
            QName::new(ns, local)
        }
        None => QName::dav(s),
    };
    let ok = !q.local.is_empty()
        && q.local
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !q
            .local
            .starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.');
    if !ok {
        usage!("property name {s:?} is not an XML name");
    }
    Ok(q)
}

/// One side of `davit sync`.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A local directory.
    Local(std::path::PathBuf),
    /// A collection.
    Remote(Url),
}

/// `http://…` or `https://…` is a URL (see [`parse_url`]); anything else a local path.
fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        parse_url(s).map(Endpoint::Remote)
    } else {
        Ok(Endpoint::Local(std::path::PathBuf::from(s)))
    }
}

/// Destination of cp/mv: a URL (see [`parse_url`]), a literal absolute path on the source's
/// server (`/x/y`), or literal names relative to the source's parent collection (`c.txt`,
/// `../z/`).
fn destination(src: &Url, dest: &str) -> anyhow::Result<Url> {
    let lower = dest.get(..8).unwrap_or(dest).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return parse_url(dest).map_err(|e| anyhow::anyhow!("destination {dest:?}: {e}"));
    }
    if encoded_urls() {
        return src
            .join(dest)
            .with_context(|| format!("destination {dest:?}"));
    }
    let mut url = src.clone();
    url.set_query(None);
    url.set_fragment(None);
    push_literal(&mut url, dest, !dest.starts_with('/'))
        .map_err(|e| anyhow::anyhow!("destination {dest:?}: {e}"))?;
    Ok(url)
}

/// JSON for a resource.
pub(crate) fn resource_json(r: &Resource) -> Value {
    let l = &r.live;
    json!({
        "href": r.url.as_str(),
        "path": r.path,
        "name": r.name(),
        "status": r.status,
        "collection": l.is_collection,
        "size": l.size,
        "etag": l.etag,
        "modified": l.modified.map(davit_proto::date::rfc3339),
        "content_type": l.content_type,
        "created": l.created,
        "display_name": l.display_name,
        "resource_id": l.resource_id,
        "parents": l.parents.as_ref().map(|ps| ps
            .iter()
            .map(|(href, segment)| json!({"href": href, "segment": segment}))
            .collect::<Vec<_>>()),
        "quota_used": l.quota_used,
        "quota_available": l.quota_available,
        "privileges": l.privileges,
    })
}

/// `1.5 GiB` and the like.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `key: value` lines of [`resource_json`]: lists are written space-separated, a parent as
/// its collection's href followed by the segment.
fn resource_lines(out: &Out, r: &Resource) {
    if let Value::Object(map) = resource_json(r) {
        for (k, v) in map {
            let text = match &v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.clone(),
                        Value::Object(o) => format!(
                            "{}{}",
                            o.get("href").and_then(Value::as_str).unwrap_or(""),
                            o.get("segment").and_then(Value::as_str).unwrap_or("")
                        ),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            out.line(&format!("{k}: {text}"));
        }
    }
}

fn outcome_done(out: &Out, what: &str, url: &Url, o: &Outcome) -> bool {
    if out.json {
        out.json(&json!({
            "op": what,
            "url": url.as_str(),
            "status": o.status,
            "failures": o.failures.iter().map(|f| json!({
                "href": f.url.as_str(), "path": f.path, "status": f.status,
                "error": f.error.iter().map(clark).collect::<Vec<_>>(),
                "description": f.description,
            })).collect::<Vec<_>>(),
        }));
    }
    out.failures(&o.failures);
    o.is_complete()
}

/// Runs one command; `Ok(false)` means a partial failure.
async fn dispatch(cmd: ClientCommand) -> anyhow::Result<bool> {
    let common = cmd.common().clone();
    let client = client(&common, cmd.url())?.with_lock_tokens(cmd.lock_tokens());
    let out = Out { json: common.json };
    match cmd {
        ClientCommand::Ls {
            url,
            long,
            recursive,
            depth,
            ..
        } => {
            let depth = match (recursive, depth.as_deref()) {
                (true, _) => Depth::Infinity,
                (false, None) => Depth::One,
                (false, Some(d)) => match Depth::parse(d) {
                    Ok(d) => d,
                    Err(_) => usage!("--depth must be 0, 1 or infinity, not {d:?}"),
                },
            };
            ls(&client, &out, &url, long, depth).await
        }
        ClientCommand::Stat { url, .. } => {
            let r = client.stat(&url, &PropRequest::Detailed).await?;
            if out.json {
                out.json(&resource_json(&r));
            } else {
                resource_lines(&out, &r);
            }
            Ok(true)
        }
        ClientCommand::Df { url, .. } => {
            let names = vec![
                QName::dav("quota-used-bytes"),
                QName::dav("quota-available-bytes"),
            ];
            let r = client.stat(&url, &PropRequest::Named(names)).await?;
            let (used, available) = (r.live.quota_used, r.live.quota_available);
            if out.json {
                out.json(&json!({"href": r.url.as_str(), "used": used, "available": available}));
            } else {
                let show = |n: Option<u64>| {
                    n.map(|b| format!("{b} ({})", human_bytes(b)))
                        .unwrap_or_else(|| "-".into())
                };
                out.line(&format!("used: {}", show(used)));
                out.line(&format!("available: {}", show(available)));
            }
            if used.is_none() && available.is_none() {
                out.missing(&format!("{} quota (RFC 4331)", r.path));
                return Ok(false);
            }
            Ok(true)
        }
        ClientCommand::Get {
            url, dest, resume, ..
        } => transfer::get(&client, &out, &url, dest, resume).await,
        ClientCommand::Put {
            src, url, resume, ..
        } => transfer::put(&client, &out, &src, &url, resume).await,
        ClientCommand::Mkdir {
            mut url, parents, ..
        } => {
            // nginx refuses MKCOL of a URL without the trailing slash (409); others accept both.
            if !url.path().ends_with('/') {
                url.set_path(&format!("{}/", url.path()));
            }
            if parents {
                mkdir_p(&client, &url).await?;
            } else {
                client.mkcol(&url).await?;
            }
            if out.json {
                out.json(&json!({"op": "mkdir", "url": url.as_str(), "status": 201}));
            }
            Ok(true)
        }
        ClientCommand::Rm { url, recursive, .. } => {
            if !recursive {
                let r = match client.stat(&url, &PropRequest::Common).await {
                    Err(e) if e.status() == Some(404) => {
                        anyhow::bail!("DELETE {url}: 404 Not Found (nothing to remove)")
                    }
                    other => other?,
                };
                if r.live.is_collection {
                    usage!("{url} is a collection (use -r to delete it and everything in it)");
                }
            }
            let o = client.delete(&url).await?;
            Ok(outcome_done(&out, "rm", &url, &o))
        }
        ClientCommand::Cp {
            src,
            dest,
            no_overwrite,
            ..
        } => {
            let dest = destination(&src, &dest)?;
            let o = client
                .copy(&src, &dest, !no_overwrite, true)
                .await
                .map_err(|e| exists_error(e, no_overwrite, &dest))?;
            Ok(outcome_done(&out, "cp", &src, &o))
        }
        ClientCommand::Mv {
            src,
            dest,
            no_overwrite,
            ..
        } => {
            let dest = destination(&src, &dest)?;
            let o = client
                .move_to(&src, &dest, !no_overwrite)
                .await
                .map_err(|e| exists_error(e, no_overwrite, &dest))?;
            Ok(outcome_done(&out, "mv", &src, &o))
        }
        ClientCommand::Props(p) => props(&client, &out, p).await,
        ClientCommand::Lock {
            url,
            timeout,
            shared,
            shallow,
            owner,
            refresh,
            ..
        } => {
            let lock = match refresh {
                Some(t) => client.refresh(&url, strip_token(&t), timeout).await?,
                None => {
                    let req = LockRequest {
                        exclusive: !shared,
                        deep: !shallow,
                        owner,
                        timeout,
                    };
                    client.lock(&url, &req).await?
                }
            };
            if out.json {
                out.json(&json!({"token": lock.token, "timeout": lock.timeout, "root": lock.root}));
            } else {
                out.line(&lock.token);
            }
            Ok(true)
        }
        ClientCommand::Unlock { url, token, .. } => {
            client.unlock(&url, strip_token(&token)).await?;
            Ok(true)
        }
        ClientCommand::Batch {
            file,
            url,
            content_type,
            ..
        } => batch(&client, &out, &file, &url, content_type).await,
        ClientCommand::Sync {
            from,
            to,
            delete,
            dry_run,
            jobs,
            ..
        } => {
            let (direction, local, url) = match (from, to) {
                (Endpoint::Local(l), Endpoint::Remote(u)) => (sync::Direction::Up, l, u),
                (Endpoint::Remote(u), Endpoint::Local(l)) => (sync::Direction::Down, l, u),
                _ => usage!("sync goes between a local directory and a URL, one of each"),
            };
            let opts = sync::Options {
                delete,
                dry_run,
                jobs,
            };
            sync::sync(&client, &out, direction, &local, &url, &opts).await
        }
    }
}

/// A 412 from `cp -n`/`mv -n` means the destination exists: say so.
fn exists_error(e: davit_client::Error, no_overwrite: bool, dest: &Url) -> anyhow::Error {
    if no_overwrite && e.status() == Some(412) {
        anyhow::anyhow!("{dest} exists (not replaced: -n)")
    } else {
        e.into()
    }
}

/// The content type of a batch document: JSON by its extension, XML otherwise.
fn batch_content_type(file: &std::path::Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => "application/json",
        _ => "application/xml",
    }
}

async fn batch(
    client: &Client,
    out: &Out,
    file: &std::path::Path,
    url: &Url,
    content_type: Option<String>,
) -> anyhow::Result<bool> {
    let body = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)
            .context("reading the batch from standard input")?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    let ctype = content_type.unwrap_or_else(|| {
        if file.as_os_str() == "-" {
            // Standard input has no extension: a JSON document starts with '{'.
            match body.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => "application/json",
                _ => "application/xml",
            }
            .to_owned()
        } else {
            batch_content_type(file).to_owned()
        }
    });
    let mut results = match client.batch(url, body, &ctype).await {
        Ok(r) => r,
        // A server without davit's batch endpoint refuses the POST one way or another.
        Err(e) if matches!(e.status(), Some(404 | 405 | 415 | 501)) => {
            anyhow::bail!(
                "{e}\n(the server has no batch endpoint: batches are davit's own, see `davit batch --help`)"
            )
        }
        Err(e) => return Err(e.into()),
    };
    let mut ok = true;
    while let Some(r) = results.next().await {
        let r = r?;
        let cond = r
            .error
            .iter()
            .map(|q| format!(" ({})", clark(q)))
            .collect::<String>();
        let desc = r
            .description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        if out.json {
            out.json(&op_json(&r));
        } else {
            out.line(&format!(
                "{} {} {}{cond}{desc}",
                r.status,
                r.path,
                reason(r.status)
            ));
            // Properties read or set by PROPFIND / PROPPATCH operations, one per line with
            // its group's status: `  200 name: value`, `  404 name`.
            for ps in &r.propstats {
                for p in &ps.props {
                    let value = if (200..300).contains(&ps.status) {
                        prop_value(p)
                    } else {
                        String::new()
                    };
                    let sep = if value.is_empty() { "" } else { ": " };
                    out.line(&format!("  {} {}{sep}{value}", ps.status, clark(&p.name)));
                }
            }
        }
        if !r.is_success() {
            ok = false;
            out.failure(
                &format!("operation {} {}", r.index + 1, r.path),
                r.status,
                &format!("{cond}{desc}"),
            );
        }
    }
    Ok(ok)
}

/// JSON for a batch operation's result.
fn op_json(r: &davit_client::OpResult) -> Value {
    let mut v = json!({
        "index": r.index,
        "href": r.url.as_str(),
        "path": r.path,
        "status": r.status,
    });
    if !r.error.is_empty() {
        v["error"] = r.error.iter().map(clark).collect::<Vec<_>>().into();
    }
    if let Some(d) = &r.description {
        v["description"] = d.clone().into();
    }
    if let Some(l) = &r.location {
        v["location"] = l.as_str().into();
    }
    if !r.propstats.is_empty() {
        v["propstat"] = r
            .propstats
            .iter()
            .map(|ps| {
                let props: serde_json::Map<String, Value> = ps
                    .props
                    .iter()
                    .map(|p| (clark(&p.name), Value::String(prop_value(p))))
                    .collect();
                json!({"status": ps.status, "props": props})
            })
            .collect::<Vec<_>>()
            .into();
    }
    v
}

/// A property's value: its text, or its XML content when it holds elements.
fn prop_value(p: &davit_proto::xml::Element) -> String {
    if p.elements().next().is_none() {
        return p.text();
    }
    p.children
        .iter()
        .map(|c| match c {
            davit_proto::xml::Node::Element(e) => e.to_fragment(),
            davit_proto::xml::Node::Text(t) => {
                let mut s = String::new();
                davit_proto::xml::escape_text(t, &mut s);
                s
            }
        })
        .collect()
}

fn strip_token(t: &str) -> &str {
    t.trim().trim_start_matches('<').trim_end_matches('>')
}

/// Whether a PROPFIND error is a server refusing `Depth: infinity` (nginx and davit with
/// `depth_infinity = false`: 403; dufs: 400; the dav-server crate: 501 with
/// `DAV:propfind-finite-depth`; others 405, 412, 422 or 507 for a tree too large).
fn refuses_depth_infinity(e: &davit_client::Error) -> bool {
    match e {
        davit_client::Error::Status {
            status, condition, ..
        } => {
            condition.as_deref() == Some("propfind-finite-depth")
                || matches!(status, 400 | 403 | 405 | 412 | 422 | 501 | 507)
        }
        _ => false,
    }
}

/// Every resource under `url` (itself included): one Depth-infinity PROPFIND, or, when the
/// server refuses that (see [`refuses_depth_infinity`]), a walk of Depth-1 listings.
pub(crate) async fn walk(
    client: &Client,
    url: &Url,
    props: &PropRequest,
    mut f: impl FnMut(Resource) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match client.propfind(url, Depth::Infinity, props).await {
        Ok(mut listing) => {
            while let Some(r) = listing.next().await {
                f(r?)?;
            }
            return Ok(());
        }
        Err(e) if refuses_depth_infinity(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let mut queue = std::collections::VecDeque::from([(url.clone(), true)]);
    while let Some((dir, first)) = queue.pop_front() {
        let mut listing = client.propfind(&dir, Depth::One, props).await?;
        let dir_path = percent_encoding::percent_decode_str(dir.path())
            .decode_utf8_lossy()
            .trim_end_matches('/')
            .to_owned();
        while let Some(r) = listing.next().await {
            let r = r?;
            let is_self = r.path.trim_end_matches('/') == dir_path;
            if is_self && !first {
                continue;
            }
            if r.live.is_collection && !is_self {
                queue.push_back((r.url.clone(), false));
            }
            f(r)?;
        }
    }
    Ok(())
}

async fn ls(
    client: &Client,
    out: &Out,
    url: &Url,
    long: bool,
    depth: Depth,
) -> anyhow::Result<bool> {
    let base = percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .trim_end_matches('/')
        .to_owned();
    let mut ok = true;
    // Collected, then written sorted: by directory, then by name (the members of a collection
    // before those of its subcollections), whatever order the server listed them in.
    let mut entries: Vec<(String, Resource)> = Vec::new();
    let mut keep = |r: Resource| -> anyhow::Result<()> {
        let path = r.path.trim_end_matches('/');
        let rel = path
            .strip_prefix(&base)
            .unwrap_or(path)
            .trim_start_matches('/')
            .to_owned();
        // The collection itself is the listing's header, not one of its entries (unless asked
        // for alone with Depth 0); a file is listed as itself, as `ls FILE` does.
        if rel.is_empty() && depth != Depth::Zero && r.live.is_collection {
            return Ok(());
        }
        if !(200..300).contains(&r.status) {
            ok = false;
            out.failure(&r.path, r.status, "");
            return Ok(());
        }
        entries.push((rel, r));
        Ok(())
    };
    // JSON readers get the resource ids and what they may do with each member too.
    let props = if out.json {
        PropRequest::Named(
            PropRequest::COMMON
                .iter()
                .chain(&["resource-id", "current-user-privilege-set"])
                .map(|l| QName::dav(l))
                .collect(),
        )
    } else {
        PropRequest::Common
    };
    if depth == Depth::Infinity {
        walk(client, url, &props, &mut keep).await?;
    } else {
        let mut listing = client.propfind(url, depth, &props).await?;
        while let Some(r) = listing.next().await {
            keep(r?)?;
        }
    }
    entries.sort_by(|(a, _), (b, _)| {
        let split = |p: &str| {
            let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
            (dir.to_owned(), name.to_owned())
        };
        split(a).cmp(&split(b))
    });
    for (rel, r) in &entries {
        if out.json {
            out.json(&resource_json(r));
            continue;
        }
        let name = if rel.is_empty() {
            r.name()
        } else {
            rel.as_str()
        };
        let slash = if r.live.is_collection { "/" } else { "" };
        if long {
            let kind = if r.live.is_collection { 'd' } else { '-' };
            let size = r
                .live
                .size
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into());
            let mtime = r
                .live
                .modified
                .map(davit_proto::date::rfc3339)
                .unwrap_or_else(|| "-".into());
            out.line(&format!("{kind} {size:>12} {mtime:>20} {name}{slash}"));
        } else {
            out.line(&format!("{name}{slash}"));
        }
    }
    Ok(ok)
}

pub(crate) async fn mkdir_p(client: &Client, url: &Url) -> anyhow::Result<()> {
    let mut partial = url.clone();
    let segments: Vec<String> = url
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mut path = String::from("/");
    for seg in segments {
        path.push_str(&seg);
        path.push('/');
        partial.set_path(&path);
        match client.mkcol(&partial).await {
            Ok(()) => {}
            // 405: it exists already; anything else on the way is a real error unless the
            // collection turns out to exist (some servers answer 403 or 409 instead).
            Err(e) if e.status() == Some(405) => {}
            Err(e) => match client.stat(&partial, &PropRequest::Common).await {
                Ok(r) if r.live.is_collection => {}
                _ => return Err(e.into()),
            },
        }
    }
    Ok(())
}

async fn props(client: &Client, out: &Out, cmd: PropsCommand) -> anyhow::Result<bool> {
    match cmd {
        PropsCommand::Get { url, names, .. } => {
            let wanted: Vec<QName> = names
                .iter()
                .map(|n| parse_name(n))
                .collect::<anyhow::Result<_>>()?;
            let req = if wanted.is_empty() {
                PropRequest::AllProp
            } else {
                PropRequest::Named(wanted.clone())
            };
            let r = client.stat(&url, &req).await?;
            let mut ok = true;
            let mut obj = serde_json::Map::new();
            if let Some(s) = r.response.status {
                if !(200..300).contains(&s) {
                    out.failure(&r.path, s, "");
                    return Ok(false);
                }
            }
            for ps in &r.response.propstats {
                for p in &ps.props {
                    // Only what was asked for (some servers add more), each once.
                    if !wanted.is_empty() && !wanted.contains(&p.name) {
                        continue;
                    }
                    let name = clark(&p.name);
                    if !(200..300).contains(&ps.status) {
                        ok = false;
                        out.failure(&format!("{} {name}", r.path), ps.status, "");
                        continue;
                    }
                    let value = prop_value(p);
                    if out.json {
                        obj.insert(name, Value::String(value));
                    } else {
                        out.line(&format!("{name}: {value}"));
                    }
                }
            }
            // A requested property the answer leaves out entirely is a failure too.
            for name in &wanted {
                let answered = r
                    .response
                    .propstats
                    .iter()
                    .any(|ps| ps.props.iter().any(|p| &p.name == name));
                if !answered {
                    ok = false;
                    out.missing(&format!("{} {}", r.path, clark(name)));
                }
            }
            if out.json {
                out.json(&Value::Object(obj));
            }
            Ok(ok)
        }
        PropsCommand::Set {
            url,
            name,
            value,
            xml,
            ..
        } => {
            let value = if xml {
                PatchValue::Xml(value)
            } else {
                PatchValue::Text(value)
            };
            let ops = [PropPatch::Set(parse_name(&name)?, value)];
            patch(client, out, &url, &ops).await
        }
        PropsCommand::Rm { url, names, .. } => {
            let ops = names
                .iter()
                .map(|n| parse_name(n).map(PropPatch::Remove))
                .collect::<anyhow::Result<Vec<_>>>()?;
            patch(client, out, &url, &ops).await
        }
    }
}

async fn patch(client: &Client, out: &Out, url: &Url, ops: &[PropPatch]) -> anyhow::Result<bool> {
    let outcomes = client.proppatch(url, ops).await?;
    let mut ok = true;
    // An instruction the answer says nothing about was not done (a server that ignores
    // PROPPATCH still answers 207).
    for op in ops {
        let name = match op {
            PropPatch::Set(n, _) | PropPatch::Remove(n) => n,
        };
        if !outcomes.iter().any(|o| &o.name == name) {
            ok = false;
            out.missing(&format!("{} {}", url.path(), clark(name)));
            if out.json {
                out.json(&json!({"name": clark(name), "status": null, "error": ["not in the server's answer"]}));
            }
        }
    }
    for o in &outcomes {
        if out.json {
            out.json(&json!({"name": clark(&o.name), "status": o.status,
                "error": o.error.iter().map(clark).collect::<Vec<_>>()}));
        }
        if !(200..300).contains(&o.status) {
            ok = false;
            let cond = o
                .error
                .iter()
                .map(|q| format!(" ({})", clark(q)))
                .collect::<String>();
            out.failure(
                &format!("{} {}", url.path(), clark(&o.name)),
                o.status,
                &cond,
            );
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_destinations() {
        assert_eq!(
            parse_name("{urn:z}color").unwrap(),
            QName::new("urn:z", "color")
        );
        assert_eq!(parse_name("getetag").unwrap(), QName::dav("getetag"));
        assert!(parse_name("{urn:z}").is_err());
        assert!(parse_name("a b").is_err());
        let src = Url::parse("http://h/a/b.txt").unwrap();
        assert_eq!(
            destination(&src, "c.txt").unwrap().as_str(),
            "http://h/a/c.txt"
        );
        assert_eq!(destination(&src, "/x/y").unwrap().as_str(), "http://h/x/y");
        assert_eq!(
            destination(&src, "http://h/z").unwrap().as_str(),
            "http://h/z"
        );
    }

    #[test]
    fn path_arguments_are_literal_names() {
        let u = |s: &str| parse_url(s).unwrap().as_str().to_owned();
        assert_eq!(u("http://h/t/take #2.txt"), "http://h/t/take%20%232.txt");
        assert_eq!(u("http://h/q?x=1.txt"), "http://h/q%3Fx=1.txt");
        assert_eq!(u("http://h/p%q/"), "http://h/p%25q/");
        assert_eq!(u("http://h/a%20b"), "http://h/a%2520b");
        assert_eq!(u("http://h:8080"), "http://h:8080/");
        assert_eq!(u("HTTP://h/a/./b/../c/"), "http://h/a/c/");
        assert_eq!(u("http://h/a/.."), "http://h/");
        assert!(parse_url("http://h?x/").is_err());
        assert!(parse_url("ftp://h/").is_err());
        assert!(parse_url("h/x").is_err());
        let src = parse_url("http://h/t/one.txt").unwrap();
        let d = |s: &str| destination(&src, s).unwrap().as_str().to_owned();
        assert_eq!(d("take #2.txt"), "http://h/t/take%20%232.txt");
        assert_eq!(d("q?x=1.txt"), "http://h/t/q%3Fx=1.txt");
        assert_eq!(d("../up/50%.txt"), "http://h/up/50%25.txt");
        assert_eq!(d("/abs/#1"), "http://h/abs/%231");
        let dir = parse_url("http://h/t/dir/").unwrap();
        assert_eq!(
            destination(&dir, "new dir/").unwrap().as_str(),
            "http://h/t/new%20dir/"
        );
    }
}
