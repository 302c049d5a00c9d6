//! Resumable uploads: `PUT` with `Upload-Complete: ?0` makes an upload resource, `HEAD` tells
//! its offset, `PATCH` appends from there (keeping what arrived when the connection breaks)
//! and completes it into the target through an ordinary PUT; nothing is at the target before,
//! other users cannot see it, locks hold, a restart keeps it, expiry and DELETE remove it,
//! limits and quotas refuse it.

use crate::common::*;
use davit_server::quota::QuotaConfig;
use davit_server::DavConfig;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Starts an upload of `first` for `path`; the upload resource's path.
async fn create(s: &TestServer, path: &str, first: &[u8], who: Option<&str>) -> String {
    let r = s
        .req("PUT", path)
        .who(who)
        .header("Upload-Complete", "?0")
        .body(first.to_vec())
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("upload-offset"),
        Some(first.len().to_string().as_str())
    );
    assert_eq!(r.header("upload-complete"), Some("?0"));
    let loc = r.header("location").expect("Location").to_owned();
    let id = loc.strip_prefix("/.davit/uploads/").expect("upload prefix");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{loc}"
    );
    loc
}

async fn offset(s: &TestServer, upload: &str, who: Option<&str>) -> (u16, Option<u64>) {
    let r = s.req("HEAD", upload).who(who).send().await;
    (
        r.status,
        r.header("upload-offset").and_then(|v| v.parse().ok()),
    )
}

async fn append(s: &TestServer, upload: &str, at: usize, data: &[u8], complete: bool) -> Resp {
    s.req("PATCH", upload)
        .header("Upload-Offset", &at.to_string())
        .header("Upload-Complete", if complete { "?1" } else { "?0" })
        .header("Content-Type", "application/partial-upload")
        .body(data.to_vec())
        .send()
        .await
}

/// The RFC 9457 problem document of a response, checking its type is the draft's `kind`.
fn problem(r: &Resp, kind: &str) -> serde_json::Value {
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("problem JSON");
    assert_eq!(
        doc["type"],
        format!("https://iana.org/assignments/http-problem-types#{kind}")
    );
    doc
}

fn uploads_dir(s: &TestServer) -> PathBuf {
    s.state_dir().join("uploads")
}

/// The size of the one upload's bytes on disk.
fn part_len(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("uploads dir")
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .and_then(|e| e.metadata().ok())
        .map_or(0, |m| m.len())
}

/// Polls the uploads directory until `cond` holds of the part's size (the server writes it
/// at its own pace), for up to 30 seconds.
async fn wait_for_part(dir: &Path, what: &str, cond: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = part_len(dir);
        if cond(n) {
            return n;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_three_parts_becomes_the_target_only_when_complete() {
    let s = TestServer::start().await;
    s.mkcol("/dir/").await;
    let body = pattern(3_000_000);
    let upload = create(&s, "/dir/big%20%C3%BC.bin", &body[..1_000_000], None).await;
    let head = s.head(&upload).await;
    assert_eq!(head.status, 204);
    assert_eq!(head.header("upload-offset"), Some("1000000"));
    assert_eq!(head.header("upload-complete"), Some("?0"));
    assert_eq!(head.header("cache-control"), Some("no-store"));
    let limit = head.header("upload-limit").expect("Upload-Limit");
    let age: u64 = limit
        .strip_prefix("max-age=")
        .and_then(|n| n.parse().ok())
        .expect("max-age");
    assert!(age <= 86_400 && age > 86_000, "{limit}");
    // Nothing at the target, nothing in the listing, until the upload is complete.
    assert_eq!(s.get("/dir/big%20%C3%BC.bin").await.status, 404);
    let listed = s.propfind_ms("/dir/", Some("1"), "").await;
    assert_eq!(listed.responses.len(), 1, "only the collection itself");
    let root = s.propfind_ms("/", Some("infinity"), "").await;
    assert!(
        root.responses.iter().all(|r| !r.href.contains(".davit")),
        "the uploads never show"
    );
    // An append at the wrong offset is refused and told where the upload is.
    let wrong = append(&s, &upload, 999, &body[999..2_000_000], false).await;
    assert_eq!(wrong.status, 409);
    assert_eq!(wrong.header("upload-offset"), Some("1000000"));
    let doc = problem(&wrong, "mismatching-upload-offset");
    assert_eq!(doc["expected-offset"], 1_000_000);
    assert_eq!(doc["provided-offset"], 999);
    let mid = append(&s, &upload, 1_000_000, &body[1_000_000..2_000_000], false).await;
    assert_eq!(mid.status, 204);
    assert_eq!(mid.header("upload-offset"), Some("2000000"));
    assert_eq!(mid.header("upload-complete"), Some("?0"));
    assert_eq!(s.get("/dir/big%20%C3%BC.bin").await.status, 404);
    let done = append(&s, &upload, 2_000_000, &body[2_000_000..], true).await;
    assert_eq!(done.status, 201, "{}", done.text());
    assert_eq!(done.header("upload-complete"), Some("?1"));
    let etag = done.header("etag").expect("ETag").to_owned();
    let got = s.get("/dir/big%20%C3%BC.bin").await;
    assert_eq!((got.status, got.body.len()), (200, body.len()));
    assert!(got.body[..] == body[..], "the bytes are the upload's");
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    // The bytes are gone; the upload still says it is complete (for a client that lost
    // the answer), refuses more and tells where the file went.
    let names = dir_names(&uploads_dir(&s));
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".json"), "{names:?}");
    let head = s.head(&upload).await;
    assert_eq!(head.status, 204);
    assert_eq!(head.header("upload-complete"), Some("?1"));
    assert_eq!(head.header("upload-offset"), Some("3000000"));
    let again = append(&s, &upload, 3_000_000, b"", true).await;
    assert_eq!(again.status, 410);
    assert_eq!(again.header("location"), Some("/dir/big%20%C3%BC.bin"));
    problem(&again, "completed-upload");
    let more = append(&s, &upload, 3_000_000, b"more", true).await;
    assert_eq!(more.status, 400);
    problem(&more, "inconsistent-upload-length");
    assert_eq!(s.req("DELETE", &upload).send().await.status, 204);
    assert!(dir_names(&uploads_dir(&s)).is_empty());
    assert_eq!(s.get("/dir/big%20%C3%BC.bin").await.status, 200);
    // Completing over an existing file replaces it (204, as a PUT).
    let again = create(&s, "/dir/big%20%C3%BC.bin", b"new ", None).await;
    let r = append(&s, &again, 4, b"content", true).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        &s.get("/dir/big%20%C3%BC.bin").await.body[..],
        b"new content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_append_keeps_what_arrived_and_a_restart_keeps_the_upload() {
    let s = TestServer::start().await;
    let body = pattern(2_000_000);
    let upload = create(&s, "/f.bin", &body[..100], None).await;
    // The client announces 1,999,900 bytes, sends 700,000 and goes away.
    let mut c = s.connect().await;
    let head = format!(
        "PATCH {upload} HTTP/1.1\r\nHost: {}\r\nUpload-Offset: 100\r\nUpload-Complete: ?1\r\n\
         Content-Type: application/partial-upload\r\nContent-Length: 1999900\r\n\r\n",
        s.host()
    );
    c.write_all(head.as_bytes()).await.expect("write");
    c.write_all(&body[100..700_100]).await.expect("write");
    c.flush().await.expect("flush");
    drop(c);
    // The server reads what was sent, notices the broken body and keeps every byte.
    wait_for_part(&uploads_dir(&s), "the broken append's bytes", |n| {
        n == 700_100
    })
    .await;
    assert_eq!(offset(&s, &upload, None).await, (204, Some(700_100)));
    assert_eq!(s.get("/f.bin").await.status, 404);
    // A restart on the same state directory still knows it.
    let dirs = s.stop().await;
    let s = TestServer::launch(dirs, Default::default()).await;
    assert_eq!(offset(&s, &upload, None).await, (204, Some(700_100)));
    let r = append(&s, &upload, 700_100, &body[700_100..], true).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(s.get("/f.bin").await.body[..] == body[..]);
}

/// A connection that died without the server noticing holds the upload until a new request
/// comes: that one stops the stalled append (which keeps its bytes) and goes on at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_request_takes_over_from_a_stalled_append() {
    let s = TestServer::start().await;
    let body = pattern(3_000_000);
    let upload = create(&s, "/stalled.bin", &body[..100], None).await;
    let mut stalled = s.connect().await;
    let head = format!(
        "PATCH {upload} HTTP/1.1\r\nHost: {}\r\nUpload-Offset: 100\r\nUpload-Complete: ?1\r\n\
         Content-Type: application/partial-upload\r\nContent-Length: 2999900\r\n\r\n",
        s.host()
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    stalled
        .write_all(&body[100..1_000_100])
        .await
        .expect("write");
    stalled.flush().await.expect("flush");
    // Some of it is on disk: the append is running, and then waits for the rest.
    wait_for_part(&uploads_dir(&s), "the stalled append's first bytes", |n| {
        n > 100
    })
    .await;
    let (status, at) = offset(&s, &upload, None).await;
    assert_eq!(status, 204);
    let at = at.expect("Upload-Offset") as usize;
    assert!((100..=1_000_100).contains(&at), "{at}");
    // The stalled request was told it lost its turn.
    let answer = read_until(&mut stalled, b"\r\n\r\n").await;
    assert!(answer.starts_with(b"HTTP/1.1 409 "), "{answer:?}");
    let r = append(&s, &upload, at, &body[at..], true).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(s.get("/stalled.bin").await.body[..] == body[..]);
}

/// A graceful shutdown does not wait for a large append to end: the append stops, keeps its
/// bytes and answers 503, and the restarted server goes on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_stops_running_appends_which_resume_after_it() {
    let s = TestServer::start().await;
    let body = pattern(2_000_000);
    let upload = create(&s, "/shut.bin", &body[..100], None).await;
    let mut running = s.connect().await;
    let head = format!(
        "PATCH {upload} HTTP/1.1\r\nHost: {}\r\nUpload-Offset: 100\r\nUpload-Complete: ?1\r\n\
         Content-Type: application/partial-upload\r\nContent-Length: 1999900\r\n\r\n",
        s.host()
    );
    running.write_all(head.as_bytes()).await.expect("write");
    running.write_all(&body[100..600_100]).await.expect("write");
    running.flush().await.expect("flush");
    wait_for_part(&uploads_dir(&s), "the append's first bytes", |n| n > 100).await;
    // `stop` fails the test if the drain takes its full 30 s.
    let dirs = s.stop().await;
    let answer = read_until(&mut running, b"\r\n\r\n").await;
    assert!(answer.starts_with(b"HTTP/1.1 503 "), "{answer:?}");
    let s = TestServer::launch(dirs, Default::default()).await;
    let (status, at) = offset(&s, &upload, None).await;
    assert_eq!(status, 204);
    let at = at.expect("Upload-Offset") as usize;
    assert!((101..=600_100).contains(&at), "{at}");
    let r = append(&s, &upload, at, &body[at..], true).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(s.get("/shut.bin").await.body[..] == body[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_their_users_and_locks_hold_at_the_commit() {
    let s = TestServer::with_auth(auth_with_users(&["alice", "bob"])).await;
    let upload = create(&s, "/a.txt", b"alice's ", Some("alice")).await;
    // Another user, or nobody, sees no upload there at all.
    assert_eq!(offset(&s, &upload, Some("bob")).await.0, 404);
    let r = s
        .req("PATCH", &upload)
        .user("bob")
        .header("Upload-Offset", "8")
        .header("Upload-Complete", "?1")
        .body(&b"x"[..])
        .send()
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        s.req("DELETE", &upload).user("bob").send().await.status,
        404
    );
    assert_eq!(offset(&s, &upload, None).await.0, 401);
    // bob locks the target meanwhile: alice's commit is refused, and the upload stays.
    let lock = s
        .req("LOCK", "/a.txt")
        .user("bob")
        .header("Content-Type", "application/xml")
        .body(lockinfo("exclusive", None))
        .send()
        .await;
    assert_eq!(lock.status, 201);
    let token = lock.header("lock-token").expect("token").to_owned();
    let r = s
        .req("PATCH", &upload)
        .user("alice")
        .header("Upload-Offset", "8")
        .header("Upload-Complete", "?1")
        .header("Content-Type", "application/partial-upload")
        .body(&b"text"[..])
        .send()
        .await;
    assert_eq!(r.status, 423);
    assert_eq!(r.header("upload-complete"), Some("?0"));
    assert_eq!(r.header("upload-offset"), Some("12"));
    assert_eq!(offset(&s, &upload, Some("alice")).await, (204, Some(12)));
    // A new upload onto the locked resource is refused at once.
    let r = s
        .req("PUT", "/a.txt")
        .user("alice")
        .header("Upload-Complete", "?0")
        .body(&b"x"[..])
        .send()
        .await;
    assert_eq!(r.status, 423);
    let un = s
        .req("UNLOCK", "/a.txt")
        .user("bob")
        .header("Lock-Token", &token)
        .send()
        .await;
    assert_eq!(un.status, 204);
    // The same completing append, sent again with nothing more, now commits (over the empty
    // resource bob's LOCK of an unmapped URL made: 204).
    let r = s
        .req("PATCH", &upload)
        .user("alice")
        .header("Upload-Offset", "12")
        .header("Upload-Complete", "?1")
        .header("Content-Type", "application/partial-upload")
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        &s.req("GET", "/a.txt").user("alice").send().await.body[..],
        b"alice's text"
    );
    // alice's own lock, its token in the creating request's If: the commit uses it too.
    let lock = s
        .req("LOCK", "/b.txt")
        .user("alice")
        .header("Content-Type", "application/xml")
        .body(lockinfo("exclusive", None))
        .send()
        .await;
    assert_eq!(lock.status, 201);
    let token = lock.header("lock-token").expect("token").to_owned();
    let r = s
        .req("PUT", "/b.txt")
        .user("alice")
        .header("Upload-Complete", "?0")
        .header("If", &format!("({token})"))
        .body(&b"locked "[..])
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let upload = r.header("location").expect("Location").to_owned();
    let r = s
        .req("PATCH", &upload)
        .user("alice")
        .header("Upload-Offset", "7")
        .header("Upload-Complete", "?1")
        .header("Content-Type", "application/partial-upload")
        .body(&b"and written"[..])
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        &s.req("GET", "/b.txt").user("alice").send().await.body[..],
        b"locked and written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_expired_uploads_are_gone() {
    let s = TestServer::start().await;
    let cancelled = create(&s, "/c.bin", b"abc", None).await;
    assert_eq!(s.req("DELETE", &cancelled).send().await.status, 204);
    assert_eq!(offset(&s, &cancelled, None).await.0, 404);
    assert_eq!(s.get("/c.bin").await.status, 404);
    assert!(dir_names(&uploads_dir(&s)).is_empty(), "its space is free");
    // An upload whose record says it is two days old is swept at start-up.
    let old = create(&s, "/old.bin", b"abc", None).await;
    let young = create(&s, "/young.bin", b"abc", None).await;
    let id = old.rsplit('/').next().expect("id");
    let record = uploads_dir(&s).join(format!("{id}.json"));
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("json");
    json["created"] = serde_json::json!(1);
    std::fs::write(&record, serde_json::to_vec(&json).expect("json")).expect("write");
    let dirs = s.stop().await;
    let s = TestServer::launch(dirs, Default::default()).await;
    assert_eq!(offset(&s, &old, None).await.0, 404);
    assert!(!record.exists());
    assert!(!record.with_extension("part").exists());
    assert_eq!(offset(&s, &young, None).await, (204, Some(3)));
    // Malformed ids and headers.
    assert_eq!(offset(&s, "/.davit/uploads/../../etc", None).await.0, 404);
    assert_eq!(offset(&s, "/.davit/uploads/", None).await.0, 404);
    let r = s
        .req("PATCH", &young)
        .header("Content-Type", "application/partial-upload")
        .header("Upload-Complete", "?0")
        .body(&b"x"[..])
        .send()
        .await;
    assert_eq!(r.status, 400, "no Upload-Offset");
    let r = s
        .req("PATCH", &young)
        .header("Content-Type", "application/partial-upload")
        .header("Upload-Offset", "3")
        .body(&b"x"[..])
        .send()
        .await;
    assert_eq!(r.status, 400, "no Upload-Complete");
    let r = s
        .req("PATCH", &young)
        .header("Upload-Offset", "3")
        .header("Upload-Complete", "?0")
        .header("Content-Type", "text/plain")
        .body(&b"x"[..])
        .send()
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(offset(&s, &young, None).await, (204, Some(3)));
    // A malformed Upload-Complete is no Upload-Complete (the draft): an ordinary PUT.
    let r = s
        .req("PUT", "/x.bin")
        .header("Upload-Complete", "maybe")
        .body(&b"plain"[..])
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert!(r.header("location").is_none());
    assert_eq!(&s.get("/x.bin").await.body[..], b"plain");
}

/// An unfinished upload is swept while the server runs, not only at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_uploads_are_swept_while_the_server_runs() {
    let s = TestServer::with_config(DavConfig {
        upload_expire_secs: 1,
        ..DavConfig::default()
    })
    .await;
    let upload = create(&s, "/soon.bin", b"gone soon", None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while offset(&s, &upload, None).await.0 != 404 {
        assert!(Instant::now() < deadline, "the upload was never swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dir_names(&uploads_dir(&s)).is_empty());
    assert_eq!(s.get("/soon.bin").await.status, 404);
}

/// `/.davit/uploads/<id>` is no WebDAV resource: other methods are refused, nothing lists
/// it, and OPTIONS tells clients that resumable uploads are offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_resources_are_not_webdav_resources() {
    // The default state directory, inside the served root.
    let root = tempfile::tempdir().expect("root");
    let dirs = Dirs {
        root: root.path().to_path_buf(),
        state: None,
        guards: vec![root],
    };
    let s = TestServer::launch(dirs, DavConfig::default()).await;
    s.put("/file.txt", "x").await;
    let upload = create(&s, "/new.bin", b"abc", None).await;
    for method in [
        "GET",
        "PUT",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "LOCK",
        "COPY",
        "MOVE",
    ] {
        let r = s.req(method, &upload).send().await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("OPTIONS, HEAD, PATCH, DELETE"));
    }
    let r = s.req("OPTIONS", &upload).send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("accept-patch"), Some("application/partial-upload"));
    let all = s.propfind_ms("/", Some("infinity"), "").await;
    let hrefs = all.hrefs();
    assert!(hrefs.iter().all(|h| !h.contains(".davit")), "{hrefs:?}");
    assert_eq!(s.get("/.davit/uploads/").await.status, 404);
    assert_eq!(s.req("PROPFIND", "/.davit/").send().await.status, 404);
    // OPTIONS of a file or an unmapped URL (where PUT may start one) advertises them.
    for path in ["/file.txt", "/unmapped.bin"] {
        let r = s.req("OPTIONS", path).send().await;
        assert_eq!(r.header("accept-patch"), Some("application/partial-upload"));
        assert_eq!(r.header("upload-limit"), Some("max-age=86400"));
    }
    let r = s.req("OPTIONS", "/").send().await;
    assert_eq!(r.header("accept-patch"), None, "no PUT onto a collection");
    // The upload itself is where it was.
    assert_eq!(offset(&s, &upload, None).await, (204, Some(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_quotas_refuse_uploads() {
    let s = TestServer::with_config(DavConfig {
        max_upload: Some(5_000),
        max_unfinished_uploads_per_user: 2,
        max_staged_upload_bytes: Some(1_000),
        quota: vec![QuotaConfig {
            path: "/q".into(),
            bytes: 3_000,
        }],
        ..DavConfig::default()
    })
    .await;
    s.mkcol("/q/").await;
    let a = create(&s, "/a.bin", &[1; 600], None).await;
    // Past the staged bytes: the creation fails whole, nothing is left of it.
    let r = s
        .req("PUT", "/b.bin")
        .header("Upload-Complete", "?0")
        .body(vec![2; 600])
        .send()
        .await;
    assert_eq!(r.status, 507);
    assert_eq!(dir_names(&uploads_dir(&s)).len(), 2, "only a's files");
    // Past the uploads one user may have.
    let c = create(&s, "/c.bin", b"", None).await;
    let r = s
        .req("PUT", "/d.bin")
        .header("Upload-Complete", "?0")
        .send()
        .await;
    assert_eq!(r.status, 507);
    // An append past the staged bytes stops with 507 and keeps what fit.
    let r = append(&s, &a, 600, &[3; 4_000], false).await;
    assert_eq!(r.status, 507);
    let (status, kept) = offset(&s, &a, None).await;
    assert_eq!(status, 204);
    let kept = kept.expect("offset");
    assert!((600..=1_000).contains(&kept), "{kept}");
    // Cancelling frees the space (and the user's slot).
    assert_eq!(s.req("DELETE", &a).send().await.status, 204);
    assert_eq!(s.req("DELETE", &c).send().await.status, 204);
    create(&s, "/e.bin", &[4; 900], None).await;
    // An announced length past max_upload: 413, and the limits say why.
    let r = s
        .req("PUT", "/f.bin")
        .header("Upload-Complete", "?0")
        .header("Upload-Length", "6000")
        .send()
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.header("upload-limit"),
        Some("max-size=5000, max-age=86400")
    );
    // An announced length past the quota: 507 quota-not-exceeded before any byte.
    let r = s
        .req("PUT", "/q/g.bin")
        .header("Upload-Complete", "?0")
        .header("Upload-Length", "4000")
        .send()
        .await;
    assert_eq!(r.status, 507);
    assert_eq!(
        r.dav_error(),
        vec![davit_proto::xml::QName::dav("quota-not-exceeded")]
    );
    // An append past the announced length is refused whole.
    let h = create(&s, "/h.bin", b"", None).await;
    let r = s
        .req("PATCH", &h)
        .header("Upload-Offset", "0")
        .header("Upload-Complete", "?0")
        .header("Upload-Length", "10")
        .header("Content-Type", "application/partial-upload")
        .body(&b"0123456789ab"[..])
        .send()
        .await;
    assert_eq!(r.status, 400);
    problem(&r, "inconsistent-upload-length");
    let head = s.head(&h).await;
    assert_eq!(head.header("upload-offset"), Some("0"));
    assert_eq!(head.header("upload-length"), Some("10"));
}
