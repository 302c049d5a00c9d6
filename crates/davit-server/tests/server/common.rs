//! The test harness: a real server on an ephemeral port (optionally with users and rules), a
//! minimal HTTP/1.1 client on hyper's connection API (Basic credentials, a chosen local
//! address), a raw-TCP client for hostile input, and a structural reader for 207 bodies built
//! on the project's own XML parser.

use base64::Engine;
use bytes::Bytes;
use davit_proto::xml::{parse_document, Element, Limits, Node, QName, DAV, XML_NS};
use davit_server::auth::{hash_password, Access, Auth, AuthConfig, UserConfig};
use davit_server::{serve, DavConfig, Server};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The non-DAV namespace used for dead properties in the tests.
pub const Z: &str = "urn:z";

/// Names that need escaping in an href, in XML or both.
pub const HOSTILE: &[&str] = &["a b", "100%", "#x", "q?", "a+b", "x&y", "<t>", "ü😀"];

/// How long any single exchange may take before the test fails instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The directories a server runs over; the guards keep temporary ones alive.
pub struct Dirs {
    pub root: PathBuf,
    /// `None`: the default, root/.davit.
    pub state: Option<PathBuf>,
    /// Held only so the temporary directories live as long as the server.
    #[allow(dead_code)]
    pub guards: Vec<TempDir>,
}

impl Dirs {
    /// A fresh root and a fresh state directory outside it.
    pub fn fresh() -> Dirs {
        let root = tempfile::tempdir().expect("root tempdir");
        let state = tempfile::tempdir().expect("state tempdir");
        Dirs {
            root: root.path().to_path_buf(),
            state: Some(state.path().to_path_buf()),
            guards: vec![root, state],
        }
    }
}

/// A server over temporary directories, listening on 127.0.0.1 at an ephemeral port.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The served instance (a clone sharing its state: cache, locks, stores).
    pub dav: Server,
    dirs: Dirs,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Default configuration, state directory outside the root.
    pub async fn start() -> TestServer {
        Self::with_config(DavConfig::default()).await
    }

    /// A custom configuration, state directory outside the root.
    pub async fn with_config(config: DavConfig) -> TestServer {
        Self::launch(Dirs::fresh(), config).await
    }

    /// Opens a server over existing directories.
    pub async fn launch(dirs: Dirs, config: DavConfig) -> TestServer {
        Self::open(dirs, config, None).await
    }

    /// Default configuration plus users and rules (`[auth]`), fresh directories.
    pub async fn with_auth(auth: AuthConfig) -> TestServer {
        Self::launch_with_auth(Dirs::fresh(), DavConfig::default(), auth).await
    }

    /// Opens a server with users and rules over existing directories.
    pub async fn launch_with_auth(dirs: Dirs, config: DavConfig, auth: AuthConfig) -> TestServer {
        Self::open(dirs, config, Some(auth)).await
    }

    async fn open(dirs: Dirs, config: DavConfig, auth: Option<AuthConfig>) -> TestServer {
        let mut server =
            Server::open(&dirs.root, dirs.state.as_deref(), config).expect("Server::open");
        if let Some(auth) = auth {
            server = server.with_auth(Auth::new(&auth).expect("Auth::new"));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, rx) = oneshot::channel::<()>();
        let dav = server.clone();
        let task = tokio::spawn(serve(listener, server, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            dav,
            dirs,
            shutdown: tx,
            task,
        }
    }

    /// Shuts the server down gracefully and hands back its directories.
    pub async fn stop(self) -> Dirs {
        let _ = self.shutdown.send(());
        tokio::time::timeout(IO_TIMEOUT, self.task)
            .await
            .expect("server shut down in time")
            .expect("server task joined")
            .expect("serve returned Ok");
        self.dirs
    }

    /// The served directory on disk.
    pub fn root(&self) -> &Path {
        &self.dirs.root
    }

    /// Contents of a file under the root on disk, `None` when absent.
    pub fn disk(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root().join(rel)).ok()
    }

    /// Every file and directory under the root (directories end in `/`), with contents, sorted.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).expect("read_dir") {
                let p = e.expect("entry").path();
                let rel = p
                    .strip_prefix(base)
                    .expect("under base")
                    .to_string_lossy()
                    .into_owned();
                if p.is_dir() {
                    out.push((format!("{rel}/"), String::new()));
                    walk(base, &p, out);
                } else {
                    out.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root(), self.root(), &mut out);
        out.sort();
        out
    }

    /// Where the server keeps its own files.
    pub fn state_dir(&self) -> PathBuf {
        match &self.dirs.state {
            Some(s) => s.clone(),
            None => self.dirs.root.join(".davit"),
        }
    }

    /// The authority clients put in Host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// An absolute URI for a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request builder.
    pub fn req(&self, method: &str, path: &str) -> Req<'_> {
        Req {
            server: self,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            local: None,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req("GET", path).send().await
    }

    pub async fn head(&self, path: &str) -> Resp {
        self.req("HEAD", path).send().await
    }

    pub async fn put(&self, path: &str, body: impl Into<Bytes>) -> Resp {
        self.req("PUT", path).body(body).send().await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path).send().await
    }

    pub async fn mkcol(&self, path: &str) -> Resp {
        self.req("MKCOL", path).send().await
    }

    /// PROPFIND with an optional Depth; an empty `body` sends none.
    pub async fn propfind(&self, path: &str, depth: Option<&str>, body: &str) -> Resp {
        let mut r = self.req("PROPFIND", path);
        if let Some(d) = depth {
            r = r.header("Depth", d);
        }
        if !body.is_empty() {
            r = r
                .header("Content-Type", "application/xml")
                .body(body.to_owned());
        }
        r.send().await
    }

    /// PROPFIND that must succeed, parsed.
    pub async fn propfind_ms(&self, path: &str, depth: Option<&str>, body: &str) -> Multistatus {
        self.propfind(path, depth, body).await.ms()
    }

    /// PROPFIND Depth 0 for the named properties of one resource.
    pub async fn props_of(&self, path: &str, names: &[QName]) -> MsResponse {
        let ms = self.propfind_ms(path, Some("0"), &prop_body(names)).await;
        assert_eq!(ms.responses.len(), 1, "Depth 0 PROPFIND of {path}");
        ms.responses.into_iter().next().expect("one response")
    }

    pub async fn proppatch(&self, path: &str, body: &str) -> Resp {
        self.req("PROPPATCH", path)
            .header("Content-Type", "application/xml")
            .body(body.to_owned())
            .send()
            .await
    }

    /// Sets one dead property `{urn:z}name` to a text value and checks it was set.
    pub async fn set_prop(&self, path: &str, name: &str, value: &str) {
        let mut v = String::new();
        davit_proto::xml::escape_text(value, &mut v);
        let body = format!(
            r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:{name}>{v}</Z:{name}></D:prop></D:set></D:propertyupdate>"#
        );
        let ms = self.proppatch(path, &body).await.ms();
        let r = ms.only();
        assert_eq!(
            r.prop_status(&QName::new(Z, name)),
            Some(200),
            "set {name} on {path}"
        );
    }

    /// The text of dead property `{urn:z}name`, `None` if the server reports it missing.
    pub async fn z_prop(&self, path: &str, name: &str) -> Option<String> {
        let q = QName::new(Z, name);
        let r = self.props_of(path, std::slice::from_ref(&q)).await;
        match r.prop(&q) {
            Some((200, e)) => Some(e.text()),
            Some((404, _)) => None,
            other => panic!(
                "unexpected status for {name} on {path}: {:?}",
                other.map(|x| x.0)
            ),
        }
    }

    /// COPY or MOVE with a path-absolute Destination and optional extra headers.
    pub async fn copy_move(
        &self,
        method: &str,
        from: &str,
        to: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut r = self.req(method, from).header("Destination", to);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send().await
    }

    /// Opens a raw TCP connection.
    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.expect("connect")
    }

    /// Writes raw bytes on a fresh connection and reads everything until the server closes it
    /// (send `Connection: close` or something the server refuses).
    pub async fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut s = self.connect().await;
        s.write_all(request).await.expect("write raw request");
        read_to_close(&mut s).await
    }

    /// Like [`raw`](Self::raw), parsed as one response.
    pub async fn raw_resp(&self, request: &[u8]) -> RawResp {
        RawResp::parse(&self.raw(request).await)
    }
}

/// Reads from `s` until EOF (or a reset after the response), bounded by the I/O timeout.
pub async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(IO_TIMEOUT, read)
        .await
        .expect("server closed the connection in time");
    out
}

/// Reads from `s` until `needle` has arrived; returns everything read.
pub async fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while find(&out, needle).is_none() {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(IO_TIMEOUT, read)
        .await
        .expect("expected bytes arrived in time");
    out
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Users: every test user `u` has the password `u-pw`.

/// The password of test user `user`.
pub fn password(user: &str) -> String {
    format!("{user}-pw")
}

/// An `[[auth.user]]` with the test password. argon2 hashes are slow to make: one per user
/// name for the whole test binary.
pub fn user_config(name: &str, root: Option<&str>) -> UserConfig {
    static HASHES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let hash = HASHES
        .get_or_init(Default::default)
        .lock()
        .expect("hash cache")
        .entry(name.to_owned())
        .or_insert_with(|| hash_password(&password(name)).expect("hash_password"))
        .clone();
    UserConfig {
        name: name.to_owned(),
        password_hash: hash,
        root: root.map(str::to_owned),
        quota_bytes: None,
    }
}

/// An `[auth]` table with these users (each may read and write everywhere), no rules, no
/// anonymous access, and a failed-login limit no test reaches by accident.
pub fn auth_with_users(users: &[&str]) -> AuthConfig {
    AuthConfig {
        realm: "davit test".to_owned(),
        anonymous: Access::None,
        max_failures_per_minute: 10_000,
        users: users.iter().map(|u| user_config(u, None)).collect(),
        rules: Vec::new(),
    }
}

/// An `Authorization` value for HTTP Basic.
pub fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// A request under construction.
pub struct Req<'a> {
    server: &'a TestServer,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    /// The local address to connect from (another loopback address, e.g. 127.0.0.2, looks
    /// like another client); `None`: whatever the system picks.
    local: Option<IpAddr>,
}

impl Req<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends these Basic credentials.
    pub fn basic(self, user: &str, pw: &str) -> Self {
        let v = basic(user, pw);
        self.header("Authorization", &v)
    }

    /// Logs in as test user `user` (with the right password).
    pub fn user(self, user: &str) -> Self {
        self.basic(user, &password(user))
    }

    /// Logs in as `who`; `None` sends no credentials (anonymous).
    pub fn who(self, who: Option<&str>) -> Self {
        match who {
            Some(u) => self.user(u),
            None => self,
        }
    }

    /// Connects from this local address (it must be a local one, e.g. any of 127.0.0.0/8).
    #[allow(dead_code)] // used by security.rs only
    pub fn from(mut self, ip: IpAddr) -> Self {
        self.local = Some(ip);
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request on a new connection and reads the whole response.
    pub async fn send(self) -> Resp {
        let what = format!("{} {}", self.method, self.path);
        tokio::time::timeout(IO_TIMEOUT, self.exchange())
            .await
            .unwrap_or_else(|_| panic!("{what}: no response in time"))
    }

    async fn exchange(self) -> Resp {
        let stream = match self.local {
            None => self.server.connect().await,
            Some(ip) => {
                let sock = match ip {
                    IpAddr::V4(_) => TcpSocket::new_v4(),
                    IpAddr::V6(_) => TcpSocket::new_v6(),
                }
                .expect("socket");
                sock.bind(SocketAddr::new(ip, 0))
                    .expect("bind local address");
                sock.connect(self.server.addr).await.expect("connect")
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        let conn = tokio::spawn(conn);
        let mut builder = Request::builder()
            .method(self.method.as_str())
            .uri(self.path.as_str());
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            builder = builder.header("Host", self.server.host());
        }
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let req = builder.body(Full::new(self.body)).expect("valid request");
        let resp = sender
            .send_request(req)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.path));
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        drop(sender);
        conn.abort();
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a 207 with an XML Content-Type and parses its body.
    pub fn ms(&self) -> Multistatus {
        assert_eq!(self.status, 207, "expected 207, body: {}", self.text());
        let ctype = self.header("content-type").unwrap_or("");
        assert!(
            ctype.starts_with("application/xml") || ctype.starts_with("text/xml"),
            "207 Content-Type {ctype:?}"
        );
        Multistatus::parse(&self.body)
    }

    /// Parses a `DAV:error` body and returns the names of the conditions inside it.
    pub fn dav_error(&self) -> Vec<QName> {
        let root = parse_document(&self.body, &Limits::default())
            .unwrap_or_else(|e| panic!("error body is not XML ({e}): {}", self.text()));
        assert!(root.name.is_dav("error"), "root is {:?}", root.name);
        root.elements().map(|e| e.name.clone()).collect()
    }
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    /// Parses the first final (non-1xx) response in `bytes`.
    pub fn parse(bytes: &[u8]) -> RawResp {
        let mut rest = bytes;
        loop {
            let end = find(rest, b"\r\n\r\n").unwrap_or_else(|| {
                panic!(
                    "no complete response head in {:?}",
                    String::from_utf8_lossy(bytes)
                )
            });
            let head = String::from_utf8_lossy(&rest[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let status: u16 = status_line
                .strip_prefix("HTTP/1.1 ")
                .and_then(|s| s.get(..3))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            rest = &rest[end + 4..];
            if (100..200).contains(&status) {
                continue;
            }
            return RawResp {
                status,
                headers,
                body: rest.to_vec(),
            };
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The status code inside a `DAV:status` text, checking it is a full HTTP/1.1 status line.
fn status_code(text: &str) -> u16 {
    let text = text.trim();
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {text:?}"));
    code.parse().expect("three digits")
}

/// One `propstat`.
#[derive(Debug, Clone)]
pub struct PropStat {
    pub status: u16,
    pub props: Vec<Element>,
    /// Names of the conditions in its `DAV:error`, if any.
    pub error: Vec<QName>,
}

/// One `response`.
#[derive(Debug, Clone)]
pub struct MsResponse {
    pub href: String,
    /// The whole-resource status (status form), if any.
    pub status: Option<u16>,
    /// Names of the conditions in its `DAV:error`, if any.
    pub error: Vec<QName>,
    pub propstats: Vec<PropStat>,
}

/// What a response says: one status for the resource, or a status per property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    Props(BTreeMap<QName, u16>),
}

impl MsResponse {
    /// A property with the status of the propstat that holds it.
    pub fn prop(&self, name: &QName) -> Option<(u16, &Element)> {
        let mut found = None;
        for ps in &self.propstats {
            for p in ps.props.iter().filter(|p| &p.name == name) {
                assert!(found.is_none(), "{name:?} appears twice in {}", self.href);
                found = Some((ps.status, p));
            }
        }
        found
    }

    pub fn prop_status(&self, name: &QName) -> Option<u16> {
        self.prop(name).map(|(s, _)| s)
    }

    /// A `DAV:` property reported with 200.
    pub fn dav(&self, local: &str) -> Option<&Element> {
        match self.prop(&QName::dav(local)) {
            Some((200, e)) => Some(e),
            _ => None,
        }
    }

    /// The text of a `DAV:` property reported with 200.
    pub fn dav_text(&self, local: &str) -> Option<String> {
        self.dav(local).map(Element::text)
    }

    /// True when resourcetype holds DAV:collection.
    pub fn is_collection(&self) -> bool {
        self.dav("resourcetype")
            .is_some_and(|rt| rt.elements().any(|e| e.name.is_dav("collection")))
    }

    /// The error conditions of the propstat holding `name`.
    pub fn prop_error(&self, name: &QName) -> Vec<QName> {
        self.propstats
            .iter()
            .find(|ps| ps.props.iter().any(|p| &p.name == name))
            .map(|ps| ps.error.clone())
            .unwrap_or_default()
    }

    /// Status form or per-property statuses.
    pub fn outcome(&self) -> Outcome {
        match self.status {
            Some(s) => Outcome::Status(s),
            None => Outcome::Props(
                self.propstats
                    .iter()
                    .flat_map(|ps| ps.props.iter().map(move |p| (p.name.clone(), ps.status)))
                    .collect(),
            ),
        }
    }
}

/// A parsed `multistatus`, responses in document order.
#[derive(Debug, Clone)]
pub struct Multistatus {
    pub responses: Vec<MsResponse>,
}

impl Multistatus {
    /// Parses and checks the RFC 4918 §13 structure (one href per response, status or
    /// propstats but not both, full status lines, one prop and one status per propstat).
    pub fn parse(body: &[u8]) -> Multistatus {
        let text = String::from_utf8_lossy(body);
        let root = parse_document(body, &Limits::default())
            .unwrap_or_else(|e| panic!("207 body does not parse ({e}): {text}"));
        assert!(root.name.is_dav("multistatus"), "root is {:?}", root.name);
        let mut responses = Vec::new();
        for r in root.elements() {
            if r.name.is_dav("responsedescription") {
                continue;
            }
            assert!(
                r.name.is_dav("response"),
                "unexpected {:?} in multistatus",
                r.name
            );
            let hrefs: Vec<_> = r.elements().filter(|e| e.name.is_dav("href")).collect();
            assert_eq!(hrefs.len(), 1, "one href per response: {text}");
            let href = hrefs[0].text();
            let statuses: Vec<_> = r.elements().filter(|e| e.name.is_dav("status")).collect();
            let propstats: Vec<PropStat> = r
                .elements()
                .filter(|e| e.name.is_dav("propstat"))
                .map(|ps| {
                    let props: Vec<_> = ps.elements().filter(|e| e.name.is_dav("prop")).collect();
                    assert_eq!(props.len(), 1, "one prop per propstat in {href}");
                    let st: Vec<_> = ps.elements().filter(|e| e.name.is_dav("status")).collect();
                    assert_eq!(st.len(), 1, "one status per propstat in {href}");
                    PropStat {
                        status: status_code(&st[0].text()),
                        props: props[0].elements().cloned().collect(),
                        error: error_names(ps),
                    }
                })
                .collect();
            assert!(
                statuses.len() + usize::from(!propstats.is_empty()) == 1 && statuses.len() <= 1,
                "response for {href} needs one status or propstats, not both: {text}"
            );
            let mut seen = Vec::new();
            for ps in &propstats {
                assert!(
                    !seen.contains(&ps.status),
                    "two propstats with status {} in {href}",
                    ps.status
                );
                seen.push(ps.status);
            }
            responses.push(MsResponse {
                href,
                status: statuses.first().map(|s| status_code(&s.text())),
                error: error_names(r),
                propstats,
            });
        }
        Multistatus { responses }
    }

    /// Responses by href, asserting every href appears once.
    pub fn map(&self) -> BTreeMap<String, &MsResponse> {
        let mut m = BTreeMap::new();
        for r in &self.responses {
            assert!(
                m.insert(r.href.clone(), r).is_none(),
                "href {} listed twice",
                r.href
            );
        }
        m
    }

    /// href → outcome (status, or per-property statuses).
    pub fn outcomes(&self) -> BTreeMap<String, Outcome> {
        self.map()
            .into_iter()
            .map(|(h, r)| (h, r.outcome()))
            .collect()
    }

    /// The hrefs, sorted, asserting uniqueness.
    pub fn hrefs(&self) -> Vec<String> {
        self.map().into_keys().collect()
    }

    /// The response for `href`.
    pub fn get(&self, href: &str) -> &MsResponse {
        self.responses
            .iter()
            .find(|r| r.href == href)
            .unwrap_or_else(|| panic!("no response for {href}; have {:?}", self.hrefs()))
    }

    /// The single response of a Depth 0 or PROPPATCH answer.
    pub fn only(&self) -> &MsResponse {
        assert_eq!(
            self.responses.len(),
            1,
            "expected one response: {:?}",
            self.responses
        );
        &self.responses[0]
    }
}

fn error_names(parent: &Element) -> Vec<QName> {
    parent
        .elements()
        .filter(|e| e.name.is_dav("error"))
        .flat_map(|e| e.elements().map(|c| c.name.clone()))
        .collect()
}

/// A `propfind` body asking for these properties.
pub fn prop_body(names: &[QName]) -> String {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>"#,
    );
    for n in names {
        if n.ns == DAV {
            s.push_str(&format!("<D:{}/>", n.local));
        } else if n.ns.is_empty() {
            s.push_str(&format!("<{} xmlns=\"\"/>", n.local));
        } else {
            s.push_str(&format!("<p:{} xmlns:p=\"{}\"/>", n.local, n.ns));
        }
    }
    s.push_str("</D:prop></D:propfind>");
    s
}

/// `{urn:z}local`.
pub fn z(local: &str) -> QName {
    QName::new(Z, local)
}

/// The href of a name directly under the root.
pub fn href_of(name: &str, collection: bool) -> String {
    let mut h = format!("/{}", davit_proto::href::encode_segment(name));
    if collection {
        h.push('/');
    }
    h
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
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

/// Writes a file directly on disk under the root, creating parents.
pub fn write_file(root: &Path, rel: &str, contents: &[u8]) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("create parents");
    }
    std::fs::write(p, contents).expect("write fixture");
}

/// Names in a directory on disk, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Polls `cond` every few milliseconds for up to five seconds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// True when the process ignores file permissions (root): chmod-based tests cannot work.
pub fn permissions_ignored() -> bool {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("probe tempdir");
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("probe dir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let writable = std::fs::write(locked.join("probe"), b"x").is_ok();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
    writable
}

/// Compares two elements as XML infosets: names, attributes (as a set, `xml:lang` excluded),
/// the `xml:lang` in scope, and children in order with text exact. Prefixes are ignored.
pub fn same_infoset(a: &Element, b: &Element) -> Result<(), String> {
    if a.name != b.name {
        return Err(format!("name {:?} != {:?}", a.name, b.name));
    }
    if a.lang != b.lang {
        return Err(format!(
            "xml:lang of {:?}: {:?} != {:?}",
            a.name, a.lang, b.lang
        ));
    }
    let attrs = |e: &Element| {
        let mut v: Vec<(QName, String)> = e
            .attrs
            .iter()
            .filter(|x| !(x.name.ns == XML_NS && x.name.local == "lang"))
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        v.sort();
        v
    };
    if attrs(a) != attrs(b) {
        return Err(format!(
            "attributes of {:?}: {:?} != {:?}",
            a.name,
            attrs(a),
            attrs(b)
        ));
    }
    if a.children.len() != b.children.len() {
        return Err(format!(
            "children of {:?}: {:?} != {:?}",
            a.name, a.children, b.children
        ));
    }
    for (x, y) in a.children.iter().zip(&b.children) {
        match (x, y) {
            (Node::Text(s), Node::Text(t)) if s == t => {}
            (Node::Element(e), Node::Element(f)) => same_infoset(e, f)?,
            _ => return Err(format!("child {x:?} != {y:?}")),
        }
    }
    Ok(())
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate): letters, digits and separators in place.
pub fn is_imf_fixdate(s: &str) -> bool {
    const PAT: &str = "Aaa, 00 Aaa 0000 00:00:00 GMT";
    s.len() == PAT.len()
        && s.bytes().zip(PAT.bytes()).all(|(c, p)| match p {
            b'A' => c.is_ascii_uppercase(),
            b'a' => c.is_ascii_lowercase(),
            b'0' => c.is_ascii_digit(),
            _ => c == p,
        })
        && httpdate::parse_http_date(s).is_ok()
}

/// `2026-11-22T10:00:00Z`: RFC 3339 without fractional seconds.
pub fn is_rfc3339_seconds(s: &str) -> bool {
    const PAT: &str = "0000-00-00T00:00:00Z";
    s.len() == PAT.len()
        && s.bytes().zip(PAT.bytes()).all(|(c, p)| match p {
            b'0' => c.is_ascii_digit(),
            _ => c == p,
        })
}

// ---------------------------------------------------------------------------------------------
// Locking helpers (LOCK/UNLOCK requests and a structural reader for `activelock`).

/// A `lockinfo` body for a write lock of `scope` (`exclusive` or `shared`), with an optional
/// `owner` element given as XML inside `<D:owner>` (prefix `D` is bound to `DAV:`).
pub fn lockinfo(scope: &str, owner: Option<&str>) -> String {
    let owner = owner
        .map(|o| format!("<D:owner>{o}</D:owner>"))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype>{owner}</D:lockinfo>"#
    )
}

/// One `DAV:activelock`, read structurally.
#[derive(Debug, Clone)]
pub struct ActiveLock {
    /// `exclusive` or `shared`.
    pub scope: String,
    /// `0` or `infinity` (as written, lowercased).
    pub depth: String,
    /// The `DAV:owner` element, if any.
    pub owner: Option<Element>,
    /// The timeout text, e.g. `Second-3600` or `Infinite`.
    pub timeout: String,
    /// The lock token URI.
    pub token: String,
    /// The href inside `lockroot`.
    pub root: String,
}

impl ActiveLock {
    /// The seconds of a `Second-N` timeout; `None` for `Infinite`.
    pub fn seconds(&self) -> Option<u64> {
        if self.timeout == "Infinite" {
            return None;
        }
        Some(
            self.timeout
                .strip_prefix("Second-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad timeout {:?}", self.timeout)),
        )
    }
}

fn only_child<'a>(e: &'a Element, local: &str) -> &'a Element {
    let v: Vec<_> = e.elements().filter(|c| c.name.is_dav(local)).collect();
    assert_eq!(v.len(), 1, "one DAV:{local} in {:?}", e.name);
    v[0]
}

fn single_element_name(e: &Element) -> String {
    let v: Vec<_> = e.elements().collect();
    assert_eq!(v.len(), 1, "one element inside {:?}", e.name);
    assert_eq!(v[0].name.ns, DAV, "DAV: element inside {:?}", e.name);
    v[0].name.local.clone()
}

/// Reads every `activelock` of a `lockdiscovery` element, checking each has the RFC 4918
/// §14.1 children (owner optional).
pub fn activelocks(lockdiscovery: &Element) -> Vec<ActiveLock> {
    assert!(
        lockdiscovery.name.is_dav("lockdiscovery"),
        "not a lockdiscovery: {:?}",
        lockdiscovery.name
    );
    lockdiscovery
        .elements()
        .map(|a| {
            assert!(a.name.is_dav("activelock"), "unexpected {:?}", a.name);
            assert_eq!(single_element_name(only_child(a, "locktype")), "write");
            let owners: Vec<_> = a.elements().filter(|c| c.name.is_dav("owner")).collect();
            assert!(owners.len() <= 1, "at most one owner");
            ActiveLock {
                scope: single_element_name(only_child(a, "lockscope")),
                depth: only_child(a, "depth").text().trim().to_ascii_lowercase(),
                owner: owners.first().map(|o| (*o).clone()),
                timeout: only_child(a, "timeout").text().trim().to_owned(),
                token: only_child(only_child(a, "locktoken"), "href")
                    .text()
                    .trim()
                    .to_owned(),
                root: only_child(only_child(a, "lockroot"), "href")
                    .text()
                    .trim()
                    .to_owned(),
            }
        })
        .collect()
}

impl Resp {
    /// The `Lock-Token` response header without its angle brackets (asserting they are there).
    pub fn lock_token(&self) -> String {
        let v = self
            .header("lock-token")
            .unwrap_or_else(|| panic!("no Lock-Token header (status {})", self.status));
        v.strip_prefix('<')
            .and_then(|v| v.strip_suffix('>'))
            .unwrap_or_else(|| panic!("Lock-Token without angle brackets: {v:?}"))
            .to_owned()
    }

    /// The activelocks of a LOCK response body (`<D:prop><D:lockdiscovery>…`), checking the
    /// XML Content-Type.
    pub fn lock_body(&self) -> Vec<ActiveLock> {
        let ctype = self.header("content-type").unwrap_or("");
        assert!(
            ctype.starts_with("application/xml") || ctype.starts_with("text/xml"),
            "LOCK Content-Type {ctype:?}"
        );
        let root = parse_document(&self.body, &Limits::default())
            .unwrap_or_else(|e| panic!("LOCK body is not XML ({e}): {}", self.text()));
        assert!(
            root.name.is_dav("prop"),
            "LOCK body root is {:?}",
            root.name
        );
        activelocks(only_child(&root, "lockdiscovery"))
    }

    /// The hrefs inside condition `local` of a `DAV:error` body (asserting it is there).
    pub fn condition_hrefs(&self, local: &str) -> Vec<String> {
        let root = parse_document(&self.body, &Limits::default())
            .unwrap_or_else(|e| panic!("error body is not XML ({e}): {}", self.text()));
        assert!(root.name.is_dav("error"), "root is {:?}", root.name);
        let cond = root
            .elements()
            .find(|e| e.name.is_dav(local))
            .unwrap_or_else(|| panic!("no DAV:{local} in {}", self.text()));
        cond.elements()
            .filter(|e| e.name.is_dav("href"))
            .map(|e| e.text().trim().to_owned())
            .collect()
    }
}

impl TestServer {
    /// LOCK with a body (empty `body`: none), an optional Depth and Timeout, and extra headers.
    pub async fn lock(
        &self,
        path: &str,
        depth: Option<&str>,
        timeout: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut r = self.req("LOCK", path);
        if let Some(d) = depth {
            r = r.header("Depth", d);
        }
        if let Some(t) = timeout {
            r = r.header("Timeout", t);
        }
        for (k, v) in headers {
            r = r.header(k, v);
        }
        if !body.is_empty() {
            r = r
                .header("Content-Type", "application/xml; charset=utf-8")
                .body(body.to_owned());
        }
        r.send().await
    }

    /// Takes a lock that must be granted (200 or 201) and returns its token, checking the
    /// header and body tokens agree.
    pub async fn lock_ok(&self, path: &str, scope: &str, depth: Option<&str>) -> String {
        let r = self
            .lock(path, depth, None, &lockinfo(scope, None), &[])
            .await;
        assert!(
            r.status == 200 || r.status == 201,
            "LOCK {path}: {} {}",
            r.status,
            r.text()
        );
        let token = r.lock_token();
        let body = r.lock_body();
        assert_eq!(body.len(), 1, "one activelock in the LOCK response");
        assert_eq!(body[0].token, token, "Lock-Token header and body agree");
        token
    }

    /// UNLOCK with the token in angle brackets.
    pub async fn unlock(&self, path: &str, token: &str) -> Resp {
        self.req("UNLOCK", path)
            .header("Lock-Token", &format!("<{token}>"))
            .send()
            .await
    }

    /// The activelocks PROPFIND reports for `path`.
    pub async fn lockdiscovery(&self, path: &str) -> Vec<ActiveLock> {
        let r = self.props_of(path, &[QName::dav("lockdiscovery")]).await;
        let e = r
            .dav("lockdiscovery")
            .unwrap_or_else(|| panic!("no lockdiscovery for {path}"));
        activelocks(e)
    }
}
