//! Real clients: the request sequences macOS Finder (WebDAVFS), the Windows Mini-Redirector
//! and Microsoft Office send when they save a file, replayed header for header as written
//! down in docs/clients.md.

use crate::common::*;
use davit_proto::xml::QName;
use tokio::io::AsyncWriteExt;

const MS: &str = "urn:schemas-microsoft-com:";
const WIN_UA: &str = "Microsoft-WebDAV-MiniRedir/10.0.19045";
const FINDER_UA: &str = "WebDAVFS/3.0.0 (03008000) Darwin/19.6.0 (x86_64)";
const OFFICE_UA: &str = "Microsoft Office Word 2014";

/// The lockinfo Windows sends: exclusive write, the account as owner href.
const WIN_LOCKINFO: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>WORKGROUP\\alice</D:href></D:owner></D:lockinfo>";

/// The lockinfo WebDAVFS sends, byte for byte (newlines included).
const FINDER_LOCKINFO: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:lockinfo xmlns:D=\"DAV:\">\n<D:lockscope><D:exclusive/></D:lockscope>\n<D:locktype><D:write/></D:locktype>\n<D:owner>\n<D:href>http://www.apple.com/webdav_fs/</D:href>\n</D:owner>\n</D:lockinfo>\n";

/// The start of an AppleDouble file: magic, version, filler, one entry (Finder info).
const APPLEDOUBLE: &[u8] = &[
    0x00, 0x05, 0x16, 0x07, 0x00, 0x02, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x32, 0x00, 0x00, 0x00, 0x20,
];

fn win32_names() -> Vec<QName> {
    [
        "Win32CreationTime",
        "Win32LastAccessTime",
        "Win32LastModifiedTime",
        "Win32FileAttributes",
    ]
    .iter()
    .map(|n| QName::new(MS, *n))
    .collect()
}

/// The PROPPATCH body Explorer sends after creating or writing a file.
fn win32_proppatch(modified: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:schemas-microsoft-com:\"><D:set><D:prop><Z:Win32CreationTime>Thu, 09 Oct 2025 17:54:43 GMT</Z:Win32CreationTime><Z:Win32LastAccessTime>Thu, 09 Oct 2025 17:55:31 GMT</Z:Win32LastAccessTime><Z:Win32LastModifiedTime>{modified}</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"
    )
}

/// A Mini-Redirector request with the headers every one of them carries.
fn win<'a>(s: &'a TestServer, method: &str, path: &str) -> Req<'a> {
    s.req(method, path)
        .header("User-Agent", WIN_UA)
        .header("translate", "f")
        .header("Connection", "Keep-Alive")
}

/// Windows' LOCK: no Depth, one-hour timeout, no-cache headers.
async fn win_lock(s: &TestServer, path: &str) -> Resp {
    win(s, "LOCK", path)
        .header("Cache-Control", "no-cache")
        .header("Pragma", "no-cache")
        .header("Timeout", "Second-3600")
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .body(WIN_LOCKINFO)
        .send()
        .await
}

/// Windows' PROPPATCH of its Win32* properties with the token in If; checks 200 for each.
async fn win_proppatch(s: &TestServer, path: &str, token: &str, modified: &str) {
    let r = win(s, "PROPPATCH", path)
        .header("Cache-Control", "no-cache")
        .header("Pragma", "no-cache")
        .header("If", &format!("(<{token}>)"))
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .body(win32_proppatch(modified))
        .send()
        .await;
    let ms = r.ms();
    let resp = ms.only();
    for n in win32_names() {
        assert_eq!(resp.prop_status(&n), Some(200), "{} on {path}", n.local);
    }
}

/// Checks a Windows LOCK answer: the expected status, a bracketed urn:uuid token in the
/// header equal to the one in the body, the owner kept, the timeout granted.
fn check_win_lock(r: &Resp, status: u16, root: &str) -> String {
    assert_eq!(r.status, status, "LOCK {root}: {}", r.text());
    let token = r.lock_token();
    assert!(token.starts_with("urn:uuid:"), "{token}");
    let locks = r.lock_body();
    assert_eq!(locks.len(), 1);
    let l = &locks[0];
    assert_eq!(l.token, token);
    assert_eq!(l.scope, "exclusive");
    assert_eq!(
        l.depth, "infinity",
        "a LOCK without Depth is depth infinity"
    );
    assert_eq!(l.root, root);
    assert!(l.seconds().is_some_and(|n| n > 3500 && n <= 3600), "{l:?}");
    let owner = l.owner.as_ref().expect("owner kept");
    let href: Vec<_> = owner.elements().filter(|e| e.name.is_dav("href")).collect();
    assert_eq!(href.len(), 1);
    assert_eq!(href[0].text(), "WORKGROUP\\alice");
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_creates_new_file_lock_first() {
    let s = TestServer::start().await;
    s.mkcol("/docs/").await;
    // Probe: nothing there yet.
    let r = win(&s, "PROPFIND", "/docs/New%20Text%20Document.txt")
        .header("Depth", "0")
        .send()
        .await;
    assert_eq!(r.status, 404);

    // LOCK on the unmapped URL: 201, an empty locked resource.
    let r = win_lock(&s, "/docs/New%20Text%20Document.txt").await;
    let token = check_win_lock(&r, 201, "/docs/New%20Text%20Document.txt");
    assert_eq!(
        std::fs::read(s.root().join("docs/New Text Document.txt")).unwrap(),
        b""
    );

    // Another client cannot write it.
    let r = s.put("/docs/New%20Text%20Document.txt", "intruder").await;
    assert_eq!(r.status, 423);

    // PUT with the token fills it.
    let r = win(&s, "PUT", "/docs/New%20Text%20Document.txt")
        .header("If", &format!("(<{token}>)"))
        .header("Content-Type", "text/plain")
        .body("hello from windows")
        .send()
        .await;
    assert!((200..300).contains(&r.status), "PUT {}", r.status);

    win_proppatch(
        &s,
        "/docs/New%20Text%20Document.txt",
        &token,
        "Thu, 09 Oct 2025 17:54:43 GMT",
    )
    .await;

    // UNLOCK with angle brackets.
    let r = win(&s, "UNLOCK", "/docs/New%20Text%20Document.txt")
        .header("Cache-Control", "no-cache")
        .header("Pragma", "no-cache")
        .header("Lock-Token", &format!("<{token}>"))
        .send()
        .await;
    assert_eq!(r.status, 204);

    // An ordinary file now, properties stored, no lock.
    assert_eq!(
        &s.get("/docs/New%20Text%20Document.txt").await.body[..],
        b"hello from windows"
    );
    let p = s
        .props_of("/docs/New%20Text%20Document.txt", &win32_names())
        .await;
    let (st, e) = p
        .prop(&QName::new(MS, "Win32LastModifiedTime"))
        .expect("stored");
    assert_eq!(
        (st, e.text().as_str()),
        (200, "Thu, 09 Oct 2025 17:54:43 GMT")
    );
    let (st, e) = p
        .prop(&QName::new(MS, "Win32FileAttributes"))
        .expect("stored");
    assert_eq!((st, e.text().as_str()), (200, "00000020"));
    assert!(s
        .lockdiscovery("/docs/New%20Text%20Document.txt")
        .await
        .is_empty());

    // The same again, ending with an UNLOCK whose token has no angle brackets.
    let r = win_lock(&s, "/docs/second.txt").await;
    let token = check_win_lock(&r, 201, "/docs/second.txt");
    let r = win(&s, "PUT", "/docs/second.txt")
        .header("If", &format!("(<{token}>)"))
        .body("two")
        .send()
        .await;
    assert!((200..300).contains(&r.status));
    win_proppatch(
        &s,
        "/docs/second.txt",
        &token,
        "Fri, 10 Oct 2025 08:00:00 GMT",
    )
    .await;
    let r = win(&s, "UNLOCK", "/docs/second.txt")
        .header("Lock-Token", &token)
        .send()
        .await;
    assert_eq!(r.status, 204, "Lock-Token without angle brackets");
    assert!(s.lockdiscovery("/docs/second.txt").await.is_empty());
    assert_eq!(s.put("/docs/second.txt", "free").await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_copies_file_in_put_first() {
    let s = TestServer::start().await;
    s.mkcol("/out/").await;
    let path = "/out/datafile.txt";
    let r = win(&s, "PROPFIND", path)
        .header("Depth", "0")
        .header("Content-Length", "0")
        .send()
        .await;
    assert_eq!(r.status, 404);

    // PUT with Content-Length: 0 creates the file.
    let r = win(&s, "PUT", path)
        .header("Content-Length", "0")
        .send()
        .await;
    assert_eq!(r.status, 201);

    // LOCK the now existing file: 200.
    let token = check_win_lock(&win_lock(&s, path).await, 200, path);
    win_proppatch(&s, path, &token, "Wed, 04 Nov 2020 14:34:22 GMT").await;

    let content = random_bytes(100_000, 42);
    let r = win(&s, "PUT", path)
        .header("If", &format!("(<{token}>)"))
        .header("Content-Length", &content.len().to_string())
        .body(content.clone())
        .send()
        .await;
    assert_eq!(r.status, 204);
    win_proppatch(&s, path, &token, "Wed, 04 Nov 2020 14:34:23 GMT").await;

    let r = win(&s, "UNLOCK", path)
        .header("Lock-Token", &format!("<{token}>"))
        .send()
        .await;
    assert_eq!(r.status, 204);

    // PROPFIND Depth 0 of the parent with an empty body (allprop).
    let r = win(&s, "PROPFIND", "/out/")
        .header("Depth", "0")
        .header("Content-Length", "0")
        .send()
        .await;
    let ms = r.ms();
    assert!(ms.only().is_collection());
    let g = s.get(path).await;
    assert!(g.body[..] == content[..]);
    let p = s
        .props_of(path, &[QName::new(MS, "Win32LastModifiedTime")])
        .await;
    assert_eq!(
        p.prop(&QName::new(MS, "Win32LastModifiedTime"))
            .map(|(st, e)| (st, e.text())),
        Some((200, "Wed, 04 Nov 2020 14:34:23 GMT".to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_saves_over_existing_file() {
    let s = TestServer::start().await;
    s.put("/report.txt", "version 1").await;
    let token = check_win_lock(&win_lock(&s, "/report.txt").await, 200, "/report.txt");

    // Another client is locked out meanwhile.
    assert_eq!(s.put("/report.txt", "intruder").await.status, 423);
    assert_eq!(
        s.lock(
            "/report.txt",
            Some("0"),
            None,
            &lockinfo("exclusive", None),
            &[]
        )
        .await
        .status,
        423
    );

    let r = win(&s, "PUT", "/report.txt")
        .header("If", &format!("(<{token}>)"))
        .body("version 2")
        .send()
        .await;
    assert_eq!(r.status, 204);
    win_proppatch(&s, "/report.txt", &token, "Sat, 11 Oct 2025 09:00:00 GMT").await;
    let r = win(&s, "UNLOCK", "/report.txt")
        .header("Lock-Token", &token)
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(&s.get("/report.txt").await.body[..], b"version 2");
    // Unlocked: anyone may write again, and the old token matches nothing.
    let r = s
        .req("PUT", "/report.txt")
        .header("If", &format!("(<{token}>)"))
        .body("stale")
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.put("/report.txt", "version 3").await.status, 204);
}

/// Office's own HTTP stack: the headers it adds to every request.
fn office<'a>(s: &'a TestServer, method: &str, path: &str) -> Req<'a> {
    s.req(method, path)
        .header("User-Agent", OFFICE_UA)
        .header("X-Office-Major-Version", "16")
        .header("translate", "f")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_lock_refresh_save_unlock() {
    let s = TestServer::start().await;
    s.put("/Budget.docx", random_bytes(5000, 1)).await;

    let r = office(&s, "GET", "/Budget.docx")
        .header("Depth", "0")
        .send()
        .await;
    assert_eq!(r.status, 200);

    let r = office(&s, "LOCK", "/Budget.docx")
        .header("Timeout", "Second-3600")
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .body(lockinfo(
            "exclusive",
            Some("<D:href>alice@example.com</D:href>"),
        ))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let token = r.lock_token();
    assert_eq!(r.lock_body()[0].token, token);

    // A second Office instance sees the lock and opens read-only.
    let r = office(&s, "LOCK", "/Budget.docx")
        .header("Timeout", "Second-3600")
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .body(lockinfo(
            "exclusive",
            Some("<D:href>bob@example.com</D:href>"),
        ))
        .send()
        .await;
    assert_eq!(r.status, 423);
    assert_eq!(r.condition_hrefs("no-conflicting-lock"), ["/Budget.docx"]);
    let ld = s.lockdiscovery("/Budget.docx").await;
    assert_eq!(ld.len(), 1);
    assert_eq!(
        ld[0].token, token,
        "the lock holder is visible to the reader"
    );

    // The periodic refresh: bodyless LOCK with If.
    let r = office(&s, "LOCK", "/Budget.docx")
        .header("Timeout", "Second-3600")
        .header("If", &format!("(<{token}>)"))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let refreshed = r.lock_body();
    assert_eq!(refreshed.len(), 1);
    assert_eq!(refreshed[0].token, token, "a refresh keeps the token");

    // Save, then close.
    let new = random_bytes(7000, 2);
    let r = office(&s, "PUT", "/Budget.docx")
        .header("If", &format!("(<{token}>)"))
        .body(new.clone())
        .send()
        .await;
    assert_eq!(r.status, 204);
    let r = office(&s, "UNLOCK", "/Budget.docx")
        .header("Lock-Token", &format!("<{token}>"))
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert!(s.get("/Budget.docx").await.body[..] == new[..]);
    assert!(s.lockdiscovery("/Budget.docx").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_owner_file_sequence() {
    // Explorer-opened Office documents write a `~$` owner file next to the document.
    let s = TestServer::start().await;
    s.put("/test.docx", "doc").await;
    let owner = "/~%24test.docx";
    assert_eq!(win(&s, "PUT", owner).body("").send().await.status, 201);
    let token = check_win_lock(&win_lock(&s, owner).await, 200, "/~$test.docx");
    assert_eq!(win(&s, "HEAD", owner).send().await.status, 200);
    let r = win(&s, "PUT", owner)
        .header("If", &format!("(<{token}>)"))
        .body("alice")
        .send()
        .await;
    assert_eq!(r.status, 204);
    win_proppatch(&s, owner, &token, "Mon, 23 Jul 2018 10:00:00 GMT").await;
    let r = win(&s, "UNLOCK", owner)
        .header("Lock-Token", &format!("<{token}>"))
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        std::fs::read(s.root().join("~$test.docx")).unwrap(),
        b"alice"
    );
    // Closing the document deletes the owner file.
    assert_eq!(win(&s, "DELETE", owner).send().await.status, 204);
    assert_eq!(dir_names(s.root()), ["test.docx"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_put_with_only_lock_token_is_refused() {
    // Office 2016 was seen sending the token in a Lock-Token header on PUT instead of If (an
    // MS-WDV extension for servers that advertise X-MSDAVEXT, which davit does not). By RFC
    // 4918 no token was submitted: 423, and the document stays as it was.
    let s = TestServer::start().await;
    s.put("/a.docx", "saved").await;
    let token = s.lock_ok("/a.docx", "exclusive", Some("0")).await;
    let r = office(&s, "PUT", "/a.docx")
        .header("Lock-Token", &format!("<{token}>"))
        .body("unsaved")
        .send()
        .await;
    assert_eq!(r.status, 423);
    assert_eq!(r.condition_hrefs("lock-token-submitted"), ["/a.docx"]);
    assert_eq!(&s.get("/a.docx").await.body[..], b"saved");
    assert_eq!(s.unlock("/a.docx", &token).await.status, 204);
}

/// A Finder request with its User-Agent and Accept.
fn finder<'a>(s: &'a TestServer, method: &str, path: &str) -> Req<'a> {
    s.req(method, path)
        .header("User-Agent", FINDER_UA)
        .header("Accept", "*/*")
}

/// Finder's LOCK; WebDAVFS reads the token from the body.
async fn finder_lock(s: &TestServer, path: &str) -> String {
    let r = finder(s, "LOCK", path)
        .header("Depth", "0")
        .header("Timeout", "Second-600")
        .header("Content-Type", "text/xml; charset=\"utf-8\"")
        .body(FINDER_LOCKINFO)
        .send()
        .await;
    assert_eq!(r.status, 200, "LOCK {path}: {}", r.text());
    let locks = r.lock_body();
    assert_eq!(locks.len(), 1);
    let l = &locks[0];
    assert_eq!(l.depth, "0");
    assert_eq!(l.scope, "exclusive");
    assert!(l.seconds().is_some_and(|n| n > 590 && n <= 600), "{l:?}");
    let owner = l.owner.as_ref().expect("owner kept");
    let href: Vec<_> = owner.elements().filter(|e| e.name.is_dav("href")).collect();
    assert_eq!(href[0].text(), "http://www.apple.com/webdav_fs/");
    assert_eq!(r.lock_token(), l.token);
    l.token.clone()
}

/// The chunked PUT of WebDAVFS, as raw bytes: no Content-Length, the size announced in
/// X-Expected-Entity-Length, the token in If. `announced` may differ from the real size.
fn finder_put(
    s: &TestServer,
    path: &str,
    token: &str,
    pieces: &[&[u8]],
    announced: usize,
) -> Vec<u8> {
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {FINDER_UA}\r\nAccept: */*\r\nIf: (<{token}>)\r\nX-Expected-Entity-Length: {announced}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.host()
    )
    .into_bytes();
    for p in pieces {
        req.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        req.extend_from_slice(p);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

/// Finder's whole copy of one file: probe, empty PUT, LOCK, chunked PUT, PROPFIND of the
/// validators, refresh, UNLOCK.
async fn finder_copy(s: &TestServer, path: &str, content: &[u8]) {
    assert_eq!(
        finder(s, "PROPFIND", path)
            .header("Depth", "0")
            .send()
            .await
            .status,
        404
    );
    let r = finder(s, "PUT", path).send().await;
    assert_eq!(r.status, 201, "empty PUT creates {path}");
    let token = finder_lock(s, path).await;
    // Nobody else may write the file while Finder streams it.
    assert_eq!(s.put(path, "intruder").await.status, 423);

    let (a, b) = content.split_at(content.len() / 3);
    let r = RawResp::parse(
        &s.raw(&finder_put(s, path, &token, &[a, b], content.len()))
            .await,
    );
    assert!(
        r.status == 201 || r.status == 204,
        "chunked PUT {path}: {}",
        r.status
    );
    let etag = r.header("etag").map(str::to_owned);

    // PROPFIND Depth 0 for the cache validators.
    let r = finder(s, "PROPFIND", path)
        .header("Content-Type", "text/xml")
        .header("Depth", "0")
        .body("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propfind xmlns:D=\"DAV:\">\n<D:prop>\n<D:getlastmodified/>\n<D:getetag/>\n</D:prop>\n</D:propfind>\n")
        .send()
        .await;
    let ms = r.ms();
    let resp = ms.only();
    assert!(resp.dav_text("getlastmodified").is_some());
    if let Some(e) = etag {
        assert_eq!(resp.dav_text("getetag"), Some(e));
    }

    // Refresh while the file is open: bodyless LOCK with If.
    let r = finder(s, "LOCK", path)
        .header("Depth", "0")
        .header("Timeout", "Second-600")
        .header("Content-Type", "text/xml")
        .header("If", &format!("(<{token}>)"))
        .send()
        .await;
    assert_eq!(r.status, 200, "refresh: {}", r.text());
    assert_eq!(r.lock_body()[0].token, token);

    let r = finder(s, "UNLOCK", path)
        .header("Lock-Token", &format!("<{token}>"))
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert!(
        s.get(path).await.body[..] == content[..],
        "{path} stored whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finder_copies_file_in_with_appledouble() {
    let s = TestServer::start().await;
    s.mkcol("/Photos/").await;
    // Finder's probes for names that do not exist are plain 404s.
    for probe in ["/Photos/._.", "/Photos/.DS_Store", "/Photos/._.DS_Store"] {
        let r = finder(&s, "PROPFIND", probe)
            .header("Depth", "0")
            .send()
            .await;
        assert_eq!(r.status, 404, "{probe}");
    }
    let photo = random_bytes(200_000, 9);
    finder_copy(&s, "/Photos/beach.jpg", &photo).await;
    let mut apple = APPLEDOUBLE.to_vec();
    apple.extend(random_bytes(4000, 10));
    finder_copy(&s, "/Photos/._beach.jpg", &apple).await;

    // Both are ordinary files, listed side by side, neither locked.
    let ms = s
        .propfind_ms(
            "/Photos/",
            Some("1"),
            &prop_body(&[
                QName::dav("getcontentlength"),
                QName::dav("lockdiscovery"),
                QName::new("http://www.apple.com/webdav_fs/props/", "appledoubleheader"),
            ]),
        )
        .await;
    assert_eq!(
        ms.hrefs(),
        ["/Photos/", "/Photos/._beach.jpg", "/Photos/beach.jpg"]
    );
    let len = |h: &str| ms.get(h).dav_text("getcontentlength");
    assert_eq!(len("/Photos/beach.jpg"), Some(photo.len().to_string()));
    assert_eq!(len("/Photos/._beach.jpg"), Some(apple.len().to_string()));
    for h in ["/Photos/beach.jpg", "/Photos/._beach.jpg"] {
        let ld = ms.get(h).dav("lockdiscovery").expect("lockdiscovery");
        assert!(activelocks(ld).is_empty(), "{h} unlocked");
    }
    assert_eq!(
        std::fs::read(s.root().join("Photos/._beach.jpg")).unwrap()[..4],
        [0x00, 0x05, 0x16, 0x07]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finder_interleaves_locks_on_file_and_companion() {
    // Finder holds locks on a file and its `._` companion at the same time.
    let s = TestServer::start().await;
    assert_eq!(finder(&s, "PUT", "/qwe.txt").send().await.status, 201);
    assert_eq!(finder(&s, "PUT", "/._qwe.txt").send().await.status, 201);
    let t1 = finder_lock(&s, "/qwe.txt").await;
    let t2 = finder_lock(&s, "/._qwe.txt").await;
    assert_ne!(t1, t2);
    // Each token only unlocks its own file.
    let r = s.put("/._qwe.txt", "x").await;
    assert_eq!(r.status, 423);
    let r = RawResp::parse(&s.raw(&finder_put(&s, "/._qwe.txt", &t1, &[b"x"], 1)).await);
    // The If header names a lock that does not cover ._qwe.txt: false (412), or, were it
    // ignored, the missing token (423). Either way nothing is written.
    assert!(
        r.status == 412 || r.status == 423,
        "the token of qwe.txt does not unlock ._qwe.txt: {}",
        r.status
    );
    assert_eq!(&s.get("/._qwe.txt").await.body[..], b"");
    let r = RawResp::parse(
        &s.raw(&finder_put(
            &s,
            "/._qwe.txt",
            &t2,
            &[APPLEDOUBLE],
            APPLEDOUBLE.len(),
        ))
        .await,
    );
    assert_eq!(r.status, 204);
    let r = RawResp::parse(&s.raw(&finder_put(&s, "/qwe.txt", &t1, &[b"qwe"], 3)).await);
    assert_eq!(r.status, 204);
    assert_eq!(s.unlock("/._qwe.txt", &t2).await.status, 204);
    // qwe.txt stays locked until its own UNLOCK.
    assert_eq!(s.put("/qwe.txt", "x").await.status, 423);
    assert_eq!(s.unlock("/qwe.txt", &t1).await.status, 204);
    assert_eq!(&s.get("/qwe.txt").await.body[..], b"qwe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finder_save_cut_short_keeps_file() {
    let s = TestServer::start().await;
    let original = random_bytes(3000, 5);
    s.put("/notes.txt", original.clone()).await;
    let token = finder_lock(&s, "/notes.txt").await;

    // The chunked body ends properly but is shorter than announced: refused, file kept.
    let part = random_bytes(600, 6);
    let r = RawResp::parse(
        &s.raw(&finder_put(&s, "/notes.txt", &token, &[&part], 1000))
            .await,
    );
    assert!((400..500).contains(&r.status), "status {}", r.status);
    assert!(s.get("/notes.txt").await.body[..] == original[..]);

    // The connection breaks in the middle of a chunk: file kept, no debris.
    let mut sock = s.connect().await;
    let head = format!(
        "PUT /notes.txt HTTP/1.1\r\nHost: {}\r\nUser-Agent: {FINDER_UA}\r\nAccept: */*\r\nIf: (<{token}>)\r\nX-Expected-Entity-Length: 1000\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n",
        s.host()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&part).await.unwrap();
    sock.flush().await.unwrap();
    let tmp = s.state_dir().join("tmp");
    eventually("the upload is under way", || !dir_names(&tmp).is_empty()).await;
    drop(sock);
    eventually("the broken upload is cleaned up", || {
        dir_names(&tmp).is_empty()
    })
    .await;
    assert!(s.get("/notes.txt").await.body[..] == original[..]);
    assert_eq!(dir_names(s.root()), ["notes.txt"]);

    // The lock is still held; Finder retries the whole body and succeeds.
    let full = random_bytes(1000, 7);
    let r = RawResp::parse(
        &s.raw(&finder_put(
            &s,
            "/notes.txt",
            &token,
            &[&full[..400], &full[400..]],
            1000,
        ))
        .await,
    );
    assert_eq!(r.status, 204);
    assert!(s.get("/notes.txt").await.body[..] == full[..]);
    assert_eq!(s.unlock("/notes.txt", &token).await.status, 204);
}
