//! PUT: create and replace, conflicts, streamed bodies (chunked, 100-continue), broken uploads.

use crate::common::*;
use tokio::io::AsyncWriteExt;

/// A chunked body in the given pieces.
fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Uploads in progress: named temporary files in the state directory (a replaced file's
/// body) and unnamed ones this process holds open in the served tree (a new file's body, an
/// `O_TMPFILE` whose `/proc/self/fd` link reads `<dir>/#<inode> (deleted)`).
fn tmp_names(s: &TestServer) -> Vec<String> {
    staged_uploads(s.root(), &s.state_dir())
}

fn staged_uploads(root: &std::path::Path, state_dir: &std::path::Path) -> Vec<String> {
    let mut names = dir_names(&state_dir.join("tmp"));
    let root = root.canonicalize().expect("root");
    let root = root.to_string_lossy().into_owned();
    for fd in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
    {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if target.starts_with(&root) && target.contains("/#") && target.ends_with(" (deleted)") {
            names.push(target);
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_then_no_content() {
    let s = TestServer::start().await;
    let r = s.put("/n.txt", "first").await;
    assert_eq!(r.status, 201);
    let put_etag = r.header("etag").map(str::to_owned);
    let g = s.get("/n.txt").await;
    if let Some(e) = put_etag {
        assert_eq!(
            g.header("etag"),
            Some(e.as_str()),
            "PUT's ETag describes the stored bytes"
        );
    }
    let r = s.put("/n.txt", "second").await;
    assert_eq!(r.status, 204);
    assert_eq!(&s.get("/n.txt").await.body[..], b"second");
    // Shorter content truncates, nothing of the old body remains.
    s.put("/n.txt", "3").await;
    assert_eq!(&s.get("/n.txt").await.body[..], b"3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_parent_is_409_and_creates_nothing() {
    let s = TestServer::start().await;
    assert_eq!(s.put("/no/such/f", "x").await.status, 409);
    assert_eq!(s.get("/no/").await.status, 404);
    assert!(!s.root().join("no").exists());
    s.put("/file.txt", "x").await;
    assert_eq!(s.put("/file.txt/x", "y").await.status, 409);
    assert_eq!(&s.get("/file.txt").await.body[..], b"x");
    assert_eq!(dir_names(s.root()), vec!["file.txt"]);
    // Preconditions do not turn the conflict into a 412.
    let r = s
        .req("PUT", "/no/f")
        .header("If-Match", "*")
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_on_a_collection_is_405() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/member", "m").await;
    for path in ["/c", "/c/", "/"] {
        let r = s.put(path, "body").await;
        assert_eq!(r.status, 405, "PUT {path}");
        assert!(r.header("allow").is_some(), "405 carries Allow");
    }
    assert!(s.root().join("c").is_dir());
    assert_eq!(&s.get("/c/member").await.body[..], b"m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_is_stored_completely() {
    let s = TestServer::start().await;
    let a = random_bytes(70_000, 7);
    let b = b"middle".to_vec();
    let c = random_bytes(1234, 8);
    let mut req = format!(
        "PUT /chunked.bin HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.host()
    )
    .into_bytes();
    req.extend(chunked(&[&a, &b, &c]));
    let r = s.raw_resp(&req).await;
    assert_eq!(r.status, 201);
    let whole: Vec<u8> = [a, b, c].concat();
    let g = s.get("/chunked.bin").await;
    assert!(g.body[..] == whole[..], "chunked body stored differently");
    let p = s
        .props_of(
            "/chunked.bin",
            &[davit_proto::xml::QName::dav("getcontentlength")],
        )
        .await;
    assert_eq!(
        p.dav_text("getcontentlength"),
        Some(whole.len().to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue() {
    let s = TestServer::start().await;
    let mut sock = s.connect().await;
    let head = format!(
        "PUT /e.txt HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        s.host()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let interim = read_until(&mut sock, b"\r\n\r\n").await;
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "got {:?}",
        String::from_utf8_lossy(&interim)
    );
    sock.write_all(b"hello").await.unwrap();
    let rest = read_to_close(&mut sock).await;
    assert_eq!(RawResp::parse(&rest).status, 201);
    assert_eq!(&s.get("/e.txt").await.body[..], b"hello");

    // When the answer is known from the headers, it comes without the body being sent.
    let mut sock = s.connect().await;
    let head = format!(
        "PUT /no/parent HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        s.host()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until(&mut sock, b"\r\n\r\n").await;
    let r = RawResp::parse(&answer);
    assert_eq!(r.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_upload_keeps_old_content_and_leaves_no_debris() {
    let s = TestServer::start().await;
    s.put("/keep.txt", "old content").await;
    let before = dir_names(s.root());
    let mut sock = s.connect().await;
    let head = format!(
        "PUT /keep.txt HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n",
        s.host()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&[b'x'; 50]).await.unwrap();
    sock.flush().await.unwrap();
    // The upload is under way: its temporary file exists.
    eventually("the temporary upload file appears", || {
        !tmp_names(&s).is_empty()
    })
    .await;
    drop(sock);
    eventually("the temporary upload file is removed", || {
        tmp_names(&s).is_empty()
    })
    .await;
    assert_eq!(&s.get("/keep.txt").await.body[..], b"old content");
    assert_eq!(dir_names(s.root()), before, "no debris in the root");

    // A new resource aborted the same way does not appear at all.
    let mut sock = s.connect().await;
    let head = format!(
        "PUT /new.txt HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n",
        s.host()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&[b'y'; 50]).await.unwrap();
    eventually("the temporary upload file appears", || {
        !tmp_names(&s).is_empty()
    })
    .await;
    drop(sock);
    eventually("the temporary upload file is removed", || {
        tmp_names(&s).is_empty()
    })
    .await;
    assert_eq!(s.get("/new.txt").await.status, 404);
    assert_eq!(dir_names(s.root()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_chunked_upload_keeps_old_content() {
    let s = TestServer::start().await;
    s.put("/keep.txt", "old content").await;
    let mut sock = s.connect().await;
    let head = format!(
        "PUT /keep.txt HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n",
        s.host()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    eventually("the temporary upload file appears", || {
        !tmp_names(&s).is_empty()
    })
    .await;
    drop(sock);
    eventually("the temporary upload file is removed", || {
        tmp_names(&s).is_empty()
    })
    .await;
    assert_eq!(&s.get("/keep.txt").await.body[..], b"old content");
    assert_eq!(dir_names(s.root()), vec!["keep.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_expected_entity_length() {
    let s = TestServer::start().await;
    s.put("/finder.bin", "old").await;
    // Shorter than announced: refused, old content kept.
    let mut req = format!(
        "PUT /finder.bin HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nX-Expected-Entity-Length: 100\r\nConnection: close\r\n\r\n",
        s.host()
    )
    .into_bytes();
    req.extend(chunked(&[&[b'a'; 30], &[b'b'; 20]]));
    let r = s.raw_resp(&req).await;
    assert!((400..500).contains(&r.status), "status {}", r.status);
    assert_eq!(&s.get("/finder.bin").await.body[..], b"old");
    assert!(tmp_names(&s).is_empty());
    assert_eq!(dir_names(s.root()), vec!["finder.bin"]);

    // Longer than announced: refused as well.
    let mut req = format!(
        "PUT /finder.bin HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nX-Expected-Entity-Length: 10\r\nConnection: close\r\n\r\n",
        s.host()
    )
    .into_bytes();
    req.extend(chunked(&[&[b'c'; 30]]));
    let r = s.raw_resp(&req).await;
    assert!((400..500).contains(&r.status), "status {}", r.status);
    assert_eq!(&s.get("/finder.bin").await.body[..], b"old");

    // Exactly as announced: stored.
    let mut req = format!(
        "PUT /finder.bin HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nX-Expected-Entity-Length: 50\r\nConnection: close\r\n\r\n",
        s.host()
    )
    .into_bytes();
    req.extend(chunked(&[&[b'a'; 30], &[b'b'; 20]]));
    let r = s.raw_resp(&req).await;
    assert_eq!(r.status, 204);
    let body = s.get("/finder.bin").await.body;
    assert_eq!(body.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_put() {
    let s = TestServer::start().await;
    s.put("/f", "v1").await;
    let r = s
        .req("PUT", "/f")
        .header("If-None-Match", "*")
        .body("v2")
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(&s.get("/f").await.body[..], b"v1");
    let r = s
        .req("PUT", "/g")
        .header("If-None-Match", "*")
        .body("g")
        .send()
        .await;
    assert_eq!(r.status, 201);

    let r = s
        .req("PUT", "/f")
        .header("If-Match", "\"stale\"")
        .body("v2")
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(&s.get("/f").await.body[..], b"v1");
    let r = s
        .req("PUT", "/new")
        .header("If-Match", "*")
        .body("n")
        .send()
        .await;
    assert_eq!(r.status, 412, "If-Match: * on an unmapped URL");
    assert_eq!(s.get("/new").await.status, 404);

    let etag = s.get("/f").await.header("etag").unwrap().to_owned();
    let r = s
        .req("PUT", "/f")
        .header("If-Match", &etag)
        .body("v2")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(&s.get("/f").await.body[..], b"v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_properties_survive_overwrite() {
    let s = TestServer::start().await;
    s.put("/f", "v1").await;
    s.set_prop("/f", "p", "kept").await;
    assert_eq!(s.put("/f", "v2").await.status, 204);
    assert_eq!(s.z_prop("/f", "p").await.as_deref(), Some("kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_range_put_is_refused() {
    let s = TestServer::start().await;
    s.put("/f", "0123456789").await;
    let r = s
        .req("PUT", "/f")
        .header("Content-Range", "bytes 0-3/10")
        .body("abcd")
        .send()
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(&s.get("/f").await.body[..], b"0123456789");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_over_max_upload_is_413() {
    let s = TestServer::with_config(davit_server::DavConfig {
        max_upload: Some(10),
        ..Default::default()
    })
    .await;
    assert_eq!(s.put("/small", "0123456789").await.status, 201);
    assert_eq!(s.put("/big", "0123456789A").await.status, 413);
    assert_eq!(s.get("/big").await.status, 404);
    // Without Content-Length the limit holds as well.
    let mut req = format!(
        "PUT /big HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.host()
    )
    .into_bytes();
    req.extend(chunked(&[b"012345", b"6789AB"]));
    assert_eq!(s.raw_resp(&req).await.status, 413);
    assert_eq!(s.get("/big").await.status, 404);
    eventually("no temporary files", || tmp_names(&s).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_upload_finishes_during_graceful_shutdown() {
    let s = TestServer::start().await;
    let (host, root, state) = (s.host(), s.root().to_path_buf(), s.state_dir());
    let mut sock = s.connect().await;
    let head = format!("PUT /late.bin HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\nConnection: close\r\n\r\n");
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&[1u8; 50]).await.unwrap();
    eventually("the upload is under way", || {
        !staged_uploads(&root, &state).is_empty()
    })
    .await;
    let stopping = tokio::spawn(s.stop());
    sock.write_all(&[2u8; 50]).await.unwrap();
    let r = RawResp::parse(&read_to_close(&mut sock).await);
    assert_eq!(r.status, 201);
    let _dirs = stopping.await.unwrap();
    let stored = std::fs::read(root.join("late.bin")).unwrap();
    assert_eq!(stored, [[1u8; 50], [2u8; 50]].concat());
    assert!(
        staged_uploads(&root, &state).is_empty(),
        "no temporary files left after shutdown"
    );
}

/// A PUT's Content-Type is kept when it says more than the name, served by GET and
/// `getcontenttype`, follows COPY, and is never visible as a dead property or settable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_given_at_put_is_kept() {
    let s = TestServer::start().await;
    let r = s
        .req("PUT", "/data.bin")
        .header("Content-Type", "text/markdown; charset=utf-8")
        .body("# hi")
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        s.get("/data.bin").await.header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
    let ms = s.propfind_ms("/data.bin", Some("0"), "").await;
    let r0 = &ms.responses[0];
    assert_eq!(
        r0.dav_text("getcontenttype").as_deref(),
        Some("text/markdown; charset=utf-8")
    );
    assert!(
        r0.propstats
            .iter()
            .all(|ps| ps.props.iter().all(|p| p.name.ns != "urn:davit:internal")),
        "davit's own property leaked into allprop"
    );
    assert_eq!(
        s.copy_move("COPY", "/data.bin", "/copy.bin", &[])
            .await
            .status,
        201
    );
    assert_eq!(
        s.get("/copy.bin").await.header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
    // Clients cannot set it.
    let r = s
        .proppatch(
            "/data.bin",
            r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><i:content-type xmlns:i="urn:davit:internal">x/y</i:content-type></D:prop></D:set></D:propertyupdate>"#,
        )
        .await;
    assert_eq!(r.status, 207);
    assert_eq!(
        s.get("/data.bin").await.header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
    // A later PUT without a telling type goes back to the name's type; octet-stream says
    // nothing.
    let r = s
        .req("PUT", "/data.bin")
        .header("Content-Type", "application/octet-stream")
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        s.get("/data.bin").await.header("content-type"),
        Some("application/octet-stream")
    );
    let r = s
        .req("PUT", "/notes.txt")
        .header("Content-Type", "application/octet-stream")
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        s.get("/notes.txt").await.header("content-type"),
        Some("text/plain")
    );
}
