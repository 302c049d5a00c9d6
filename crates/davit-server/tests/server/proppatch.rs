//! PROPPATCH: order, atomicity, protected properties, exact value round trips, persistence.

use crate::common::*;
use davit_proto::xml::{parse_document, Element, Limits, QName};
use davit_server::DavConfig;

fn update(ops: &str) -> String {
    format!(r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">{ops}</D:propertyupdate>"#)
}

fn set(props: &str) -> String {
    format!("<D:set><D:prop>{props}</D:prop></D:set>")
}

fn remove(props: &str) -> String {
    format!("<D:remove><D:prop>{props}</D:prop></D:remove>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_remove_in_document_order() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let body = update(&format!(
        "{}{}{}{}{}",
        set("<Z:a>1</Z:a><Z:b>2</Z:b><Z:p>gone</Z:p>"),
        remove("<Z:p/>"),
        remove("<Z:q/>"),
        set("<Z:q>2</Z:q>"),
        remove("<Z:never/>")
    ));
    let ms = s.proppatch("/f", &body).await.ms();
    let r = ms.only();
    assert_eq!(r.href, "/f");
    for n in ["a", "b", "p", "q", "never"] {
        assert_eq!(r.prop_status(&z(n)), Some(200), "{n}");
    }
    assert_eq!(r.propstats.len(), 1, "all successes share one propstat");
    assert_eq!(s.z_prop("/f", "a").await.as_deref(), Some("1"));
    assert_eq!(s.z_prop("/f", "b").await.as_deref(), Some("2"));
    assert_eq!(s.z_prop("/f", "p").await, None);
    assert_eq!(s.z_prop("/f", "q").await.as_deref(), Some("2"));
    assert_eq!(s.z_prop("/f", "never").await, None);
    // Setting again replaces the value.
    s.proppatch("/f", &update(&set("<Z:a>one</Z:a>")))
        .await
        .ms();
    assert_eq!(s.z_prop("/f", "a").await.as_deref(), Some("one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.set_prop("/f", "keep", "before").await;
    let body = update(&format!(
        "{}{}",
        set("<Z:a>1</Z:a><D:getetag>\"forged\"</D:getetag>"),
        remove("<Z:keep/>")
    ));
    let ms = s.proppatch("/f", &body).await.ms();
    let r = ms.only();
    assert_eq!(r.prop_status(&QName::dav("getetag")), Some(403));
    assert_eq!(
        r.prop_error(&QName::dav("getetag")),
        vec![QName::dav("cannot-modify-protected-property")]
    );
    assert_eq!(r.prop_status(&z("a")), Some(424));
    assert_eq!(r.prop_status(&z("keep")), Some(424));
    assert_eq!(s.z_prop("/f", "a").await, None, "nothing was applied");
    assert_eq!(s.z_prop("/f", "keep").await.as_deref(), Some("before"));
    let etag = s.get("/f").await.header("etag").unwrap().to_owned();
    assert_ne!(etag, "\"forged\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_properties_are_403() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    for p in [
        "getetag",
        "getlastmodified",
        "getcontentlength",
        "resourcetype",
        "lockdiscovery",
        "supportedlock",
    ] {
        for op in [
            set(&format!("<D:{p}>v</D:{p}>")),
            remove(&format!("<D:{p}/>")),
        ] {
            let ms = s.proppatch("/f", &update(&op)).await.ms();
            let r = ms.only();
            assert_eq!(r.prop_status(&QName::dav(p)), Some(403), "{op}");
            assert_eq!(
                r.prop_error(&QName::dav(p)),
                vec![QName::dav("cannot-modify-protected-property")]
            );
        }
    }
    let r = s.props_of("/f", &[QName::dav("getcontentlength")]).await;
    assert_eq!(r.dav_text("getcontentlength").as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proppatch_changes_neither_etag_nor_last_modified() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let before = s.get("/f").await;
    s.set_prop("/f", "p", "v").await;
    let after = s.get("/f").await;
    assert_eq!(before.header("etag"), after.header("etag"));
    assert_eq!(
        before.header("last-modified"),
        after.header("last-modified")
    );
}

/// Sets `value_xml` (one element) in a PROPPATCH and returns (sent element, returned element).
async fn round_trip(
    s: &TestServer,
    path: &str,
    wrapper_attrs: &str,
    value_xml: &str,
) -> (Element, Element) {
    let body = format!(
        r#"<D:propertyupdate xmlns:D="DAV:"{wrapper_attrs}><D:set><D:prop>{value_xml}</D:prop></D:set></D:propertyupdate>"#
    );
    let sent_doc = parse_document(body.as_bytes(), &Limits::default()).expect("test body parses");
    let sent = sent_doc
        .elements()
        .next()
        .and_then(|set| set.elements().next())
        .and_then(|prop| prop.elements().next())
        .cloned()
        .expect("one property in the body");
    let ms = s.proppatch(path, &body).await.ms();
    assert_eq!(ms.only().prop_status(&sent.name), Some(200), "{value_xml}");
    let r = s.props_of(path, std::slice::from_ref(&sent.name)).await;
    let (status, got) = r.prop(&sent.name).expect("property reported");
    assert_eq!(status, 200);
    (sent, got.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_property_values_round_trip_exactly() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let cases: &[(&str, &str)] = &[
        // Nested elements, attributes (plain and namespaced), mixed content.
        ("", r#"<Z:nested xmlns:Z="urn:z"><x:a xmlns:x="urn:x" k="v" x:q="w&amp;&lt;&quot;">t<x:b/>u<x:c>deep <x:d>er</x:d></x:c>tail</x:a></Z:nested>"#),
        // Significant whitespace and line breaks.
        ("", "<Z:ws xmlns:Z=\"urn:z\">  a\n b\t c  </Z:ws>"),
        ("", "<Z:onlyspace xmlns:Z=\"urn:z\">   </Z:onlyspace>"),
        // Non-BMP and other non-ASCII characters, escaped markup characters.
        ("", "<Z:uni xmlns:Z=\"urn:z\">𐍈 ü 中 😀 &lt;tag&gt; &amp; ]]&gt;</Z:uni>"),
        ("", "<Z:cdata xmlns:Z=\"urn:z\"><![CDATA[<not> & markup]]></Z:cdata>"),
        // xml:lang on the property, and inherited from propertyupdate.
        ("", "<Z:lang xmlns:Z=\"urn:z\" xml:lang=\"de\">Hallo</Z:lang>"),
        (" xml:lang=\"fr-CA\"", "<Z:inherited xmlns:Z=\"urn:z\">Bonjour<Z:inner xml:lang=\"en\">hi</Z:inner></Z:inherited>"),
        // Default namespace inside the value, and an element in no namespace.
        ("", r#"<Z:defns xmlns:Z="urn:z"><inner xmlns="urn:inner"><more/></inner><bare xmlns=""/></Z:defns>"#),
        // Empty value.
        ("", r#"<Z:empty xmlns:Z="urn:z"/>"#),
        // Property in a default namespace declared on itself.
        ("", r#"<selfns xmlns="urn:self">v<child/></selfns>"#),
    ];
    for (attrs, xml) in cases {
        let (sent, got) = round_trip(&s, "/f", attrs, xml).await;
        if let Err(e) = same_infoset(&sent, &got) {
            panic!("{xml}: {e}\nsent {sent:?}\ngot  {got:?}");
        }
    }
    // A prefix used in the value is kept.
    let (_, got) = round_trip(
        &s,
        "/f",
        "",
        r#"<Z:pfx xmlns:Z="urn:z"><q:x xmlns:q="urn:q"/></Z:pfx>"#,
    )
    .await;
    let child = got.elements().next().unwrap();
    assert_eq!(child.prefix.as_deref(), Some("q"));
    // Empty and missing are different.
    let r = s.props_of("/f", &[z("empty"), z("missing")]).await;
    assert_eq!(r.prop_status(&z("empty")), Some(200));
    assert_eq!(r.prop_status(&z("missing")), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_local_name_in_different_namespaces() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let body = r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><A:x xmlns:A="urn:a">1</A:x><B:x xmlns:B="urn:b">2</B:x><x xmlns="">3</x></D:prop></D:set></D:propertyupdate>"#;
    let ms = s.proppatch("/f", body).await.ms();
    let names = [
        QName::new("urn:a", "x"),
        QName::new("urn:b", "x"),
        QName::new("", "x"),
    ];
    for n in &names {
        assert_eq!(ms.only().prop_status(n), Some(200), "{n:?}");
    }
    let r = s.props_of("/f", &names).await;
    let values: Vec<String> = names.iter().map(|n| r.prop(n).unwrap().1.text()).collect();
    assert_eq!(values, ["1", "2", "3"]);
    // Removing one leaves the others.
    let body = r#"<D:propertyupdate xmlns:D="DAV:"><D:remove><D:prop><x xmlns=""/></D:prop></D:remove></D:propertyupdate>"#;
    s.proppatch("/f", body).await.ms();
    let r = s.props_of("/f", &names).await;
    assert_eq!(r.prop_status(&names[0]), Some(200));
    assert_eq!(r.prop_status(&names[1]), Some(200));
    assert_eq!(r.prop_status(&names[2]), Some(404));
    // A DAV: name that is not a live property is an ordinary dead property.
    let body = update(&set("<D:displayname>Ä b</D:displayname>"));
    assert_eq!(
        s.proppatch("/f", &body)
            .await
            .ms()
            .only()
            .prop_status(&QName::dav("displayname")),
        Some(200)
    );
    let r = s.props_of("/f", &[QName::dav("displayname")]).await;
    assert_eq!(r.dav_text("displayname").as_deref(), Some("Ä b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_survive_a_restart() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.mkcol("/c/").await;
    s.set_prop("/f", "p", "persisted 😀").await;
    s.set_prop("/c/", "q", "collection").await;
    let dirs = s.stop().await;
    let s = TestServer::launch(dirs, DavConfig::default()).await;
    assert_eq!(s.z_prop("/f", "p").await.as_deref(), Some("persisted 😀"));
    assert_eq!(s.z_prop("/c/", "q").await.as_deref(), Some("collection"));
    assert_eq!(&s.get("/f").await.body[..], b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proppatch_on_a_collection() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    for path in ["/c/", "/c", "/"] {
        let ms = s
            .proppatch(
                path,
                &update(&set(
                    "<Z:Win32FileAttributes>00000010</Z:Win32FileAttributes>",
                )),
            )
            .await
            .ms();
        let r = ms.only();
        assert_eq!(
            r.prop_status(&z("Win32FileAttributes")),
            Some(200),
            "{path}"
        );
        assert!(r.href.ends_with('/'), "collection href {}", r.href);
    }
    assert_eq!(
        s.z_prop("/c/", "Win32FileAttributes").await.as_deref(),
        Some("00000010")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_proppatch_requests() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    assert_eq!(
        s.req("PROPPATCH", "/f").send().await.status,
        400,
        "missing body"
    );
    for body in [
        "   ",
        r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a>"#,
        r#"<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#,
        r#"<D:propertyupdate xmlns:D="DAV:"/>"#,
        r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><u:a>1</u:a></D:prop></D:set></D:propertyupdate>"#,
    ] {
        assert_eq!(s.proppatch("/f", body).await.status, 400, "{body}");
    }
    assert_eq!(
        s.proppatch("/nope", &update(&set("<Z:a>1</Z:a>")))
            .await
            .status,
        404
    );
    let r = s
        .req("PROPPATCH", "/f")
        .header("If-Match", "\"stale\"")
        .body(update(&set("<Z:a>1</Z:a>")))
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.z_prop("/f", "a").await, None);
}
