//! MKCOL.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkcol_creates_an_empty_collection() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/c/").await.status, 201);
    assert!(s.root().join("c").is_dir());
    let ms = s.propfind_ms("/c/", Some("1"), "").await;
    assert_eq!(ms.hrefs(), vec!["/c/"]);
    assert!(ms.get("/c/").is_collection());
    // Without the trailing slash, and its href then ends with one.
    assert_eq!(s.mkcol("/k").await.status, 201);
    let ms = s.propfind_ms("/", Some("1"), "").await;
    assert!(ms.hrefs().contains(&"/k/".to_owned()), "{:?}", ms.hrefs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkcol_on_mapped_url_is_405() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/x", "x").await;
    s.put("/f", "x").await;
    for path in ["/c/", "/c", "/f", "/"] {
        let r = s.mkcol(path).await;
        assert_eq!(r.status, 405, "MKCOL {path}");
        let allow = r.header("allow").expect("405 carries Allow");
        assert!(!allow.contains("MKCOL"), "Allow {allow}");
    }
    assert_eq!(&s.get("/f").await.body[..], b"x");
    assert_eq!(s.get("/c/x").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkcol_missing_parent_is_409() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/a/b/").await.status, 409);
    assert_eq!(s.get("/a/").await.status, 404);
    assert!(dir_names(s.root()).is_empty());
    s.put("/file.txt", "x").await;
    assert_eq!(s.mkcol("/file.txt/sub/").await.status, 409);
    assert_eq!(&s.get("/file.txt").await.body[..], b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkcol_with_a_body_is_415() {
    let s = TestServer::start().await;
    let r = s
        .req("MKCOL", "/m/")
        .header("Content-Type", "xzy/abc")
        .body("afafaf")
        .send()
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(s.get("/m/").await.status, 404);
    assert!(!s.root().join("m").exists());
    let r = s
        .req("MKCOL", "/m/")
        .header("Content-Type", "application/xml")
        .body(r#"<z:foo xmlns:z="urn:z"/>"#)
        .send()
        .await;
    assert_eq!(r.status, 415);
    assert!(!s.root().join("m").exists());
}
