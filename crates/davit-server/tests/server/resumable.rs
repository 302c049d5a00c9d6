//! Resumable uploads: `PUT` with `Upload-Complete: ?0` makes an upload resource, `HEAD` tells
//! its offset, `PATCH` appends from there (keeping what arrived when the connection breaks)
//! and completes it into the target through an ordinary PUT; nothing is at the target before,
//! other users cannot see it, locks hold, a restart keeps it, expiry and DELETE remove it.

use crate::common::*;
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
    let loc = r.header("location").expect("Location").to_owned();
    assert!(loc.starts_with("/.davit/uploads/"), "{loc}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_three_parts_becomes_the_target_only_when_complete() {
    let s = TestServer::start().await;
    s.mkcol("/dir/").await;
    let body = pattern(3_000_000);
    let upload = create(&s, "/dir/big%20%C3%BC.bin", &body[..1_000_000], None).await;
    assert_eq!(offset(&s, &upload, None).await, (204, Some(1_000_000)));
    // Nothing at the target, nothing in the listing, until the upload is complete.
    assert_eq!(s.get("/dir/big%20%C3%BC.bin").await.status, 404);
    let listed = s.propfind_ms("/dir/", Some("1"), "").await;
    assert_eq!(listed.responses.len(), 1, "only the collection itself");
    let root = s.propfind_ms("/", Some("1"), "").await;
    assert!(
        root.responses.iter().all(|r| !r.href.contains(".davit")),
        "the uploads never show"
    );
    // An append at the wrong offset is refused and told where the upload is.
    let wrong = append(&s, &upload, 999, &body[999..2_000_000], false).await;
    assert_eq!(wrong.status, 409);
    assert_eq!(wrong.header("upload-offset"), Some("1000000"));
    let mid = append(&s, &upload, 1_000_000, &body[1_000_000..2_000_000], false).await;
    assert_eq!(mid.status, 204);
    assert_eq!(mid.header("upload-offset"), Some("2000000"));
    assert_eq!(s.get("/dir/big%20%C3%BC.bin").await.status, 404);
    let done = append(&s, &upload, 2_000_000, &body[2_000_000..], true).await;
    assert_eq!(done.status, 201, "{}", done.text());
    assert!(done.header("etag").is_some());
    let got = s.get("/dir/big%20%C3%BC.bin").await;
    assert_eq!((got.status, got.body.len()), (200, body.len()));
    assert!(got.body[..] == body[..], "the bytes are the upload's");
    // The upload resource is gone with its bytes.
    assert_eq!(offset(&s, &upload, None).await.0, 404);
    let left: Vec<_> = std::fs::read_dir(s.state_dir().join("uploads"))
        .expect("uploads dir")
        .collect();
    assert!(left.is_empty(), "{left:?}");
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
    // The client announces 1,900,000 bytes, sends 700,000 and goes away.
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
    // The server notices the broken body and keeps its bytes (the HEAD may come first).
    let mut seen = None;
    for _ in 0..200 {
        let (status, at) = offset(&s, &upload, None).await;
        assert_eq!(status, 204);
        if at == Some(700_100) {
            seen = at;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(seen, Some(700_100));
    assert_eq!(s.get("/f.bin").await.status, 404);
    // A restart on the same state directory still knows it.
    let dirs = s.stop().await;
    let s = TestServer::launch(dirs, Default::default()).await;
    assert_eq!(offset(&s, &upload, None).await, (204, Some(700_100)));
    let r = append(&s, &upload, 700_100, &body[700_100..], true).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(s.get("/f.bin").await.body[..] == body[..]);
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
        .body(
            r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#,
        )
        .send()
        .await;
    assert_eq!(lock.status, 201);
    let token = lock.header("lock-token").expect("token").to_owned();
    let r = s
        .req("PATCH", &upload)
        .user("alice")
        .header("Upload-Offset", "8")
        .header("Content-Type", "application/partial-upload")
        .body(&b"text"[..])
        .send()
        .await;
    assert_eq!(r.status, 423);
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
        .header("Content-Type", "application/partial-upload")
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        &s.req("GET", "/a.txt").user("alice").send().await.body[..],
        b"alice's text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_expired_uploads_are_gone() {
    let s = TestServer::start().await;
    let cancelled = create(&s, "/c.bin", b"abc", None).await;
    assert_eq!(s.req("DELETE", &cancelled).send().await.status, 204);
    assert_eq!(offset(&s, &cancelled, None).await.0, 404);
    assert_eq!(s.get("/c.bin").await.status, 404);
    // An upload whose record says it is two days old is swept at start-up.
    let old = create(&s, "/old.bin", b"abc", None).await;
    let young = create(&s, "/young.bin", b"abc", None).await;
    let id = old.rsplit('/').next().expect("id");
    let record = s.state_dir().join("uploads").join(format!("{id}.json"));
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("json");
    json["created"] = serde_json::json!(1);
    std::fs::write(&record, serde_json::to_vec(&json).expect("json")).expect("write");
    let dirs = s.stop().await;
    let s = TestServer::launch(dirs, Default::default()).await;
    assert_eq!(offset(&s, &old, None).await.0, 404);
    assert!(!record.exists());
    assert_eq!(offset(&s, &young, None).await, (204, Some(3)));
    // Malformed ids and headers.
    assert_eq!(offset(&s, "/.davit/uploads/../../etc", None).await.0, 404);
    let r = s
        .req("PUT", "/x.bin")
        .header("Upload-Complete", "maybe")
        .send()
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .req("PATCH", &young)
        .header("Content-Type", "application/partial-upload")
        .body(&b"x"[..])
        .send()
        .await;
    assert_eq!(r.status, 400, "no Upload-Offset");
    let r = s
        .req("PATCH", &young)
        .header("Upload-Offset", "3")
        .header("Content-Type", "text/plain")
        .body(&b"x"[..])
        .send()
        .await;
    assert_eq!(r.status, 415);
}
