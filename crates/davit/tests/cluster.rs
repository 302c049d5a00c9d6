//! The distributed backend through real `davit serve` processes over HTTP: two instances on
//! one PostgreSQL database and one S3 bucket, and what clients see of them when writes race,
//! when an instance is killed mid-upload, and when PostgreSQL or the object store goes away
//! and comes back.
//!
//! Every test is ignored by default: they need the services `scripts/distributed-test.sh`
//! starts (PostgreSQL: `DAVIT_TEST_PG`, a connection string on which a test may
//! `CREATE DATABASE`; S3: `DAVIT_TEST_S3`, `endpoint=... region=... bucket=... key=...
//! secret=...` as `scripts/garage.sh` prints it). The fault tests also stop and restart those
//! services (`scripts/pg.sh pause|resume DAVIT_TEST_PG_DIR`, `scripts/garage.sh pause|resume
//! DAVIT_TEST_S3_DIR`), so run them one at a time, with nothing else using the services:
//!
//! ```text
//! cargo test -p davit --test cluster -- --ignored --test-threads=1
//! ```
//!
//! Each test makes its own database; the bucket is shared (objects are keyed by resource id),
//! and `davit gc` against one test's database removes the objects of earlier tests, which are
//! finished by then.
//!
//! Clients are std-only (a fresh `Connection: close` connection per request, as in the other
//! binary tests), so a request that hangs shows as a time-out, never as a stuck test.

mod common;

use common::{child, status_code, try_request, Resp};
use davit_proto::xml::{parse_document, Element, Limits};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// How long a request may take while a backend is away: it must answer 503, not hang.
const BOUNDED: Duration = Duration::from_secs(10);
const MIB: usize = 1 << 20;

// ---- the services ----

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run scripts/distributed-test.sh"))
}

/// A field of `DAVIT_TEST_S3`.
fn s3(key: &str) -> String {
    let text = env("DAVIT_TEST_S3");
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("DAVIT_TEST_S3 has no {key}"))
        .to_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `sql` on the database at `url` and returns the first column of every row, as text.
fn query(url: &str, sql: &str) -> Vec<Option<String>> {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        tokio::spawn(conn);
        client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
                _ => None,
            })
            .collect()
    })
}

/// A fresh, empty database on the `DAVIT_TEST_PG` server; its connection string.
fn fresh_database() -> String {
    let admin = env("DAVIT_TEST_PG");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let name = format!("davit_cluster_{}_{nanos}", std::process::id());
    query(&admin, &format!("CREATE DATABASE {name}"));
    format!("{admin} dbname={name}")
}

/// `scripts/<script> <cmd> <dir>` (pg.sh / garage.sh pause and resume), which must succeed.
fn service(script: &str, cmd: &str, dir_var: &str) {
    let dir = env(dir_var);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(root.join("scripts").join(script))
        .arg(cmd)
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "scripts/{script} {cmd} {dir}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- davit instances ----

/// A `davit serve --config` child process, killed (SIGKILL) when dropped.
struct Instance {
    child: Child,
    port: u16,
    name: &'static str,
    log: PathBuf,
}

impl Instance {
    fn start(name: &'static str, config: &Path, dir: &Path) -> Instance {
        let port = common::free_port();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_davit"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn davit");
        let mut inst = Instance {
            child,
            port,
            name,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = inst.child.try_wait().expect("try_wait") {
                panic!(
                    "davit {name} exited at start-up: {status}\n{}",
                    inst.log_text()
                );
            }
            if let Ok(r) = try_request(port, "OPTIONS", "/", &[], b"") {
                assert_eq!(r.status, 200, "OPTIONS answered {}", r.status);
                return inst;
            }
            assert!(
                Instant::now() < deadline,
                "davit {name} did not answer in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        try_request(self.port, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.name))
    }

    fn get(&self, path: &str) -> Resp {
        self.req("GET", path, &[], b"")
    }

    fn put(&self, path: &str, body: &[u8]) -> Resp {
        self.req("PUT", path, &[], body)
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two instances on a fresh database and the shared bucket.
struct Cluster {
    a: Instance,
    b: Instance,
    db: String,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// The instances' log lines about failures, for a failing test's message.
    fn trouble(&self) -> String {
        let mut out = String::new();
        for inst in [&self.a, &self.b] {
            for line in inst.log_text().lines() {
                if line.contains("WARN") || line.contains("ERROR") || line.contains(" 500 ") {
                    out.push_str(&format!("{}: {line}\n", inst.name));
                }
            }
        }
        out
    }
}

fn cluster() -> Cluster {
    let db = fresh_database();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("davit.toml");
    // Short time-outs, so a backend that is away is a prompt 503; no background sweep.
    let text = format!(
        r#"[store]
backend = "postgres"
url = "{db}"
pool_size = 8
timeout_secs = 5
[blobs]
endpoint = "{}"
region = "{}"
bucket = "{}"
part_size = 5242880
access_key_id = "{}"
secret_access_key = "{}"
timeout_secs = 5
sweep_interval_secs = 0
reuse_connections = false
"#,
        s3("endpoint"),
        s3("region"),
        s3("bucket"),
        s3("key"),
        s3("secret")
    );
    std::fs::write(&config, text).expect("write config");
    let a = Instance::start("a", &config, dir.path());
    let b = Instance::start("b", &config, dir.path());
    Cluster {
        a,
        b,
        db,
        config,
        _dir: dir,
    }
}

// ---- bodies, answers ----

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` bytes of pseudo-random data from `seed`.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn etag(r: &Resp) -> String {
    r.header("etag")
        .unwrap_or_else(|| panic!("no ETag in a {} answer", r.status))
        .to_owned()
}

/// A 503 that says when to come back.
fn assert_unavailable(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: {} {}", r.status, r.text());
    let after = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    assert!(
        after.parse::<u64>().is_ok_and(|s| s > 0),
        "{what}: Retry-After {after:?}"
    );
}

/// A request that must answer within [`BOUNDED`]; the answer and how long it took.
fn timed(
    inst: &Instance,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Resp, Duration) {
    let t = Instant::now();
    let r = inst.req(method, path, headers, body);
    let took = t.elapsed();
    assert!(
        took < BOUNDED,
        "{method} {path} on {} took {took:?} (answered {})",
        inst.name,
        r.status
    );
    (r, took)
}

/// What PROPFIND Depth 0 reports of a resource: status of the whole answer, and its
/// `getetag` and `getcontentlength` (when found).
#[derive(Debug, PartialEq, Eq)]
struct Live {
    etag: Option<String>,
    length: Option<u64>,
}

fn propfind_live(inst: &Instance, path: &str) -> Option<Live> {
    let body = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:getcontentlength/></D:prop></D:propfind>"#;
    let r = inst.req(
        "PROPFIND",
        path,
        &[("Depth", "0"), ("Content-Type", "application/xml")],
        body.as_bytes(),
    );
    if r.status == 404 {
        return None;
    }
    assert_eq!(
        r.status,
        207,
        "PROPFIND {path} on {}: {}",
        inst.name,
        r.text()
    );
    let root = parse_document(&r.body, &Limits::default()).expect("207 parses");
    assert!(root.name.is_dav("multistatus"), "{}", r.text());
    let responses: Vec<&Element> = root
        .elements()
        .filter(|e| e.name.is_dav("response"))
        .collect();
    assert_eq!(responses.len(), 1, "{}", r.text());
    let mut live = Live {
        etag: None,
        length: None,
    };
    for ps in responses[0]
        .elements()
        .filter(|e| e.name.is_dav("propstat"))
    {
        if status_code(&child(ps, "status").text()) != 200 {
            continue;
        }
        for p in child(ps, "prop").elements() {
            if p.name.is_dav("getetag") {
                live.etag = Some(p.text());
            } else if p.name.is_dav("getcontentlength") {
                live.length = Some(p.text().trim().parse().expect("getcontentlength"));
            }
        }
    }
    Some(live)
}

/// The value of dead property `{urn:x}color` on `path`, if set.
fn color(inst: &Instance, path: &str) -> Option<String> {
    let body = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:X="urn:x"><D:prop><X:color/></D:prop></D:propfind>"#;
    let r = inst.req(
        "PROPFIND",
        path,
        &[("Depth", "0"), ("Content-Type", "application/xml")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 207, "PROPFIND {path}: {}", r.text());
    let root = parse_document(&r.body, &Limits::default()).expect("207 parses");
    let mut found = None;
    for ps in root
        .elements()
        .filter(|e| e.name.is_dav("response"))
        .flat_map(|resp| resp.elements().filter(|e| e.name.is_dav("propstat")))
    {
        if status_code(&child(ps, "status").text()) == 200 {
            for p in child(ps, "prop").elements() {
                assert_eq!(
                    (p.name.ns.as_str(), p.name.local.as_str()),
                    ("urn:x", "color")
                );
                found = Some(p.text());
            }
        }
    }
    found
}

const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>cluster test</D:owner></D:lockinfo>"#;

fn lock(inst: &Instance, path: &str) -> Resp {
    inst.req(
        "LOCK",
        path,
        &[
            ("Depth", "0"),
            ("Timeout", "Second-600"),
            ("Content-Type", "application/xml"),
        ],
        LOCKINFO.as_bytes(),
    )
}

/// The token of a granted lock, from the `Lock-Token` header (`<urn:uuid:...>`), checked
/// against the one in the body's `DAV:lockdiscovery`.
fn lock_token(r: &Resp) -> String {
    let header = r
        .header("lock-token")
        .unwrap_or_else(|| panic!("no Lock-Token: {}", r.text()));
    let token = header
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or_else(|| panic!("Lock-Token {header:?}"))
        .to_owned();
    let root = parse_document(&r.body, &Limits::default()).expect("LOCK body parses");
    let active = child(child(&root, "lockdiscovery"), "activelock");
    assert_eq!(
        child(child(active, "locktoken"), "href").text().trim(),
        token
    );
    token
}

// ---- S3 ----

/// Every object under `blobs/` in the bucket (key, size).
fn objects() -> Vec<(String, u64)> {
    let config = davit_distributed::BlobConfig {
        endpoint: s3("endpoint"),
        region: s3("region"),
        bucket: s3("bucket"),
        path_style: true,
        part_size: 5 * MIB,
        access_key_id: Some(s3("key")),
        secret_access_key: Some(s3("secret")),
        timeout_secs: 10,
        sweep_interval_secs: 0,
        reuse_connections: false,
        sign_payload: None,
    };
    runtime().block_on(async {
        use futures_util::StreamExt;
        let blobs = davit_distributed::Blobs::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        let mut list = blobs.list("blobs");
        while let Some(item) = list.next().await {
            let item = item.unwrap_or_else(|e| panic!("listing: {e}"));
            out.push((item.key, item.size));
        }
        out
    })
}

/// The incomplete multipart uploads in the bucket (key, upload id): S3's
/// ListMultipartUploads, which object_store does not offer, signed with its SigV4 signer.
fn incomplete_uploads() -> Vec<(String, String)> {
    let endpoint = s3("endpoint");
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"));
    let bucket = s3("bucket");
    let region = s3("region");
    let credential = object_store::aws::AwsCredential {
        key_id: s3("key"),
        secret_key: s3("secret"),
        token: None,
    };
    let target = format!("/{bucket}?uploads=");
    let mut request = http::Request::builder()
        .method("GET")
        .uri(format!("{}{target}", endpoint.trim_end_matches('/')))
        .body(object_store::client::HttpRequestBody::from(Vec::<u8>::new()))
        .expect("request");
    object_store::aws::AwsAuthorizer::new(&credential, "s3", &region)
        .try_authorize(&mut request, None)
        .expect("sign");
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().expect("header text").to_owned(),
            )
        })
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = try_request(port, "GET", &target, &headers, b"").expect("ListMultipartUploads");
    assert_eq!(r.status, 200, "ListMultipartUploads: {}", r.text());
    let root = parse_document(&r.body, &Limits::default()).expect("listing parses");
    let local = |e: &Element, name: &str| -> String {
        e.elements()
            .find(|c| c.name.local == name)
            .map(|c| c.text())
            .unwrap_or_default()
    };
    assert_ne!(
        local(&root, "IsTruncated"),
        "true",
        "more than one page of uploads"
    );
    root.elements()
        .filter(|e| e.name.local == "Upload")
        .map(|u| (local(u, "Key"), local(u, "UploadId")))
        .collect()
}

/// What `davit gc` reported.
#[derive(Debug)]
struct Gc {
    removed: u64,
    seen: u64,
    young: u64,
    aborted: u64,
}

/// `davit gc --config FILE --min-age-secs 0`, and what it reported.
fn gc(config: &Path) -> Gc {
    let out = Command::new(env!("CARGO_BIN_EXE_davit"))
        .args(["gc", "--config"])
        .arg(config)
        .args(["--min-age-secs", "0"])
        .stdin(Stdio::null())
        .output()
        .expect("davit gc");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "davit gc: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // "removed N unreferenced objects (B bytes); S objects looked at; Y unreferenced but
    // younger than 0 s kept; U unfinished multipart uploads aborted"
    let before = |phrase: &str| -> u64 {
        let at = text
            .find(phrase)
            .unwrap_or_else(|| panic!("davit gc said {text:?}: no {phrase:?}"));
        text[..at]
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("davit gc said {text:?}: no number before {phrase:?}"))
    };
    assert!(text.starts_with("removed "), "davit gc said {text:?}");
    Gc {
        removed: before(" unreferenced objects"),
        seen: before(" objects looked at"),
        young: before(" unreferenced but younger"),
        aborted: before(" unfinished multipart uploads aborted"),
    }
}

/// The content objects the namespace points at.
fn referenced(db: &str) -> BTreeSet<String> {
    query(
        db,
        "SELECT blob FROM davit_resources WHERE blob IS NOT NULL",
    )
    .into_iter()
    .flatten()
    .collect()
}

/// SQL selecting the row of the file at `path` (files are found by their parent's path and
/// their name; only collections keep a path).
fn file_row(path: &str) -> String {
    let (up, name) = path.rsplit_once('/').unwrap_or(("", path));
    let up = if up.is_empty() { "/" } else { up };
    format!("parent = (SELECT id FROM davit_resources WHERE path = '{up}') AND name = '{name}'")
}

/// The id of the file at `path`, as object keys spell it (`blobs/<id>/...`).
fn resource_id(db: &str, path: &str) -> String {
    let rows = query(
        db,
        &format!(
            "SELECT replace(id::text, '-', '') FROM davit_resources WHERE {}",
            file_row(path)
        ),
    );
    rows.into_iter()
        .flatten()
        .next()
        .unwrap_or_else(|| panic!("no row for {path}"))
}

// ---- 1. what one instance writes the other serves at once ----

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn a_write_on_one_instance_is_seen_by_the_other_at_once() {
    let c = cluster();
    // A small body (one S3 PUT) and one over the part size (multipart), new and replaced.
    for (i, (path, len)) in [("/small.txt", 1000), ("/large.bin", 12 * MIB + 7)]
        .into_iter()
        .enumerate()
    {
        for round in 0..2u64 {
            let body = bytes(len, 100 * i as u64 + round);
            let put = c.a.put(path, &body);
            assert_eq!(put.status, if round == 0 { 201 } else { 204 }, "PUT {path}");
            let put_etag = etag(&put);
            let got = c.b.get(path);
            assert_eq!(got.status, 200, "GET {path} on b");
            assert_eq!(got.body.len(), len, "GET {path} on b: length");
            assert_eq!(sha256(&got.body), sha256(&body), "GET {path} on b: bytes");
            assert_eq!(etag(&got), put_etag, "GET {path} on b: ETag");
            let on_b = propfind_live(&c.b, path).expect("PROPFIND on b finds it");
            let on_a = propfind_live(&c.a, path).expect("PROPFIND on a finds it");
            assert_eq!(
                on_b.etag.as_deref(),
                Some(put_etag.as_str()),
                "getetag on b"
            );
            assert_eq!(on_b, on_a, "PROPFIND on a and b");
            assert_eq!(on_b.length, Some(len as u64));
        }
    }
    // A deletion too.
    assert_eq!(c.a.req("DELETE", "/small.txt", &[], b"").status, 204);
    assert_eq!(c.b.get("/small.txt").status, 404);
    assert_eq!(propfind_live(&c.b, "/small.txt"), None);
}

// ---- 2. a lock taken on one instance is enforced by the other ----

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn a_lock_taken_on_one_instance_is_enforced_by_the_other() {
    let c = cluster();
    let old = bytes(5000, 1);
    assert_eq!(c.a.put("/locked.txt", &old).status, 201);
    let l = lock(&c.a, "/locked.txt");
    assert_eq!(l.status, 200, "LOCK: {}", l.text());
    let token = lock_token(&l);

    let new = bytes(6000, 2);
    let refused = c.b.put("/locked.txt", &new);
    assert_eq!(
        refused.status,
        423,
        "PUT without the token: {}",
        refused.text()
    );
    let root = parse_document(&refused.body, &Limits::default()).expect("423 body parses");
    assert!(root.name.is_dav("error"), "{}", refused.text());
    child(&root, "lock-token-submitted");
    assert_eq!(sha256(&c.a.get("/locked.txt").body), sha256(&old));

    let if_header = format!("(<{token}>)");
    let ok = c.b.req("PUT", "/locked.txt", &[("If", &if_header)], &new);
    assert_eq!(ok.status, 204, "PUT with the token: {}", ok.text());
    assert_eq!(sha256(&c.a.get("/locked.txt").body), sha256(&new));

    // A lock on an unmapped URL (an empty resource, 201) likewise; PUT with the token fills it.
    let l = lock(&c.b, "/fresh.txt");
    assert_eq!(l.status, 201, "LOCK of an unmapped URL: {}", l.text());
    let token = lock_token(&l);
    assert_eq!(c.a.put("/fresh.txt", b"nope").status, 423);
    let if_header = format!("(<{token}>)");
    let ok = c.a.req("PUT", "/fresh.txt", &[("If", &if_header)], b"yes");
    assert_eq!(ok.status, 204, "PUT with the token: {}", ok.text());
    assert_eq!(c.b.get("/fresh.txt").body, b"yes");

    // Released on b, a can write without a token.
    let unlock = c.b.req(
        "UNLOCK",
        "/locked.txt",
        &[("Lock-Token", &format!("<{}>", lock_token(&l)))],
        b"",
    );
    assert_eq!(unlock.status, 409, "UNLOCK with another resource's token");
    let token = lock_token(&lock(&c.a, "/x.txt"));
    let unlock = c.b.req(
        "UNLOCK",
        "/x.txt",
        &[("Lock-Token", &format!("<{token}>"))],
        b"",
    );
    assert_eq!(unlock.status, 204);
    assert_eq!(c.a.put("/x.txt", b"free").status, 204);
}

// ---- a LOCK waiting on one instance goes before a stream of writes on the other ----

/// PUT whose body trickles in over `over` (ten pieces), so that the write stays in progress
/// that long; the status (0 when the connection failed).
fn slow_put(port: u16, path: &str, over: Duration) -> u16 {
    let body = vec![b's'; 10_000];
    let run = || -> std::io::Result<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())?;
        for piece in body.chunks(1000) {
            std::thread::sleep(over / 10);
            if s.write_all(piece).is_err() {
                // Refused early (423) without reading the rest: the answer is waiting.
                break;
            }
        }
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut raw)?;
        Ok(common::parse_response(&raw)?.status)
    };
    run().unwrap_or(0)
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn a_lock_waiting_on_one_instance_goes_before_a_stream_of_writes_on_the_other() {
    let c = cluster();
    assert_eq!(c.a.req("MKCOL", "/d/", &[], b"").status, 201);
    // Three writers on A, each write in progress for 300 ms, staggered: at every moment one
    // of them is writing under /d, for up to 30 s.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let port = c.a.port;
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, refused, finished) = (stop.clone(), refused.clone(), finished.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100 * w));
                let until = Instant::now() + Duration::from_secs(30);
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                    n += 1;
                    let status =
                        slow_put(port, &format!("/d/w{w}-{n}"), Duration::from_millis(300));
                    if status == 423 {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let l = c.b.req(
        "LOCK",
        "/d/",
        &[
            ("Depth", "infinity"),
            ("Timeout", "Second-600"),
            ("Content-Type", "application/xml"),
        ],
        LOCKINFO.as_bytes(),
    );
    let waited = t.elapsed();
    let still_writing = finished.load(Ordering::SeqCst) == 0;
    assert_eq!(l.status, 200, "LOCK: {}\n{}", l.text(), c.trouble());
    // The writers were still going when the lock was granted: their next writes meet it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while refused.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    assert!(
        still_writing,
        "the writers had stopped before the LOCK was granted (after {waited:?})"
    );
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "no write met the lock: it was granted only after {waited:?}, once the writes stopped"
    );
}

// ---- 3. racing LOCKs over both instances: one winner ----

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn fifty_racing_locks_over_two_instances_grant_exactly_one() {
    let c = cluster();
    const RACERS: usize = 50;
    for round in 0..3 {
        let path = format!("/race{round}.txt");
        assert_eq!(c.a.put(&path, b"contended").status, 201);
        let ports = [c.a.port, c.b.port];
        let barrier = Arc::new(Barrier::new(RACERS));
        let threads: Vec<_> = (0..RACERS)
            .map(|i| {
                let barrier = barrier.clone();
                let path = path.clone();
                let port = ports[i % 2];
                std::thread::spawn(move || {
                    barrier.wait();
                    try_request(
                        port,
                        "LOCK",
                        &path,
                        &[
                            ("Depth", "0"),
                            ("Timeout", "Second-600"),
                            ("Content-Type", "application/xml"),
                        ],
                        LOCKINFO.as_bytes(),
                    )
                    .unwrap_or_else(|e| panic!("LOCK {path}: {e}"))
                })
            })
            .collect();
        let answers: Vec<Resp> = threads
            .into_iter()
            .map(|t| t.join().expect("racer"))
            .collect();
        let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
        for r in &answers {
            *by_status.entry(r.status).or_default() += 1;
        }
        assert_eq!(
            by_status,
            BTreeMap::from([(200, 1), (423, RACERS - 1)]),
            "round {round}"
        );
        // The winner's lock is the one both instances report.
        let winner = answers.iter().find(|r| r.status == 200).expect("a winner");
        let token = lock_token(winner);
        for inst in [&c.a, &c.b] {
            assert_eq!(inst.put(&path, b"x").status, 423);
            let if_header = format!("(<{token}>)");
            let r = inst.req("PUT", &path, &[("If", &if_header)], b"mine");
            assert_eq!(
                r.status, 204,
                "PUT with the winner's token on {}",
                inst.name
            );
        }
    }
}

// ---- 4. racing PUTs of one path from both instances: one whole body wins ----

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn racing_puts_from_both_instances_leave_one_whole_body() {
    let c = cluster();
    const PER_INSTANCE: usize = 20;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..2 * PER_INSTANCE)
            .map(|i| bytes(MIB, 1000 + i as u64))
            .collect(),
    );
    let hashes: BTreeMap<[u8; 32], usize> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (sha256(b), i))
        .collect();
    assert_eq!(hashes.len(), bodies.len());
    let objects_before: BTreeSet<String> = objects().into_iter().map(|(k, _)| k).collect();
    let ports = [c.a.port, c.b.port];
    let barrier = Arc::new(Barrier::new(bodies.len()));
    let threads: Vec<_> = (0..bodies.len())
        .map(|i| {
            let (barrier, bodies) = (barrier.clone(), bodies.clone());
            let port = ports[i % 2];
            std::thread::spawn(move || {
                barrier.wait();
                try_request(port, "PUT", "/contended.bin", &[], &bodies[i])
                    .unwrap_or_else(|e| panic!("PUT {i}: {e}"))
            })
        })
        .collect();
    let answers: Vec<Resp> = threads
        .into_iter()
        .map(|t| t.join().expect("writer"))
        .collect();
    let mut etags = BTreeMap::new();
    let mut created = 0;
    for (i, r) in answers.iter().enumerate() {
        assert!(
            matches!(r.status, 201 | 204),
            "PUT {i}: {} {}\n{}",
            r.status,
            r.text(),
            c.trouble()
        );
        created += usize::from(r.status == 201);
        assert!(
            etags.insert(etag(r), i).is_none(),
            "two PUTs answered the same ETag"
        );
    }
    eprintln!("racing PUTs: {created} answered 201, the rest 204");
    assert!(created >= 1, "no PUT answered 201");

    let on_a = c.a.get("/contended.bin");
    let on_b = c.b.get("/contended.bin");
    assert_eq!((on_a.status, on_b.status), (200, 200));
    let winner = *hashes
        .get(&sha256(&on_a.body))
        .unwrap_or_else(|| panic!("a serves {} bytes that no PUT sent", on_a.body.len()));
    assert_eq!(
        sha256(&on_b.body),
        sha256(&on_a.body),
        "a and b serve different bodies"
    );
    assert_eq!(etag(&on_a), etag(&on_b), "a and b serve different ETags");
    // The ETag is the one the winning PUT answered.
    assert_eq!(
        etags.get(&etag(&on_a)),
        Some(&winner),
        "the ETag is not the winner's"
    );
    for inst in [&c.a, &c.b] {
        let live = propfind_live(inst, "/contended.bin").expect("found");
        assert_eq!(live.etag.as_deref(), Some(etag(&on_a).as_str()));
        assert_eq!(live.length, Some(MIB as u64));
    }
    // Of the 40 objects written, one remains: the one the namespace points at (the others
    // are deleted once replaced, or when their commit lost).
    let blob = query(
        &c.db,
        &format!(
            "SELECT blob FROM davit_resources WHERE {}",
            file_row("/contended.bin")
        ),
    )
    .into_iter()
    .flatten()
    .next()
    .expect("a content object");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new: Vec<String> = objects()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !objects_before.contains(k))
            .collect();
        if new == [blob.clone()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "objects written by the race and left: {new:?} (in use: {blob})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---- 5. a failing atomic batch on one instance leaves nothing for the other to see ----

fn batch_statuses(r: &Resp) -> Vec<u64> {
    assert_eq!(r.status, 207, "batch: {}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON answer");
    v["responses"]
        .as_array()
        .unwrap_or_else(|| panic!("no responses: {v}"))
        .iter()
        .map(|r| {
            r["status"]
                .as_u64()
                .unwrap_or_else(|| panic!("no status: {r}"))
        })
        .collect()
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn a_failing_atomic_batch_on_one_instance_leaves_nothing_for_the_other() {
    let c = cluster();
    let json = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    let old = bytes(3000, 7);
    assert_eq!(c.a.put("/keep.txt", &old).status, 201);
    let old_etag = etag(&c.b.get("/keep.txt"));
    let objects_before = objects().len();
    let ops = |last: &str| {
        format!(
            r#"{{"mode": "atomic", "operations": [
                {{"op": "mkcol", "href": "/t/"}},
                {{"op": "put", "href": "/t/new.txt", "content": "new body"}},
                {{"op": "put", "href": "/keep.txt", "content": "replacing body"}},
                {{"op": "proppatch", "href": "/keep.txt", "set": {{"{{urn:x}}color": "red"}}}},
                {last}
            ]}}"#
        )
    };
    // The fifth operation fails (no parent): nothing of the first four may remain.
    let failing = ops(r#"{"op": "mkcol", "href": "/missing/child/"}"#);
    let r = c.a.req("POST", "/", &json, failing.as_bytes());
    assert_eq!(
        batch_statuses(&r),
        [424, 424, 424, 424, 409],
        "{}",
        r.text()
    );
    assert_eq!(c.b.get("/t/new.txt").status, 404);
    assert_eq!(propfind_live(&c.b, "/t/"), None);
    let kept = c.b.get("/keep.txt");
    assert_eq!((kept.status, etag(&kept)), (200, old_etag.clone()));
    assert_eq!(sha256(&kept.body), sha256(&old));
    assert_eq!(color(&c.b, "/keep.txt"), None);
    assert_eq!(
        propfind_live(&c.b, "/keep.txt").and_then(|l| l.etag),
        Some(old_etag.clone())
    );
    // The rolled-back batch's objects are gone again.
    assert_eq!(
        objects().len(),
        objects_before,
        "objects left by the rollback"
    );

    // The same batch without the failing step commits as a whole, seen on b.
    let passing = ops(r#"{"op": "move", "href": "/t/new.txt", "destination": "/t/moved.txt"}"#);
    let r = c.a.req("POST", "/", &json, passing.as_bytes());
    assert_eq!(
        batch_statuses(&r),
        [201, 201, 204, 200, 201],
        "{}",
        r.text()
    );
    assert_eq!(c.b.get("/t/moved.txt").body, b"new body");
    assert_eq!(c.b.get("/t/new.txt").status, 404);
    let replaced = c.b.get("/keep.txt");
    assert_eq!(replaced.body, b"replacing body");
    assert_ne!(etag(&replaced), old_etag);
    assert_eq!(color(&c.b, "/keep.txt").as_deref(), Some("red"));
}

// ---- 6. kill -9 of an instance during a 1 GiB upload ----

const BIG: u64 = 1 << 30;
/// How much of the body is sent before the kill.
const KILL_AFTER: u64 = 512 << 20;

/// Starts a PUT of `len` generated bytes to `path` on `port` on its own thread; the bytes
/// sent so far are counted in the returned counter. The thread ends with the answer, or
/// with the error writing or reading met (the server gone).
fn streaming_put(
    port: u16,
    path: &str,
    len: u64,
) -> (
    Arc<AtomicU64>,
    std::thread::JoinHandle<std::io::Result<Resp>>,
) {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let path = path.to_owned();
    let t = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_write_timeout(Some(Duration::from_secs(60)))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n"
        )?;
        // 1 MiB blocks, each stamped with its number: no two alike, nothing held but one.
        let mut block = bytes(MIB, 99);
        let mut left = len;
        let mut n: u64 = 0;
        while left > 0 {
            block[..8].copy_from_slice(&n.to_le_bytes());
            let k = left.min(MIB as u64) as usize;
            s.write_all(&block[..k])?;
            left -= k as u64;
            n += 1;
            counter.fetch_add(k as u64, Ordering::Relaxed);
        }
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut raw)?;
        common::parse_response(&raw)
    });
    (sent, t)
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn kill_during_a_1gib_upload_keeps_the_old_content_and_gc_cleans_up() {
    let mut c = cluster();
    let old = bytes(100_000, 42);
    assert_eq!(c.b.put("/big.bin", &old).status, 201);
    let old_etag = etag(&c.b.get("/big.bin"));

    let start = Instant::now();
    let (sent, upload) = streaming_put(c.a.port, "/big.bin", BIG);
    while sent.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(
            !upload.is_finished(),
            "the upload ended early: {:?}",
            upload.join()
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "only {} bytes sent in 10 minutes",
            sent.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let to_kill = start.elapsed();
    c.a.kill();
    let ended = upload.join().expect("upload thread");
    eprintln!(
        "1 GiB upload: {} MiB sent in {to_kill:?} ({:.0} MiB/s), then kill -9 of a; the client saw {:?}",
        sent.load(Ordering::Relaxed) >> 20,
        (sent.load(Ordering::Relaxed) >> 20) as f64 / to_kill.as_secs_f64(),
        ended.as_ref().map(|r| r.status)
    );
    assert!(
        !matches!(&ended, Ok(r) if (200..300).contains(&r.status)),
        "the cut upload succeeded: {ended:?}"
    );

    // b serves the old content, whole, with the old ETag.
    let got = c.b.get("/big.bin");
    assert_eq!(got.status, 200);
    assert_eq!(
        hex(&sha256(&got.body)),
        hex(&sha256(&old)),
        "b's body after the kill"
    );
    assert_eq!(etag(&got), old_etag);
    assert_eq!(
        propfind_live(&c.b, "/big.bin"),
        Some(Live {
            etag: Some(old_etag.clone()),
            length: Some(old.len() as u64)
        })
    );
    let id = resource_id(&c.db, "/big.bin");
    let uploads: Vec<_> = incomplete_uploads()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("blobs/{id}/")))
        .collect();
    assert_eq!(
        uploads.len(),
        1,
        "incomplete multipart uploads of /big.bin after the kill: {uploads:?}"
    );

    // gc: whatever no row points at goes; what the namespace points at stays.
    let t = Instant::now();
    let swept = gc(&c.config);
    eprintln!("davit gc in {:?}: {swept:?}", t.elapsed());
    assert_eq!(swept.young, 0);
    assert!(
        swept.aborted >= 1,
        "gc aborted no multipart upload: {swept:?}"
    );
    let refs = referenced(&c.db);
    assert!(
        swept.seen >= swept.removed + refs.len() as u64,
        "{swept:?}, {} in use",
        refs.len()
    );
    let left = objects();
    let unreferenced: Vec<_> = left.iter().filter(|(k, _)| !refs.contains(k)).collect();
    assert!(
        unreferenced.is_empty(),
        "unreferenced objects after gc: {unreferenced:?}"
    );
    for r in &refs {
        assert!(
            left.iter().any(|(k, _)| k == r),
            "gc removed {r}, which is in use"
        );
    }
    let again = gc(&c.config);
    assert_eq!(
        (again.removed, again.aborted),
        (0, 0),
        "a second gc found more"
    );
    // Nor is any multipart upload of /big.bin left.
    let uploads: Vec<_> = incomplete_uploads()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("blobs/{id}/")))
        .collect();
    assert_eq!(uploads, [], "multipart uploads of /big.bin after gc");
    let got = c.b.get("/big.bin");
    assert_eq!(sha256(&got.body), sha256(&old), "b's body after gc");
    eprintln!("1 GiB kill test: {:?} in all", start.elapsed());
}

/// An instance killed during a multipart upload leaves the upload incomplete in the bucket,
/// its parts stored but invisible to an object listing; `davit gc` aborts it.
#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn gc_aborts_the_incomplete_multipart_upload_of_a_killed_instance() {
    let mut c = cluster();
    assert_eq!(c.b.put("/cut.bin", b"old").status, 201);
    let (sent, upload) = streaming_put(c.a.port, "/cut.bin", BIG);
    // Three parts' worth: at least one part is stored when the kill comes.
    while sent.load(Ordering::Relaxed) < 15 << 20 {
        assert!(
            !upload.is_finished(),
            "the upload ended early: {:?}",
            upload.join()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    c.a.kill();
    let _ = upload.join().expect("upload thread");
    assert_eq!(c.b.get("/cut.bin").body, b"old");
    let id = resource_id(&c.db, "/cut.bin");
    let of_cut = || -> Vec<(String, String)> {
        incomplete_uploads()
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("blobs/{id}/")))
            .collect()
    };
    assert_eq!(
        of_cut().len(),
        1,
        "the killed upload is not listed as incomplete"
    );
    gc(&c.config);
    assert_eq!(
        of_cut(),
        [],
        "davit gc left the killed upload's multipart upload"
    );
}

// ---- 7. PostgreSQL stopped and started under running clients ----

/// What one client request saw.
#[derive(Debug, Clone)]
struct Seen {
    method: &'static str,
    status: u16,
    retry_after: bool,
    took: Duration,
}

/// A client on `port` writing and reading its own file until `stop`: every answer recorded,
/// and per version written whether the PUT was acknowledged (2xx) or not.
fn client_loop(
    port: u16,
    path: String,
    seed: u64,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Vec<(u64, u16)> {
    let mut written = Vec::new();
    let mut version = 0u64;
    let record = |method: &'static str, r: std::io::Result<Resp>, t: Instant| -> Option<Resp> {
        let took = t.elapsed();
        let (status, retry_after, resp) = match r {
            Ok(r) => (r.status, r.header("retry-after").is_some(), Some(r)),
            Err(_) => (0, false, None),
        };
        seen.lock().expect("seen").push(Seen {
            method,
            status,
            retry_after,
            took,
        });
        resp
    };
    while !stop.load(Ordering::Relaxed) {
        version += 1;
        let body = client_body(seed, version);
        let t = Instant::now();
        if let Some(r) = record("PUT", try_request(port, "PUT", &path, &[], &body), t) {
            written.push((version, r.status));
        } else {
            written.push((version, 0));
        }
        let t = Instant::now();
        record("GET", try_request(port, "GET", &path, &[], b""), t);
        let t = Instant::now();
        record(
            "PROPFIND",
            try_request(port, "PROPFIND", &path, &[("Depth", "0")], b""),
            t,
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    written
}

fn client_body(seed: u64, version: u64) -> Vec<u8> {
    bytes(
        4096 + (version as usize % 7) * 1000,
        seed * 1_000_000 + version,
    )
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server, and stops PostgreSQL: scripts/distributed-test.sh"]
fn postgresql_stopped_and_started_under_clients_gives_503_then_recovers() {
    env("DAVIT_TEST_PG_DIR");
    let c = cluster();
    // Resources written before the stop: small and multipart, with a dead property.
    let mut before = BTreeMap::new();
    for i in 0..12u64 {
        let path = format!("/before/f{i}.bin");
        if i == 0 {
            assert_eq!(c.a.req("MKCOL", "/before/", &[], b"").status, 201);
        }
        let len = if i % 4 == 0 {
            6 * MIB + 11
        } else {
            10_000 + i as usize
        };
        let body = bytes(len, 500 + i);
        let inst = if i % 2 == 0 { &c.a } else { &c.b };
        let r = inst.put(&path, &body);
        assert_eq!(r.status, 201);
        before.insert(path, (sha256(&body), etag(&r)));
    }
    let patch = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:X="urn:x"><D:set><D:prop><X:color>blue</X:color></D:prop></D:set></D:propertyupdate>"#;
    assert_eq!(
        c.a.req(
            "PROPPATCH",
            "/before/f1.bin",
            &[("Content-Type", "application/xml")],
            patch.as_bytes()
        )
        .status,
        207
    );

    // Four clients, two per instance, each on its own file.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4u64)
        .map(|i| {
            let port = if i % 2 == 0 { c.a.port } else { c.b.port };
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                client_loop(port, format!("/client{i}.bin"), i + 1, stop, seen)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let before_stop = seen.lock().expect("seen").len();

    service("pg.sh", "pause", "DAVIT_TEST_PG_DIR");
    let stopped = Instant::now();
    // While it is away: every kind of request on both instances is a prompt 503.
    std::thread::sleep(Duration::from_millis(300));
    for inst in [&c.a, &c.b] {
        let what = |m: &str| format!("{m} on {} with PostgreSQL stopped", inst.name);
        let (r, _) = timed(inst, "GET", "/before/f2.bin", &[], b"");
        assert_unavailable(&r, &what("GET"));
        let (r, _) = timed(inst, "PUT", "/before/f2.bin", &[], b"overwrite");
        assert_unavailable(&r, &what("PUT"));
        let (r, _) = timed(inst, "PUT", "/during.txt", &[], b"new");
        assert_unavailable(&r, &what("PUT of a new file"));
        let (r, _) = timed(inst, "PROPFIND", "/before/", &[("Depth", "1")], b"");
        assert_unavailable(&r, &what("PROPFIND"));
        let (r, _) = timed(
            inst,
            "LOCK",
            "/before/f3.bin",
            &[("Content-Type", "application/xml")],
            LOCKINFO.as_bytes(),
        );
        assert_unavailable(&r, &what("LOCK"));
        let (r, _) = timed(inst, "DELETE", "/before/f4.bin", &[], b"");
        assert_unavailable(&r, &what("DELETE"));
    }
    std::thread::sleep(Duration::from_secs(3));
    service("pg.sh", "resume", "DAVIT_TEST_PG_DIR");
    let down = stopped.elapsed();
    let resumed = Instant::now();
    // Back without restarting davit: both instances answer again, promptly.
    for inst in [&c.a, &c.b] {
        loop {
            let r = inst.get("/before/f2.bin");
            if r.status == 200 {
                break;
            }
            assert_unavailable(&r, "GET after PostgreSQL came back");
            assert!(
                resumed.elapsed() < Duration::from_secs(30),
                "{} did not recover within 30 s of PostgreSQL's restart",
                inst.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let recovered = resumed.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let written: Vec<Vec<(u64, u16)>> = clients
        .into_iter()
        .map(|t| t.join().expect("client"))
        .collect();
    eprintln!(
        "PostgreSQL away for {down:?}; both instances served again {recovered:?} after its restart"
    );

    // Every answer was prompt, and a success or a 503 with Retry-After.
    let seen = seen.lock().expect("seen").clone();
    let mut tally: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    for s in &seen {
        *tally.entry((s.method, s.status)).or_default() += 1;
    }
    eprintln!("client answers (method, status) -> count: {tally:?}");
    let bad: Vec<&Seen> = seen
        .iter()
        .filter(|s| {
            let fine = match (s.method, s.status) {
                ("PUT", 201 | 204) | ("GET", 200) | ("PROPFIND", 207) => true,
                (_, 503) => s.retry_after,
                _ => false,
            };
            !fine || s.took >= BOUNDED
        })
        .collect();
    assert!(
        bad.is_empty(),
        "answers other than a prompt success or 503 with Retry-After: {bad:?}\n{}",
        c.trouble()
    );
    assert!(
        seen[before_stop..].iter().any(|s| s.status == 503),
        "no client saw a 503 while PostgreSQL was stopped"
    );
    // The last answers of every client were successes again.
    for (i, w) in written.iter().enumerate() {
        let last = w.last().expect("a client wrote");
        assert!(
            matches!(last.1, 201 | 204),
            "client {i}'s last PUT: {last:?}"
        );
    }

    // Everything written before the stop is intact, on both instances.
    for inst in [&c.a, &c.b] {
        for (path, (hash, tag)) in &before {
            let r = inst.get(path);
            assert_eq!(r.status, 200, "GET {path} on {}", inst.name);
            assert_eq!(sha256(&r.body), *hash, "{path} on {}", inst.name);
            assert_eq!(&etag(&r), tag, "{path}'s ETag on {}", inst.name);
        }
        assert_eq!(color(inst, "/before/f1.bin").as_deref(), Some("blue"));
        assert_eq!(inst.get("/during.txt").status, 404);
    }
    // Each client's file holds its last acknowledged version, or one sent after it whose
    // answer was a 503 (its commit may have reached PostgreSQL as it went away).
    for (i, w) in written.iter().enumerate() {
        let path = format!("/client{i}.bin");
        let body = c.b.get(&path).body;
        let acked = w
            .iter()
            .rposition(|(_, s)| matches!(s, 201 | 204))
            .expect("an acknowledged PUT");
        let candidates: Vec<u64> = std::iter::once(w[acked].0)
            .chain(w[acked + 1..].iter().map(|(v, _)| *v))
            .collect();
        assert!(
            candidates
                .iter()
                .any(|v| sha256(&client_body(i as u64 + 1, *v)) == sha256(&body)),
            "{path} holds none of versions {candidates:?}"
        );
    }
}

// ---- 8. the object store stopped and started ----

#[test]
#[ignore = "needs PostgreSQL and an S3 server, and stops the S3 server: scripts/distributed-test.sh"]
fn object_store_stopped_gives_503_and_leaves_the_namespace_unchanged() {
    env("DAVIT_TEST_S3_DIR");
    let c = cluster();
    let small = bytes(20_000, 8);
    let large = bytes(11 * MIB, 9);
    let r = c.a.put("/g/small.bin", &small);
    assert_eq!(r.status, 409, "PUT without a parent");
    assert_eq!(c.a.req("MKCOL", "/g/", &[], b"").status, 201);
    let small_etag = etag(&c.a.put("/g/small.bin", &small));
    let large_etag = etag(&c.b.put("/g/large.bin", &large));
    let objects_before = objects();

    service("garage.sh", "pause", "DAVIT_TEST_S3_DIR");
    let outcome = std::panic::catch_unwind(|| {
        for inst in [&c.a, &c.b] {
            let what = |m: &str| format!("{m} on {} with the object store stopped", inst.name);
            let (r, _) = timed(inst, "GET", "/g/small.bin", &[], b"");
            assert_unavailable(&r, &what("GET"));
            let (r, _) = timed(inst, "GET", "/g/large.bin", &[("Range", "bytes=0-99")], b"");
            assert_unavailable(&r, &what("ranged GET"));
            let (r, _) = timed(inst, "PUT", "/g/small.bin", &[], b"replacement");
            assert_unavailable(&r, &what("PUT over a file"));
            let (r, _) = timed(inst, "PUT", "/g/new.bin", &[], b"new");
            assert_unavailable(&r, &what("PUT of a new file"));
            let big = bytes(7 * MIB, 10);
            let (r, _) = timed(inst, "PUT", "/g/large.bin", &[], &big);
            assert_unavailable(&r, &what("multipart PUT"));
            let (r, _) = timed(
                inst,
                "COPY",
                "/g/small.bin",
                &[("Destination", "/g/copy.bin")],
                b"",
            );
            assert_unavailable(&r, &what("COPY"));
            // The namespace is PostgreSQL's: listing it still works, and shows nothing new.
            assert_eq!(
                propfind_live(inst, "/g/small.bin"),
                Some(Live {
                    etag: Some(small_etag.clone()),
                    length: Some(small.len() as u64)
                })
            );
            assert_eq!(propfind_live(inst, "/g/new.bin"), None);
            assert_eq!(propfind_live(inst, "/g/copy.bin"), None);
        }
    });
    service("garage.sh", "resume", "DAVIT_TEST_S3_DIR");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }

    for inst in [&c.b, &c.a] {
        assert_eq!(
            propfind_live(inst, "/g/small.bin"),
            Some(Live {
                etag: Some(small_etag.clone()),
                length: Some(small.len() as u64)
            })
        );
        assert_eq!(
            propfind_live(inst, "/g/large.bin"),
            Some(Live {
                etag: Some(large_etag.clone()),
                length: Some(large.len() as u64)
            })
        );
        let r = inst.get("/g/small.bin");
        assert_eq!((r.status, etag(&r)), (200, small_etag.clone()));
        assert_eq!(sha256(&r.body), sha256(&small));
        let r = inst.get("/g/large.bin");
        assert_eq!((r.status, etag(&r)), (200, large_etag.clone()));
        assert_eq!(sha256(&r.body), sha256(&large));
        assert_eq!(inst.get("/g/new.bin").status, 404);
        assert_eq!(inst.get("/g/copy.bin").status, 404);
    }
    assert_eq!(
        objects(),
        objects_before,
        "objects changed while the store was away"
    );
    // And writes work again.
    assert_eq!(c.a.put("/g/new.bin", b"now").status, 201);
    assert_eq!(c.b.get("/g/new.bin").body, b"now");
}

// ---- 9. sync-collection: changes through one instance, listed by the other ----

/// What a sync-collection REPORT (Depth infinity) of `path` on `inst` lists.
#[derive(Debug)]
struct Synced {
    changed: BTreeSet<String>,
    removed: BTreeSet<String>,
    token: String,
}

fn sync_report(inst: &Instance, path: &str, token: Option<&str>) -> Resp {
    let body = davit_proto::xml::SyncCollection {
        token: token.map(str::to_owned),
        level: Some(davit_proto::xml::SyncLevel::Infinite),
        props: davit_proto::xml::PropFind::Prop(vec![davit_proto::xml::QName::dav("getetag")]),
        limit: None,
    }
    .to_xml();
    inst.req(
        "REPORT",
        path,
        &[("Content-Type", "application/xml")],
        body.as_bytes(),
    )
}

fn sync(inst: &Instance, path: &str, token: Option<&str>) -> Synced {
    let r = sync_report(inst, path, token);
    assert_eq!(r.status, 207, "REPORT on {}: {}", inst.name, r.text());
    let mut reader = davit_proto::xml::MultistatusReader::new(&r.body[..]);
    let mut out = Synced {
        changed: BTreeSet::new(),
        removed: BTreeSet::new(),
        token: String::new(),
    };
    while let Some(resp) = reader.next_response().expect("multistatus parses") {
        let fresh = match resp.status {
            Some(404) => out.removed.insert(resp.href.clone()),
            None => out.changed.insert(resp.href.clone()),
            Some(s) => panic!("{} answered {s} in a sync", resp.href),
        };
        assert!(fresh, "{} listed twice", resp.href);
    }
    out.token = reader.sync_token().expect("a sync-token").to_owned();
    out
}

fn hrefs(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn a_sync_on_one_instance_lists_what_was_written_through_the_other() {
    let c = cluster();
    assert_eq!(c.a.req("MKCOL", "/c/", &[], b"").status, 201);
    for f in ["x", "y"] {
        assert_eq!(c.a.put(&format!("/c/{f}"), b"old").status, 201);
    }
    let first = sync(&c.b, "/c/", None);
    assert_eq!(first.changed, hrefs(&["/c/x", "/c/y"]), "initial sync on b");
    assert!(first.removed.is_empty());

    assert_eq!(c.a.put("/c/z", b"new").status, 201);
    assert_eq!(c.a.put("/c/x", b"changed").status, 204);
    assert_eq!(c.a.req("DELETE", "/c/y", &[], b"").status, 204);
    let next = sync(&c.b, "/c/", Some(&first.token));
    assert_eq!(next.changed, hrefs(&["/c/x", "/c/z"]), "{}", c.trouble());
    assert_eq!(next.removed, hrefs(&["/c/y"]));
    // b's token, asked of a: the same answer and the same new token.
    let on_a = sync(&c.a, "/c/", Some(&first.token));
    assert_eq!(
        (&on_a.changed, &on_a.removed, &on_a.token),
        (&next.changed, &next.removed, &next.token)
    );
    // A token this store never issued: 403 with DAV:valid-sync-token, on either.
    for inst in [&c.a, &c.b] {
        let r = sync_report(
            inst,
            "/c/",
            Some("urn:davit:sync:0123456789abcdef0123456789abcdef:1"),
        );
        assert_eq!(r.status, 403, "{}", r.text());
        let root = parse_document(&r.body, &Limits::default()).expect("error body is XML");
        assert!(
            root.elements().any(|e| e.name.is_dav("valid-sync-token")),
            "{}",
            r.text()
        );
    }
}
