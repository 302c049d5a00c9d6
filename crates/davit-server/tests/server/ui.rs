//! The web interface: the page for browsers (and the unchanged index for WebDAV clients), its
//! compiled-in assets, the security headers, the Origin check on writes, and CORS preflights
//! that are never granted.

use crate::common::*;
use crate::get::html_links;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     media-src 'self'; frame-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const PAGE: &[u8] = include_bytes!("../../ui/index.html");
const APP_JS: &[u8] = include_bytes!("../../ui/app.js");
const APP_CSS: &[u8] = include_bytes!("../../ui/app.css");
/// What Chromium sends when it navigates to a page.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,\
     image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

/// The headers every response of the interface carries.
fn assert_secured(r: &Resp, what: &str) {
    assert_eq!(r.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{what}");
    assert_eq!(r.header("cache-control"), Some("no-cache"), "{what}");
}

/// No header of `r` grants anything to another origin.
fn assert_no_cors(r: &Resp, what: &str) {
    let granted: Vec<_> = r
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .collect();
    assert!(granted.is_empty(), "{what}: {granted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_gets_the_page_for_a_collection() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/f.txt", "x").await;
    for path in ["/", "/c/", "/c"] {
        let r = s
            .req("GET", path)
            .header("Accept", BROWSER_ACCEPT)
            .send()
            .await;
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            r.header("content-length"),
            Some(PAGE.len().to_string().as_str())
        );
        assert_eq!(r.header("vary"), Some("Accept"));
        assert_secured(&r, path);
        assert_no_cors(&r, path);
        assert_eq!(&r.body[..], PAGE, "GET {path}");
        let h = s
            .req("HEAD", path)
            .header("Accept", "text/html")
            .send()
            .await;
        assert_eq!(h.status, 200, "HEAD {path}");
        assert!(h.body.is_empty());
        for name in ["content-type", "content-length", "content-security-policy"] {
            assert_eq!(h.header(name), r.header(name), "HEAD {path}: {name}");
        }
    }
    // The page has no inline script: every script element loads from the server.
    let page = String::from_utf8_lossy(PAGE);
    let scripts: Vec<_> = page.match_indices("<script").collect();
    assert_eq!(scripts.len(), 1);
    assert!(page.contains(r#"<script src="/.davit/ui/app.js" defer></script>"#));
    assert!(!page.contains(" on"), "no inline event handler attributes");
    // A file is its bytes, whatever the Accept (sandboxed for a browser, see below).
    let f = s
        .req("GET", "/c/f.txt")
        .header("Accept", BROWSER_ACCEPT)
        .send()
        .await;
    assert_eq!((f.status, &f.body[..]), (200, &b"x"[..]));
    assert_eq!(f.header("content-security-policy"), Some("sandbox"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_clients_still_get_the_plain_index() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/f.txt", "x").await;
    for accept in [
        None,
        Some("*/*"),
        Some("text/xml, application/xml"),
        Some("text/html;q=0"),
    ] {
        let mut req = s.req("GET", "/c/");
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let r = req.send().await;
        assert_eq!(r.status, 200, "Accept {accept:?}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("content-security-policy"), None, "{accept:?}");
        assert_eq!(r.header("vary"), None, "{accept:?}");
        let links = html_links(&r.text());
        assert_eq!(links, ["/", "/c/f.txt"], "Accept {accept:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_come_from_the_binary_with_validators() {
    let s = TestServer::start().await;
    for (path, ctype, bytes) in [
        (
            "/.davit/ui/app.js",
            "text/javascript; charset=utf-8",
            APP_JS,
        ),
        ("/.davit/ui/app.css", "text/css; charset=utf-8", APP_CSS),
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(r.header("content-type"), Some(ctype));
        assert_eq!(
            r.header("content-length"),
            Some(bytes.len().to_string().as_str())
        );
        assert_secured(&r, path);
        assert!(r.body[..] == *bytes, "GET {path}: other bytes");
        let etag = r.header("etag").expect("ETag").to_owned();
        assert!(etag.len() == 18 && etag.starts_with('"') && etag.ends_with('"'));
        let again = s
            .req("GET", path)
            .header("If-None-Match", &etag)
            .send()
            .await;
        assert_eq!(again.status, 304, "If-None-Match {path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let h = s.head(path).await;
        assert_eq!((h.status, h.body.len()), (200, 0), "HEAD {path}");
        assert_eq!(h.header("content-length"), r.header("content-length"));
    }
    // Only the named assets: anything else under the prefix is looked up as usual.
    assert_eq!(s.get("/.davit/ui/other.js").await.status, 404);
    assert_eq!(s.get("/.davit/ui/").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_state_dir_the_prefix_is_unreachable_for_files() {
    // State in root/.davit: the asset prefix lies inside it, where no client can write.
    let root = tempfile::tempdir().expect("root");
    let dirs = Dirs {
        root: root.path().to_path_buf(),
        state: None,
        guards: vec![root],
    };
    let s = TestServer::launch(dirs, davit_server::DavConfig::default()).await;
    // To clients `.davit` does not exist: nothing can be created under it.
    assert_eq!(s.put("/.davit/ui/app.js", "evil").await.status, 409);
    assert_eq!(s.mkcol("/.davit/").await.status, 403);
    assert_eq!(s.get("/.davit/ui/app.js").await.body[..], *APP_JS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_need_no_login_but_the_page_does() {
    let s = TestServer::with_auth(auth_with_users(&["alice"])).await;
    s.req("MKCOL", "/c/").user("alice").send().await;
    let js = s.get("/.davit/ui/app.js").await;
    assert_eq!(js.status, 200);
    let page = s
        .req("GET", "/c/")
        .header("Accept", BROWSER_ACCEPT)
        .send()
        .await;
    assert_eq!(page.status, 401);
    let page = s
        .req("GET", "/c/")
        .header("Accept", BROWSER_ACCEPT)
        .user("alice")
        .send()
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(&page.body[..], PAGE);
}

/// A request that changes something, and the status it gets when allowed.
struct Write {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
    status: u16,
}

impl Write {
    fn new(method: &'static str, path: &'static str, status: u16) -> Write {
        Write {
            method,
            path,
            headers: Vec::new(),
            body: String::new(),
            status,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Write {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn body(mut self, body: &str) -> Write {
        self.body = body.to_owned();
        self
    }
}

/// Every method that changes something, on `/w/` (which [`fill`] has filled).
fn writes() -> Vec<Write> {
    let batch =
        r#"<b:batch xmlns:b="urn:davit:batch"><b:put href="w/batch.txt">b</b:put></b:batch>"#;
    let patch = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>"#;
    vec![
        Write::new("PUT", "/w/new.txt", 201).body("new"),
        Write::new("MKCOL", "/w/sub/", 201),
        Write::new("PROPPATCH", "/w/f.txt", 207)
            .header("Content-Type", "application/xml")
            .body(patch),
        Write::new("COPY", "/w/f.txt", 201).header("Destination", "/w/copy.txt"),
        Write::new("MOVE", "/w/g.txt", 201).header("Destination", "/w/moved.txt"),
        Write::new("LOCK", "/w/locked.txt", 201)
            .header("Content-Type", "application/xml")
            .body(&lockinfo("exclusive", None)),
        // A cross-site HTML form can send this one without any preflight.
        Write::new("POST", "/batch-operation", 207)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(batch),
        Write::new("DELETE", "/w/f.txt", 204),
    ]
}

async fn fill(s: &TestServer) {
    s.mkcol("/w/").await;
    s.put("/w/f.txt", "f").await;
    s.put("/w/g.txt", "g").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_another_origin_are_refused() {
    let s = TestServer::start().await;
    fill(&s).await;
    let before = s.snapshot();
    let foreign = [
        "http://evil.example".to_owned(),
        format!("http://{}.evil.example", s.addr.ip()),
        format!("https://{}:1", s.addr.ip()),
        "null".to_owned(),
        format!("http://{}/", s.host()),
    ];
    for origin in &foreign {
        for w in writes() {
            let mut req = s
                .req(w.method, w.path)
                .header("Origin", origin)
                .body(w.body);
            for (k, v) in &w.headers {
                req = req.header(k, v);
            }
            let r = req.send().await;
            assert_eq!(r.status, 403, "{} {} from {origin}", w.method, w.path);
            assert_eq!(r.text(), "cross-origin request refused\n");
            assert_no_cors(&r, w.method);
        }
    }
    assert_eq!(s.snapshot(), before, "nothing changed");
    // Reads are not refused: the browser keeps another origin from reading the answer.
    let r = s
        .req("PROPFIND", "/w/")
        .header("Origin", "http://evil.example")
        .header("Depth", "1")
        .send()
        .await;
    assert_eq!(r.status, 207);
    assert_no_cors(&r, "PROPFIND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_the_same_origin_or_without_one_are_served() {
    for origin in [None, Some("same"), Some("same, no port")] {
        let s = TestServer::start().await;
        fill(&s).await;
        let value = match origin {
            None => None,
            Some("same") => Some(format!("http://{}", s.host())),
            // Host without a port and an Origin with the default one.
            Some(_) => Some("http://localhost".to_owned()),
        };
        for w in writes() {
            let mut req = s.req(w.method, w.path).body(w.body);
            if let Some(v) = &value {
                req = req.header("Origin", v);
            }
            if origin == Some("same, no port") {
                req = req.header("Host", "localhost");
            }
            for (k, v) in &w.headers {
                let v = if *k == "Destination" && origin == Some("same, no port") {
                    format!("http://localhost{v}")
                } else {
                    v.clone()
                };
                req = req.header(k, &v);
            }
            let r = req.send().await;
            assert_eq!(
                r.status, w.status,
                "{} {} with Origin {value:?}",
                w.method, w.path
            );
        }
        assert_eq!(s.disk("w/new.txt").as_deref(), Some("new"));
        assert_eq!(s.disk("w/batch.txt").as_deref(), Some("b"));
        assert_eq!(s.disk("w/moved.txt").as_deref(), Some("g"));
        assert_eq!(s.disk("w/f.txt"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_before_credentials_are_checked() {
    let s = TestServer::with_auth(auth_with_users(&["alice"])).await;
    s.req("MKCOL", "/w/").user("alice").send().await;
    let r = s
        .req("PUT", "/w/x.txt")
        .user("alice")
        .header("Origin", "http://evil.example")
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(s.disk("w/x.txt"), None);
    let r = s
        .req("PUT", "/w/x.txt")
        .user("alice")
        .header("Origin", &format!("http://{}", s.host()))
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_not_granted() {
    let s = TestServer::start().await;
    s.put("/f.txt", "x").await;
    for path in ["/", "/f.txt", "/nope", "/.davit/ui/app.js"] {
        for method in ["PUT", "PROPFIND", "DELETE"] {
            let r = s
                .req("OPTIONS", path)
                .header("Origin", "http://evil.example")
                .header("Access-Control-Request-Method", method)
                .header("Access-Control-Request-Headers", "depth, destination")
                .send()
                .await;
            // The same answer as any OPTIONS, with nothing that lets the browser go on.
            assert_eq!(r.status, 200, "preflight of {method} {path}");
            assert_no_cors(&r, path);
        }
    }
}

/// A stored page or SVG opened in a browser must not run script as the server's origin: file
/// GETs a browser navigates to carry `Content-Security-Policy: sandbox` (PDFs excepted, which
/// browsers will not show in a sandbox); WebDAV clients' GETs are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_files_open_sandboxed_in_a_browser() {
    let s = TestServer::start().await;
    s.put("/evil.html", "<script>alert(1)</script>").await;
    s.put("/pic.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
        .await;
    s.put("/doc.pdf", "%PDF-1.4").await;
    for path in ["/evil.html", "/pic.svg"] {
        let r = s
            .req("GET", path)
            .header("Accept", BROWSER_ACCEPT)
            .send()
            .await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("content-security-policy"),
            Some("sandbox"),
            "{path}"
        );
        let plain = s.get(path).await;
        assert_eq!(plain.header("content-security-policy"), None, "{path}");
        assert_eq!(plain.body, r.body, "{path}");
    }
    let pdf = s
        .req("GET", "/doc.pdf")
        .header("Accept", BROWSER_ACCEPT)
        .send()
        .await;
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert_eq!(pdf.header("content-security-policy"), None);
}
