//! PROPFIND: request forms, depths, live property formats, bad bodies, limits, large listings.

use crate::common::*;
use davit_proto::xml::{parse_document, Limits, QName};
use davit_server::DavConfig;

const LIVE: &[&str] = &[
    "resourcetype",
    "creationdate",
    "getlastmodified",
    "getcontentlength",
    "getcontenttype",
    "getetag",
];

async fn tree(s: &TestServer) {
    assert_eq!(s.mkcol("/c/").await.status, 201);
    assert_eq!(s.put("/c/a.txt", "aaa").await.status, 201);
    assert_eq!(s.mkcol("/c/d/").await.status, 201);
    assert_eq!(s.put("/c/d/b", "b").await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_body_is_allprop() {
    let s = TestServer::start().await;
    s.put("/f.txt", "hello").await;
    let r = s.propfind("/f.txt", Some("0"), "").await;
    assert_eq!(
        r.header("content-type"),
        Some("application/xml; charset=\"utf-8\"")
    );
    let ms = r.ms();
    let f = ms.get("/f.txt");
    for p in LIVE {
        assert!(f.dav(p).is_some(), "allprop lacks {p}");
    }
    assert_eq!(f.dav_text("getcontentlength").as_deref(), Some("5"));
    assert!(!f.is_collection());
    // An explicit allprop body gives the same properties.
    let explicit = s
        .propfind_ms(
            "/f.txt",
            Some("0"),
            r#"<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#,
        )
        .await;
    assert_eq!(explicit.outcomes(), ms.outcomes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depths() {
    let s = TestServer::start().await;
    tree(&s).await;
    let hrefs = |ms: Multistatus| ms.hrefs();
    assert_eq!(
        hrefs(s.propfind_ms("/c/", Some("0"), "").await),
        vec!["/c/"]
    );
    assert_eq!(
        hrefs(s.propfind_ms("/c/", Some("1"), "").await),
        vec!["/c/", "/c/a.txt", "/c/d/"]
    );
    let all = vec!["/c/", "/c/a.txt", "/c/d/", "/c/d/b"];
    assert_eq!(hrefs(s.propfind_ms("/c/", Some("infinity"), "").await), all);
    assert_eq!(
        hrefs(s.propfind_ms("/c/", None, "").await),
        all,
        "no Depth means infinity"
    );
    // The collection addressed without its slash still answers with the slash form.
    assert_eq!(hrefs(s.propfind_ms("/c", Some("0"), "").await), vec!["/c/"]);
    // Depth is ignored on a file.
    assert_eq!(
        hrefs(s.propfind_ms("/c/a.txt", Some("infinity"), "").await),
        vec!["/c/a.txt"]
    );
    // Unmapped: 404.
    assert_eq!(s.propfind("/nope", Some("0"), "").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_depth_is_400() {
    let s = TestServer::start().await;
    tree(&s).await;
    for d in ["2", "infinityx", "-1", ""] {
        assert_eq!(
            s.propfind("/c/", Some(d), "").await.status,
            400,
            "Depth {d:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hrefs_are_absolute_unique_and_collections_end_with_slash() {
    let s = TestServer::start().await;
    // A tree of 50 resources.
    for i in 0..7 {
        s.mkcol(&format!("/d{i}/")).await;
        for j in 0..6 {
            s.put(&format!("/d{i}/f{j}"), "x").await;
        }
    }
    let ms = s.propfind_ms("/", Some("infinity"), "").await;
    let map = ms.map(); // asserts one response per href
    assert_eq!(map.len(), 1 + 7 + 42);
    for (href, r) in map {
        assert!(href.starts_with('/'), "{href}");
        assert_eq!(r.is_collection(), href.ends_with('/'), "{href}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propname_lists_names_only() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.set_prop("/f", "p", "value").await;
    let ms = s
        .propfind_ms(
            "/f",
            Some("0"),
            r#"<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>"#,
        )
        .await;
    let r = ms.only();
    assert_eq!(r.propstats.len(), 1);
    assert_eq!(r.propstats[0].status, 200);
    let names: Vec<&QName> = r.propstats[0].props.iter().map(|p| &p.name).collect();
    for p in LIVE {
        assert!(names.contains(&&QName::dav(p)), "propname lacks {p}");
    }
    assert!(names.contains(&&z("p")));
    for p in &r.propstats[0].props {
        assert!(p.children.is_empty(), "{:?} has a value", p.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_properties_with_404_for_unknown() {
    let s = TestServer::start().await;
    s.put("/f", "12345").await;
    let names = [
        QName::dav("getcontentlength"),
        z("none"),
        QName::dav("displaynamex"),
    ];
    let r = s.props_of("/f", &names).await;
    assert_eq!(r.propstats.len(), 2);
    assert_eq!(r.prop_status(&QName::dav("getcontentlength")), Some(200));
    assert_eq!(r.dav_text("getcontentlength").as_deref(), Some("5"));
    assert_eq!(r.prop_status(&z("none")), Some(404));
    assert_eq!(r.prop_status(&QName::dav("displaynamex")), Some(404));
    let (_, missing) = r.prop(&z("none")).unwrap();
    assert!(missing.children.is_empty());
    // Only unknown ones: a single 404 propstat.
    let r = s.props_of("/f", &[z("none")]).await;
    assert_eq!(r.propstats.len(), 1);
    assert_eq!(r.propstats[0].status, 404);
    // A property that does not apply to collections.
    s.mkcol("/c/").await;
    let r = s
        .props_of(
            "/c/",
            &[QName::dav("getcontentlength"), QName::dav("resourcetype")],
        )
        .await;
    assert_eq!(r.prop_status(&QName::dav("resourcetype")), Some(200));
    assert!(r.is_collection());
    assert_eq!(r.prop_status(&QName::dav("getcontentlength")), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allprop_includes_dead_properties() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/f", "x").await;
    s.set_prop("/c/f", "p", "dead value").await;
    s.set_prop("/c/", "q", "on the collection").await;
    let ms = s.propfind_ms("/c/", Some("1"), "").await;
    let (st, p) = ms.get("/c/f").prop(&z("p")).expect("dead prop in allprop");
    assert_eq!((st, p.text()), (200, "dead value".to_owned()));
    let (st, q) = ms.get("/c/").prop(&z("q")).expect("dead prop in allprop");
    assert_eq!((st, q.text()), (200, "on the collection".to_owned()));
    // allprop + include of an unknown name reports it as 404 next to everything else.
    let body = r#"<D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:allprop/><D:include><Z:nothere/></D:include></D:propfind>"#;
    let ms = s.propfind_ms("/c/f", Some("0"), body).await;
    let r = ms.only();
    assert_eq!(r.prop_status(&z("p")), Some(200));
    assert_eq!(r.prop_status(&QName::dav("getetag")), Some(200));
    assert_eq!(r.prop_status(&z("nothere")), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allprop_returns_included_live_properties_it_leaves_out_otherwise() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let plain = s.propfind_ms("/f", Some("0"), "").await;
    assert_eq!(plain.only().prop_status(&QName::dav("resource-id")), None);
    let body = r#"<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:resource-id/><D:quota-used-bytes/><D:resource-id/></D:include></D:propfind>"#;
    let ms = s.propfind_ms("/f", Some("0"), body).await;
    let r = ms.only();
    let (st, id) = r
        .prop(&QName::dav("resource-id"))
        .expect("included resource-id");
    assert_eq!(st, 200);
    let href = id
        .elements()
        .find(|e| e.name.is_dav("href"))
        .map(|h| h.text())
        .unwrap_or_default();
    assert!(href.starts_with("urn:uuid:"), "{href}");
    assert_eq!(r.prop_status(&QName::dav("getetag")), Some(200));
    // Quota figures are computed for an included name as for a named one.
    for path in ["/f", "/"] {
        let named = s
            .props_of(path, &[QName::dav("quota-used-bytes")])
            .await
            .prop(&QName::dav("quota-used-bytes"))
            .map(|(st, e)| (st, e.text()));
        let ms = s.propfind_ms(path, Some("0"), body).await;
        let included = ms
            .only()
            .prop(&QName::dav("quota-used-bytes"))
            .map(|(st, e)| (st, e.text()));
        assert_eq!(included, named, "{path}");
        assert_eq!(included.map(|x| x.0), Some(200), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_formats() {
    let s = TestServer::start().await;
    tree(&s).await;
    let ms = s.propfind_ms("/", Some("infinity"), "").await;
    for r in &ms.responses {
        let lm = r.dav_text("getlastmodified").expect("getlastmodified");
        assert!(is_imf_fixdate(&lm), "getlastmodified {lm:?} of {}", r.href);
        match r.prop(&QName::dav("creationdate")) {
            Some((200, e)) => {
                assert!(
                    is_rfc3339_seconds(&e.text()),
                    "creationdate {:?} of {}",
                    e.text(),
                    r.href
                )
            }
            Some((404, _)) => {}
            other => panic!("creationdate of {}: {:?}", r.href, other.map(|x| x.0)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_properties_match_get_headers() {
    let s = TestServer::start().await;
    tree(&s).await;
    s.put("/c/page.html", "<p>hi</p>").await;
    s.put("/c/empty", "").await;
    let ms = s.propfind_ms("/c/", Some("infinity"), "").await;
    let mut files = 0;
    for r in &ms.responses {
        if r.is_collection() {
            assert!(r.dav("resourcetype").is_some());
            continue;
        }
        files += 1;
        let rt = r.dav("resourcetype").expect("resourcetype on files");
        assert!(rt.children.is_empty(), "file resourcetype is empty");
        let g = s.get(&r.href).await;
        assert_eq!(g.status, 200, "GET {}", r.href);
        let etag = r
            .dav_text("getetag")
            .unwrap_or_else(|| panic!("{} lacks getetag", r.href));
        assert_eq!(g.header("etag"), Some(etag.as_str()), "{}", r.href);
        assert_eq!(
            g.header("content-length").map(str::to_owned),
            r.dav_text("getcontentlength")
        );
        assert_eq!(
            g.header("content-type").map(str::to_owned),
            r.dav_text("getcontenttype")
        );
        assert_eq!(
            g.header("last-modified").map(str::to_owned),
            r.dav_text("getlastmodified")
        );
    }
    assert_eq!(files, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_400() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let bad = [
        ("truncated", r#"<D:propfind xmlns:D="DAV:"><D:prop>"#),
        ("not xml", "hello there"),
        ("wrong root", r#"<D:propertyupdate xmlns:D="DAV:"/>"#),
        ("root without namespace", "<propfind><allprop/></propfind>"),
        (
            "root in other namespace",
            r#"<propfind xmlns="urn:x"><allprop/></propfind>"#,
        ),
        (
            "undeclared prefix",
            r#"<x:propfind><x:allprop/></x:propfind>"#,
        ),
        (
            "undeclared prefix inside",
            r#"<D:propfind xmlns:D="DAV:"><D:prop><y:p/></D:prop></D:propfind>"#,
        ),
        (
            "empty prefix binding",
            r#"<D:propfind xmlns:D="DAV:" xmlns:x=""><D:allprop/></D:propfind>"#,
        ),
        (
            "two choices",
            r#"<D:propfind xmlns:D="DAV:"><D:propname/><D:prop><D:getetag/></D:prop></D:propfind>"#,
        ),
        ("no choice", r#"<D:propfind xmlns:D="DAV:"></D:propfind>"#),
        (
            "two roots",
            r#"<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind><D:propfind xmlns:D="DAV:"/>"#,
        ),
        (
            "entity bomb",
            r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><D:propfind xmlns:D="DAV:"><D:prop><D:getetag>&lol3;</D:getetag></D:prop></D:propfind>"#,
        ),
        (
            "external entity",
            r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><D:propfind xmlns:D="DAV:"><D:prop><D:getetag>&e;</D:getetag></D:prop></D:propfind>"#,
        ),
        (
            "undefined entity",
            r#"<D:propfind xmlns:D="DAV:"><D:prop>&nope;</D:prop></D:propfind>"#,
        ),
    ];
    for (what, body) in bad {
        let r = s.propfind("/f", Some("0"), body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    // Invalid UTF-8.
    let r = s
        .req("PROPFIND", "/f")
        .header("Depth", "0")
        .body(b"<D:propfind xmlns:D=\"DAV:\"><D:prop><D:g\xff\xfe/></D:prop></D:propfind>".to_vec())
        .send()
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_forms_and_encodings_parse_the_same() {
    let s = TestServer::start().await;
    s.put("/f.txt", "x").await;
    s.set_prop("/f.txt", "p", "v").await;
    let reference = s
        .propfind_ms(
            "/f.txt",
            Some("0"),
            r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:getcontentlength/><Z:p xmlns:Z="urn:z"/><Z:missing xmlns:Z="urn:z"/></D:prop></D:propfind>"#,
        )
        .await;
    let variants = [
        r#"<propfind xmlns="DAV:"><prop><getetag/><getcontentlength/><p xmlns="urn:z"/><missing xmlns="urn:z"/></prop></propfind>"#,
        r#"<weird:propfind xmlns:weird="DAV:" xmlns:D="urn:z"><weird:prop><weird:getetag/><weird:getcontentlength/><D:p/><D:missing/></weird:prop></weird:propfind>"#,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- comment --><D:propfind xmlns:D=\"DAV:\">\n  <D:prop>\n    <D:getetag/>\n    <D:getcontentlength/>\n    <Z:p xmlns:Z=\"urn:z\"/>\n    <Z:missing xmlns:Z=\"urn:z\"></Z:missing>\n  </D:prop>\n<Z:unknown xmlns:Z=\"urn:z\"/></D:propfind>",
    ];
    let text = |ms: &Multistatus, name: &QName| ms.only().prop(name).map(|(s, e)| (s, e.text()));
    for body in variants {
        let ms = s.propfind_ms("/f.txt", Some("0"), body).await;
        assert_eq!(ms.outcomes(), reference.outcomes(), "{body}");
        assert_eq!(
            text(&ms, &QName::dav("getetag")),
            text(&reference, &QName::dav("getetag"))
        );
        assert_eq!(text(&ms, &z("p")), Some((200, "v".to_owned())));
    }
    // UTF-16 with a byte-order mark, both byte orders, and UTF-8 with a BOM.
    let src = variants[0];
    let mut le = vec![0xFF, 0xFE];
    le.extend(src.encode_utf16().flat_map(u16::to_le_bytes));
    let mut be = vec![0xFE, 0xFF];
    be.extend(src.encode_utf16().flat_map(u16::to_be_bytes));
    let mut u8bom = vec![0xEF, 0xBB, 0xBF];
    u8bom.extend_from_slice(src.as_bytes());
    for (what, body) in [("UTF-16LE", le), ("UTF-16BE", be), ("UTF-8 BOM", u8bom)] {
        let r = s
            .req("PROPFIND", "/f.txt")
            .header("Depth", "0")
            .header("Content-Type", "text/xml")
            .body(body)
            .send()
            .await;
        assert_eq!(r.ms().outcomes(), reference.outcomes(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_infinity_can_be_refused() {
    let s = TestServer::with_config(DavConfig {
        depth_infinity: false,
        ..Default::default()
    })
    .await;
    tree(&s).await;
    for depth in [Some("infinity"), None] {
        let r = s.propfind("/c/", depth, "").await;
        assert_eq!(r.status, 403, "Depth {depth:?}");
        assert_eq!(r.dav_error(), vec![QName::dav("propfind-finite-depth")]);
    }
    assert_eq!(s.propfind_ms("/c/", Some("1"), "").await.responses.len(), 3);
    // On a file Depth does not matter.
    assert_eq!(
        s.propfind_ms("/c/a.txt", Some("infinity"), "")
            .await
            .responses
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_infinity_limit_refuses_larger_trees() {
    let s = TestServer::with_config(DavConfig {
        depth_infinity_limit: 20,
        ..Default::default()
    })
    .await;
    for i in 0..4 {
        s.mkcol(&format!("/d{i}/")).await;
        for j in 0..4 {
            write_file(s.root(), &format!("d{i}/f{j}"), b"x");
        }
    }
    // 4 collections + 16 files = 20 members: exactly at the bound, listed in full.
    let ms = s.propfind("/", Some("infinity"), "").await.ms();
    assert_eq!(ms.responses.len(), 21);
    assert!(ms.responses.iter().all(|r| r.status.is_none()));
    // One more and the request is refused before anything is listed.
    write_file(s.root(), "d0/extra", b"x");
    let r = s.propfind("/", Some("infinity"), "").await;
    assert_eq!(r.status, 403);
    let err = parse_document(&r.body, &Limits::default()).unwrap();
    assert!(err.name.is_dav("error"));
    assert!(err
        .elements()
        .any(|e| e.name.is_dav("propfind-finite-depth")));
    // A subtree within the bound is still served.
    assert_eq!(
        s.propfind("/d1/", Some("infinity"), "")
            .await
            .ms()
            .responses
            .len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_1_listing_is_not_cut_by_the_infinity_limit() {
    let s = TestServer::with_config(DavConfig {
        depth_infinity_limit: 5,
        ..Default::default()
    })
    .await;
    for j in 0..8 {
        write_file(s.root(), &format!("wide/f{j}"), b"x");
    }
    let ms = s.propfind_ms("/wide/", Some("1"), "").await;
    assert_eq!(
        ms.hrefs().len(),
        9,
        "Depth 1 listing cut by the Depth: infinity limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_depth_1_listing_is_complete() {
    let s = TestServer::start().await;
    const N: usize = 2000;
    let dir = s.root().join("big");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..N {
        std::fs::write(dir.join(format!("file-{i:05}.txt")), i.to_string()).unwrap();
    }
    let ms = s
        .propfind_ms(
            "/big/",
            Some("1"),
            r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/><D:getetag/></D:prop></D:propfind>"#,
        )
        .await;
    let map = ms.map(); // one response per href
    assert_eq!(map.len(), N + 1);
    for i in 0..N {
        let href = format!("/big/file-{i:05}.txt");
        let r = map.get(&href).unwrap_or_else(|| panic!("{href} missing"));
        assert_eq!(
            r.dav_text("getcontentlength"),
            Some(i.to_string().len().to_string())
        );
    }
}
