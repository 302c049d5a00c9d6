//! OPTIONS and method dispatch.

use crate::common::*;

fn methods(allow: &str) -> Vec<String> {
    allow.split(',').map(|m| m.trim().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dav_class_1_and_ms_author_via() {
    let s = TestServer::start().await;
    s.put("/f.txt", "x").await;
    for path in ["/", "/f.txt", "/nope"] {
        let r = s.req("OPTIONS", path).send().await;
        assert_eq!(r.status, 200, "OPTIONS {path}");
        let dav = r.header("dav").expect("DAV header");
        let classes: Vec<_> = dav.split(',').map(str::trim).collect();
        assert!(classes.contains(&"1"), "DAV: {dav}");
        assert_eq!(r.header("ms-author-via"), Some("DAV"));
        assert_eq!(r.header("content-length"), Some("0"));
        assert!(r.body.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_depends_on_the_target() {
    let s = TestServer::start().await;
    s.put("/f.txt", "x").await;
    s.mkcol("/c/").await;

    let file = methods(
        s.req("OPTIONS", "/f.txt")
            .send()
            .await
            .header("allow")
            .unwrap(),
    );
    for m in [
        "GET",
        "HEAD",
        "PUT",
        "DELETE",
        "PROPFIND",
        "PROPPATCH",
        "COPY",
        "MOVE",
    ] {
        assert!(
            file.iter().any(|x| x == m),
            "file Allow lacks {m}: {file:?}"
        );
    }
    assert!(
        !file.iter().any(|x| x == "MKCOL"),
        "file Allow has MKCOL: {file:?}"
    );

    let dir = methods(
        s.req("OPTIONS", "/c/")
            .send()
            .await
            .header("allow")
            .unwrap(),
    );
    for m in ["GET", "DELETE", "PROPFIND", "PROPPATCH", "COPY", "MOVE"] {
        assert!(
            dir.iter().any(|x| x == m),
            "collection Allow lacks {m}: {dir:?}"
        );
    }
    assert!(
        !dir.iter().any(|x| x == "MKCOL"),
        "collection Allow has MKCOL: {dir:?}"
    );

    let unmapped = methods(
        s.req("OPTIONS", "/nope")
            .send()
            .await
            .header("allow")
            .unwrap(),
    );
    for m in ["PUT", "MKCOL"] {
        assert!(
            unmapped.iter().any(|x| x == m),
            "unmapped Allow lacks {m}: {unmapped:?}"
        );
    }
    for m in ["GET", "DELETE", "PROPFIND", "COPY", "MOVE"] {
        assert!(
            !unmapped.iter().any(|x| x == m),
            "unmapped Allow has {m}: {unmapped:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_star_is_server_wide() {
    let s = TestServer::start().await;
    let r = s
        .raw_resp(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("dav")
        .is_some_and(|d| d.split(',').any(|c| c.trim() == "1")));
    assert!(r.header("allow").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_501() {
    let s = TestServer::start().await;
    s.put("/f.txt", "x").await;
    for path in ["/", "/f.txt", "/nope"] {
        let r = s.req("FROB", path).send().await;
        assert_eq!(r.status, 501, "FROB {path}");
    }
    // And the server still answers normally afterwards.
    assert_eq!(s.get("/f.txt").await.status, 200);
}
