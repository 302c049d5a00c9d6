//! COPY and MOVE.

use crate::common::*;
use std::time::{Duration, SystemTime};

async fn tree(s: &TestServer, at: &str) {
    assert_eq!(s.mkcol(&format!("{at}/")).await.status, 201);
    assert_eq!(s.put(&format!("{at}/a"), "a").await.status, 201);
    assert_eq!(s.mkcol(&format!("{at}/d/")).await.status, 201);
    assert_eq!(s.put(&format!("{at}/d/b"), "b").await.status, 201);
}

/// The hrefs of a Depth infinity listing, relative to `base` (which ends with `/`).
async fn relative_tree(s: &TestServer, base: &str) -> Vec<String> {
    let ms = s.propfind_ms(base, Some("infinity"), "").await;
    ms.hrefs()
        .into_iter()
        .map(|h| h.strip_prefix(base).expect("href under base").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_file() {
    let s = TestServer::start().await;
    s.put("/a", "old").await;
    let r = s.copy_move("COPY", "/a", "/b", &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(&s.get("/a").await.body[..], b"old");
    assert_eq!(&s.get("/b").await.body[..], b"old");
    // Independent afterwards.
    s.put("/b", "new").await;
    assert_eq!(&s.get("/a").await.body[..], b"old");
    // Onto an existing file (no Overwrite header means T): 204.
    let r = s.copy_move("COPY", "/a", "/b", &[]).await;
    assert_eq!(r.status, 204);
    assert_eq!(&s.get("/b").await.body[..], b"old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_collection_depth_infinity() {
    let s = TestServer::start().await;
    tree(&s, "/c").await;
    let r = s.copy_move("COPY", "/c/", "/k/", &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        relative_tree(&s, "/k/").await,
        relative_tree(&s, "/c/").await
    );
    assert_eq!(&s.get("/k/d/b").await.body[..], b"b");
    assert_eq!(&s.get("/c/d/b").await.body[..], b"b");
    // Explicit Depth: infinity, destination without trailing slash.
    let r = s
        .copy_move("COPY", "/c/", "/k2", &[("Depth", "infinity")])
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(&s.get("/k2/a").await.body[..], b"a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_collection_depth_0_copies_no_members() {
    let s = TestServer::start().await;
    tree(&s, "/c").await;
    s.set_prop("/c/", "p", "on the collection").await;
    let r = s.copy_move("COPY", "/c/", "/k0/", &[("Depth", "0")]).await;
    assert_eq!(r.status, 201);
    let ms = s.propfind_ms("/k0/", Some("1"), "").await;
    assert_eq!(ms.hrefs(), vec!["/k0/"]);
    assert!(ms.get("/k0/").is_collection());
    assert_eq!(
        s.z_prop("/k0/", "p").await.as_deref(),
        Some("on the collection")
    );
    assert_eq!(dir_names(&s.root().join("k0")), Vec::<String>::new());
    // Depth 1 is not a COPY depth.
    let r = s.copy_move("COPY", "/c/", "/k1/", &[("Depth", "1")]).await;
    assert_eq!(r.status, 400);
    assert_eq!(s.get("/k1/").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_f_is_412() {
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    s.put("/b", "b").await;
    for m in ["COPY", "MOVE"] {
        let r = s.copy_move(m, "/a", "/b", &[("Overwrite", "F")]).await;
        assert_eq!(r.status, 412, "{m}");
        assert_eq!(&s.get("/a").await.body[..], b"a");
        assert_eq!(&s.get("/b").await.body[..], b"b");
    }
    // A bad Overwrite value is a bad request.
    let r = s.copy_move("COPY", "/a", "/b", &[("Overwrite", "X")]).await;
    assert_eq!(r.status, 400);
    assert_eq!(&s.get("/b").await.body[..], b"b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_t_replaces_instead_of_merging() {
    let s = TestServer::start().await;
    s.mkcol("/c1/").await;
    s.put("/c1/x", "x").await;
    s.mkcol("/c2/").await;
    s.put("/c2/y", "y").await;
    let r = s
        .copy_move("COPY", "/c1/", "/c2/", &[("Overwrite", "T")])
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.get("/c2/y").await.status, 404);
    assert_eq!(&s.get("/c2/x").await.body[..], b"x");

    s.mkcol("/m1/").await;
    s.put("/m1/x", "mx").await;
    s.mkcol("/m2/").await;
    s.put("/m2/y", "y").await;
    let r = s
        .copy_move("MOVE", "/m1/", "/m2/", &[("Overwrite", "T")])
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.get("/m2/y").await.status, 404);
    assert_eq!(&s.get("/m2/x").await.body[..], b"mx");
    assert_eq!(s.get("/m1/").await.status, 404);

    // A file replaced by a collection and back.
    s.put("/file", "f").await;
    let r = s.copy_move("COPY", "/c1/", "/file", &[]).await;
    assert_eq!(r.status, 204);
    assert_eq!(&s.get("/file/x").await.body[..], b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_destination_parent_is_409() {
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    for m in ["COPY", "MOVE"] {
        let r = s.copy_move(m, "/a", "/nope/a", &[]).await;
        assert_eq!(r.status, 409, "{m}");
        assert_eq!(s.get("/nope/").await.status, 404);
        assert_eq!(&s.get("/a").await.body[..], b"a");
    }
    assert_eq!(dir_names(s.root()), vec!["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_source_and_destination_is_403() {
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    tree(&s, "/c").await;
    for m in ["COPY", "MOVE"] {
        assert_eq!(
            s.copy_move(m, "/a", "/a", &[]).await.status,
            403,
            "{m} file"
        );
        assert_eq!(
            s.copy_move(m, "/c/", "/c/", &[]).await.status,
            403,
            "{m} coll"
        );
        assert_eq!(
            s.copy_move(m, "/c", "/c/", &[]).await.status,
            403,
            "{m} coll slash"
        );
        assert_eq!(&s.get("/a").await.body[..], b"a");
        assert_eq!(s.get("/c/d/b").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_into_its_own_subtree_is_403() {
    let s = TestServer::start().await;
    tree(&s, "/c").await;
    for m in ["COPY", "MOVE"] {
        for dest in ["/c/sub/", "/c/d/deeper"] {
            let r = s.copy_move(m, "/c/", dest, &[]).await;
            assert_eq!(r.status, 403, "{m} /c/ -> {dest}");
        }
    }
    assert_eq!(relative_tree(&s, "/c/").await, vec!["", "a", "d/", "d/b"]);
    // Onto an ancestor is refused as well (it would delete the source first).
    let r = s.copy_move("MOVE", "/c/d/", "/c/", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(s.get("/c/d/b").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_forms() {
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    // Path-absolute, percent-decoded like the request URI.
    let r = s.copy_move("COPY", "/a", "/x%20y", &[]).await;
    assert_eq!(r.status, 201);
    assert!(s.root().join("x y").is_file());
    // Absolute URI with this server's authority.
    let r = s.copy_move("COPY", "/a", &s.url("/x%20z"), &[]).await;
    assert_eq!(r.status, 201);
    assert!(s.root().join("x z").is_file());
    let r = s.copy_move("MOVE", "/x%20z", &s.url("/moved"), &[]).await;
    assert_eq!(r.status, 201);
    assert!(s.root().join("moved").is_file());
    // Another server: 502, nothing happens.
    for m in ["COPY", "MOVE"] {
        let r = s.copy_move(m, "/a", "http://other.invalid/x", &[]).await;
        assert_eq!(r.status, 502, "{m}");
    }
    assert_eq!(&s.get("/a").await.body[..], b"a");
    // Missing or malformed Destination: 400.
    for m in ["COPY", "MOVE"] {
        assert_eq!(
            s.req(m, "/a").send().await.status,
            400,
            "{m} without Destination"
        );
        assert_eq!(
            s.copy_move(m, "/a", "not a uri", &[]).await.status,
            400,
            "{m}"
        );
    }
    // A Destination that leaves the root.
    let r = s.copy_move("COPY", "/a", "/%2e%2e/escaped", &[]).await;
    assert!((400..500).contains(&r.status), "{}", r.status);
    assert_eq!(dir_names(s.root()), vec!["a", "moved", "x y"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_properties_follow_copy_and_move() {
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    s.set_prop("/a", "p", "file prop").await;
    tree(&s, "/c").await;
    s.set_prop("/c/", "p", "coll prop").await;
    s.set_prop("/c/d/b", "p", "member prop").await;

    assert_eq!(s.copy_move("COPY", "/a", "/b", &[]).await.status, 201);
    assert_eq!(s.z_prop("/b", "p").await.as_deref(), Some("file prop"));
    assert_eq!(s.z_prop("/a", "p").await.as_deref(), Some("file prop"));
    // Independent after the copy.
    s.set_prop("/b", "p", "changed").await;
    assert_eq!(s.z_prop("/a", "p").await.as_deref(), Some("file prop"));

    assert_eq!(s.copy_move("COPY", "/c/", "/k/", &[]).await.status, 201);
    assert_eq!(s.z_prop("/k/", "p").await.as_deref(), Some("coll prop"));
    assert_eq!(
        s.z_prop("/k/d/b", "p").await.as_deref(),
        Some("member prop")
    );

    assert_eq!(s.copy_move("MOVE", "/a", "/m", &[]).await.status, 201);
    assert_eq!(s.z_prop("/m", "p").await.as_deref(), Some("file prop"));
    assert_eq!(s.propfind("/a", Some("0"), "").await.status, 404);

    assert_eq!(s.copy_move("MOVE", "/c/", "/mc/", &[]).await.status, 201);
    assert_eq!(s.z_prop("/mc/", "p").await.as_deref(), Some("coll prop"));
    assert_eq!(
        s.z_prop("/mc/d/b", "p").await.as_deref(),
        Some("member prop")
    );
    // A new resource at the old URL starts clean.
    s.put("/a", "new").await;
    assert_eq!(s.z_prop("/a", "p").await, None);
    tree(&s, "/c").await;
    assert_eq!(s.z_prop("/c/d/b", "p").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwritten_destination_loses_its_own_properties() {
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    s.put("/b", "b").await;
    s.set_prop("/b", "only_b", "x").await;
    assert_eq!(s.copy_move("COPY", "/a", "/b", &[]).await.status, 204);
    assert_eq!(s.z_prop("/b", "only_b").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_file_and_collection() {
    let s = TestServer::start().await;
    s.put("/a", "old a").await;
    let r = s.copy_move("MOVE", "/a", "/b", &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(s.get("/a").await.status, 404);
    assert_eq!(&s.get("/b").await.body[..], b"old a");

    s.put("/a", "second").await;
    let r = s.copy_move("MOVE", "/a", "/b", &[]).await;
    assert_eq!(r.status, 204);
    assert_eq!(s.get("/a").await.status, 404);
    assert_eq!(&s.get("/b").await.body[..], b"second");

    tree(&s, "/c").await;
    let r = s.copy_move("MOVE", "/c/", "/m/", &[("Depth", "0")]).await;
    assert_eq!(r.status, 400, "MOVE of a collection needs Depth infinity");
    assert_eq!(s.get("/c/d/b").await.status, 200);
    let r = s.copy_move("MOVE", "/c/", "/m/", &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(&s.get("/m/d/b").await.body[..], b"b");
    for old in ["/c/", "/c/a", "/c/d/b"] {
        assert_eq!(s.get(old).await.status, 404, "{old}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_move() {
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    let r = s
        .copy_move("MOVE", "/a", "/b", &[("If-Match", "\"stale\"")])
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.get("/a").await.status, 200);
    assert_eq!(s.get("/b").await.status, 404);
    let etag = s.get("/a").await.header("etag").unwrap().to_owned();
    let r = s
        .copy_move("MOVE", "/a", "/b", &[("If-Match", &etag)])
        .await;
    assert_eq!(r.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_over_newer_file_does_not_go_back_in_time() {
    let s = TestServer::start().await;
    s.put("/a", "older content").await;
    let f = std::fs::File::options()
        .write(true)
        .open(s.root().join("a"))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(86_400 * 365))
        .unwrap();
    drop(f);
    s.put("/b", "new").await;
    let before = s.get("/b").await;
    let (eb, lb) = (
        before.header("etag").unwrap().to_owned(),
        httpdate::parse_http_date(before.header("last-modified").unwrap()).unwrap(),
    );
    assert_eq!(s.copy_move("MOVE", "/a", "/b", &[]).await.status, 204);
    let after = s.get("/b").await;
    assert_eq!(&after.body[..], b"older content");
    assert_ne!(
        after.header("etag").unwrap(),
        eb,
        "ETag reused for a different body"
    );
    let la = httpdate::parse_http_date(after.header("last-modified").unwrap()).unwrap();
    assert!(
        la >= lb,
        "Last-Modified went back in time after MOVE onto an existing URL"
    );
}

/// A reader of a COPY's destination finds nothing or the whole copy, never a part of it: the
/// copy is written aside and renamed into place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_appears_whole() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let body: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(s.put("/big", body.clone()).await.status, 201);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, done, body) = (s.clone(), done.clone(), body.clone());
        tokio::spawn(async move {
            let (mut whole, mut partial) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let r = s.get("/copy").await;
                match r.status {
                    404 => {}
                    200 if r.body[..] == body[..] => whole += 1,
                    _ => partial += 1,
                }
            }
            (whole, partial)
        })
    };
    for round in 0..20 {
        if round > 0 {
            assert_eq!(s.delete("/copy").await.status, 204);
        }
        assert_eq!(s.copy_move("COPY", "/big", "/copy", &[]).await.status, 201);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (whole, partial) = reader.await.expect("reader");
    assert_eq!(
        partial, 0,
        "GETs that found part of a copy ({whole} found it whole)"
    );
    assert!(whole > 0, "the reader never saw the copy");
    assert_eq!(&s.get("/copy").await.body[..], &body[..]);
}
