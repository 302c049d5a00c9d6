//! Helpers shared by the tests that run the real `davit` binary: a `davit serve` child process
//! that can be killed with SIGKILL, a std-only HTTP/1.1 client (`Connection: close`), and
//! structural readers of the answers.
#![allow(dead_code)] // each test file uses its own subset

use davit_proto::xml::{parse_document, Element, Limits};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A `davit serve` child process, killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(root: &Path, log: &Path) -> Server {
        Server::start_with(root, log, &[])
    }

    /// [`Server::start`] with more arguments for `davit serve`.
    pub fn start_with(root: &Path, log: &Path, args: &[&str]) -> Server {
        let port = free_port();
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_davit"))
            .arg("serve")
            .arg(root)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn davit");
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = server.child.try_wait().expect("try_wait") {
                panic!("davit exited at start-up: {status}");
            }
            if let Ok(r) = try_request(port, "OPTIONS", "/", &[], b"") {
                assert_eq!(r.status, 200, "OPTIONS answered {}", r.status);
                break;
            }
            assert!(Instant::now() < deadline, "davit did not answer in time");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap the process.
    pub fn kill(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        try_request(self.port, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection (`Connection: close`), the whole answer read to EOF.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Resp> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| bad("no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("bad chunked body"))?
    } else {
        rest.to_vec()
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(rest, b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Deterministic printable text (letters only, so it needs no XML escaping).
pub fn text_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

/// Names (and whole contents) of every file under `dir`, relative, sorted; `.davit` skipped.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .into_owned();
            if rel == ".davit" {
                continue;
            }
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(base, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

pub fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(e) => e
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `{urn:z}name` → text for every member of collection `path` (PROPFIND Depth 1), read
/// structurally; a property reported 404 is absent from the map.
pub fn z_props(srv: &Server, path: &str, names: &[&str]) -> BTreeMap<(String, String), String> {
    let mut body = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop>"#,
    );
    for n in names {
        body.push_str(&format!("<Z:{n}/>"));
    }
    body.push_str("</D:prop></D:propfind>");
    let r = srv.request(
        "PROPFIND",
        path,
        &[("Depth", "1"), ("Content-Type", "application/xml")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 207, "PROPFIND {path}: {}", r.text());
    let root = parse_document(&r.body, &Limits::default()).expect("207 parses");
    assert!(root.name.is_dav("multistatus"));
    let mut out = BTreeMap::new();
    for resp in root.elements().filter(|e| e.name.is_dav("response")) {
        let href = child(resp, "href").text();
        for ps in resp.elements().filter(|e| e.name.is_dav("propstat")) {
            if status_code(&child(ps, "status").text()) != 200 {
                continue;
            }
            for p in child(ps, "prop").elements() {
                assert_eq!(p.name.ns, "urn:z");
                out.insert((href.clone(), p.name.local.clone()), p.text());
            }
        }
    }
    out
}

pub fn child<'a>(e: &'a Element, local: &str) -> &'a Element {
    e.elements()
        .find(|c| c.name.is_dav(local))
        .unwrap_or_else(|| panic!("no DAV:{local} in {:?}", e.name))
}

pub fn proppatch(srv: &Server, path: &str, set: &[(&str, &str)], remove: &[&str]) {
    let mut body = String::from(r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">"#);
    if !set.is_empty() {
        body.push_str("<D:set><D:prop>");
        for (n, v) in set {
            body.push_str(&format!("<Z:{n}>{v}</Z:{n}>"));
        }
        body.push_str("</D:prop></D:set>");
    }
    if !remove.is_empty() {
        body.push_str("<D:remove><D:prop>");
        for n in remove {
            body.push_str(&format!("<Z:{n}/>"));
        }
        body.push_str("</D:prop></D:remove>");
    }
    body.push_str("</D:propertyupdate>");
    let r = srv.request(
        "PROPPATCH",
        path,
        &[("Content-Type", "application/xml")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 207, "PROPPATCH {path}: {}", r.text());
    let root = parse_document(&r.body, &Limits::default()).expect("207 parses");
    for ps in root
        .elements()
        .filter(|e| e.name.is_dav("response"))
        .flat_map(|resp| resp.elements().filter(|e| e.name.is_dav("propstat")))
    {
        assert_eq!(
            status_code(&child(ps, "status").text()),
            200,
            "PROPPATCH {path}: {}",
            r.text()
        );
    }
}

/// The code of a `DAV:status` line.
pub fn status_code(line: &str) -> u16 {
    line.trim()
        .strip_prefix("HTTP/1.1 ")
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
}
