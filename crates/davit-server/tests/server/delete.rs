//! DELETE: files, whole trees, refused depths, per-member failures.

use crate::common::*;

async fn tree(s: &TestServer) {
    assert_eq!(s.mkcol("/c/").await.status, 201);
    assert_eq!(s.put("/c/a", "a").await.status, 201);
    assert_eq!(s.mkcol("/c/d/").await.status, 201);
    assert_eq!(s.put("/c/d/b", "b").await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_file_then_404() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    assert_eq!(s.delete("/f").await.status, 204);
    assert_eq!(s.get("/f").await.status, 404);
    assert_eq!(s.head("/f").await.status, 404);
    assert_eq!(s.propfind("/f", Some("0"), "").await.status, 404);
    assert_eq!(s.delete("/f").await.status, 404);
    assert!(!s.root().join("f").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collection_is_recursive() {
    let s = TestServer::start().await;
    tree(&s).await;
    s.set_prop("/c/d/b", "p", "v").await;
    assert_eq!(s.delete("/c/").await.status, 204);
    for p in ["/c/", "/c/a", "/c/d/", "/c/d/b"] {
        assert_eq!(s.get(p).await.status, 404, "{p}");
    }
    assert!(!s.root().join("c").exists());
    // Depth: infinity is accepted explicitly, and the no-slash form works too.
    tree(&s).await;
    let r = s
        .req("DELETE", "/c")
        .header("Depth", "infinity")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert!(!s.root().join("c").exists());
    // Dead properties of members are gone with them.
    tree(&s).await;
    assert_eq!(s.z_prop("/c/d/b", "p").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_collection_with_depth_0_or_1_is_400() {
    let s = TestServer::start().await;
    tree(&s).await;
    for depth in ["0", "1"] {
        let r = s.req("DELETE", "/c/").header("Depth", depth).send().await;
        assert_eq!(r.status, 400, "Depth {depth}");
        for p in ["/c/", "/c/a", "/c/d/", "/c/d/b"] {
            assert_eq!(s.get(p).await.status, 200, "{p} after Depth {depth}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeletable_member_is_reported_alone() {
    use std::os::unix::fs::PermissionsExt;
    if permissions_ignored() {
        println!("note: skipping undeletable_member_is_reported_alone: running as root, permissions do not apply");
        return;
    }
    let s = TestServer::start().await;
    tree(&s).await;
    s.mkcol("/c/ok/").await;
    s.put("/c/ok/x", "x").await;
    // /c/d/b cannot be removed while /c/d is read-only.
    let d = s.root().join("c/d");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555)).unwrap();
    let r = s.delete("/c/").await;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ms = r.ms();
    let outcomes = ms.outcomes();
    assert_eq!(
        outcomes.len(),
        1,
        "only the failed member is named: {outcomes:?}"
    );
    match outcomes.get("/c/d/b") {
        Some(Outcome::Status(st)) => assert!((400..600).contains(st) && *st != 424, "{st}"),
        other => panic!("/c/d/b outcome {other:?}"),
    }
    // The failed member and its ancestors remain; the other subtrees are gone.
    assert_eq!(s.get("/c/d/b").await.status, 200);
    assert_eq!(s.get("/c/d/").await.status, 200);
    assert_eq!(s.get("/c/").await.status, 200);
    assert_eq!(s.get("/c/a").await.status, 404);
    assert_eq!(s.get("/c/ok/").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_resource_at_deleted_url_has_no_dead_properties() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.set_prop("/f", "p", "old").await;
    assert_eq!(s.delete("/f").await.status, 204);
    assert_eq!(s.put("/f", "y").await.status, 201);
    assert_eq!(s.z_prop("/f", "p").await, None);
    // Same for collections.
    s.mkcol("/c/").await;
    s.set_prop("/c/", "p", "old").await;
    s.delete("/c/").await;
    s.mkcol("/c/").await;
    assert_eq!(s.z_prop("/c/", "p").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_delete() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let r = s
        .req("DELETE", "/f")
        .header("If-Match", "\"stale\"")
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.get("/f").await.status, 200);
    let etag = s.get("/f").await.header("etag").unwrap().to_owned();
    let r = s.req("DELETE", "/f").header("If-Match", &etag).send().await;
    assert_eq!(r.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_root_is_refused() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    for path in ["/", "//"] {
        let r = s.delete(path).await;
        assert!(
            (400..500).contains(&r.status),
            "DELETE {path} gave {}",
            r.status
        );
    }
    assert_eq!(s.get("/f").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_fragment_does_not_delete_the_prefix() {
    let s = TestServer::start().await;
    s.mkcol("/frag/").await;
    s.put("/frag/x", "x").await;
    let req = format!(
        "DELETE /frag/#ment HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.host()
    );
    let r = s.raw_resp(req.as_bytes()).await;
    assert!(matches!(r.status, 400 | 404), "status {}", r.status);
    assert_eq!(s.get("/frag/x").await.status, 200, "/frag/ survives");
}
