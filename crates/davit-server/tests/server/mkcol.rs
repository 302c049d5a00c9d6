//! MKCOL.

use crate::common::*;
use davit_proto::xml::QName;

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

fn mkcol_body(props: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>{props}</D:prop></D:set></D:mkcol>"#
    )
}

async fn ext_mkcol(s: &TestServer, path: &str, body: &str) -> Resp {
    s.req("MKCOL", path)
        .header("Content-Type", "application/xml; charset=utf-8")
        .body(body.to_owned())
        .send()
        .await
}

/// The propstats of an RFC 5689 `mkcol-response`: property name → (status, condition).
fn mkcol_response(
    r: &Resp,
) -> std::collections::BTreeMap<davit_proto::xml::QName, (u16, Option<String>)> {
    use davit_proto::xml::{parse_document, Limits};
    let root = parse_document(&r.body, &Limits::default()).expect("mkcol-response parses");
    assert!(root.name.is_dav("mkcol-response"), "{}", r.text());
    let mut out = std::collections::BTreeMap::new();
    for ps in root.elements() {
        assert!(ps.name.is_dav("propstat"), "{:?}", ps.name);
        let child = |local: &str| ps.elements().find(|e| e.name.is_dav(local));
        let status: u16 = child("status")
            .expect("status")
            .text()
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let cond = child("error").and_then(|e| e.elements().next().map(|c| c.name.local.clone()));
        for p in child("prop").expect("prop").elements() {
            assert!(
                out.insert(p.name.clone(), (status, cond.clone())).is_none(),
                "{:?} twice",
                p.name
            );
        }
    }
    out
}

#[tokio::test]
async fn extended_mkcol_sets_the_properties_of_the_new_collection() {
    let s = TestServer::start().await;
    let r = ext_mkcol(
        &s,
        "/x/",
        &mkcol_body(
            "<D:resourcetype><D:collection/></D:resourcetype><D:displayname>Mine</D:displayname><Z:color>blue</Z:color>",
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.z_prop("/x/", "color").await.as_deref(), Some("blue"));
    let r = s.props_of("/x/", &[QName::dav("displayname")]).await;
    assert_eq!(
        r.dav("displayname").map(|e| e.text()).as_deref(),
        Some("Mine")
    );
    let r = s.req("OPTIONS", "/").send().await;
    assert!(
        r.header("dav")
            .unwrap_or_default()
            .split(',')
            .any(|t| t.trim() == "extended-mkcol"),
        "DAV lists extended-mkcol"
    );
}

#[tokio::test]
async fn extended_mkcol_is_all_or_nothing() {
    let s = TestServer::start().await;
    // Another resource type than a plain collection: 403 valid-resourcetype, the rest 424.
    let r = ext_mkcol(
        &s,
        "/cal/",
        &mkcol_body(
            r#"<D:resourcetype><D:collection/><C:calendar xmlns:C="urn:ietf:params:xml:ns:caldav"/></D:resourcetype><Z:color>red</Z:color>"#,
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let got = mkcol_response(&r);
    assert_eq!(
        got.get(&QName::dav("resourcetype")),
        Some(&(403, Some("valid-resourcetype".to_owned())))
    );
    assert_eq!(got.get(&QName::new(Z, "color")), Some(&(424, None)));
    assert_eq!(got.len(), 2);
    assert_eq!(s.get("/cal/").await.status, 404);
    // A protected property: 403 cannot-modify-protected-property, nothing created.
    let r = ext_mkcol(
        &s,
        "/p/",
        &mkcol_body("<Z:color>red</Z:color><D:getetag>x</D:getetag>"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let got = mkcol_response(&r);
    assert_eq!(
        got.get(&QName::dav("getetag")),
        Some(&(403, Some("cannot-modify-protected-property".to_owned())))
    );
    assert_eq!(got.get(&QName::new(Z, "color")), Some(&(424, None)));
    assert!(!s.root().join("p").exists());
    // The URL stays free: a plain MKCOL afterwards has no leftover property.
    assert_eq!(s.mkcol("/p/").await.status, 201);
    assert_eq!(s.z_prop("/p/", "color").await, None);
    // Broken bodies: 400 for a broken mkcol or broken XML declared as XML; nothing created.
    for bad in [
        r#"<D:mkcol xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">1</Z:a></D:prop></D:set><D:remove><D:prop><Z:b xmlns:Z="urn:z"/></D:prop></D:remove></D:mkcol>"#,
        r#"<D:mkcol xmlns:D="DAV:"/>"#,
        r#"<D:mkcol xmlns:D="DAV:"><D:set>"#,
    ] {
        let r = ext_mkcol(&s, "/b/", bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(!s.root().join("b").exists());
    }
}
