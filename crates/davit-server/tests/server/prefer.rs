//! RFC 8144 (Prefer for WebDAV): `return=minimal` on PROPFIND and PROPPATCH, `depth-noroot`,
//! the legacy `Brief: t`, `Preference-Applied` and `Vary`.

use crate::common::*;
use davit_proto::xml::QName;

fn z(local: &str) -> QName {
    QName::new("urn:z", local)
}

async fn tree() -> TestServer {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/c/").await.status, 201);
    assert_eq!(s.put("/c/a.txt", "a").await.status, 201);
    assert_eq!(s.put("/c/b.txt", "bb").await.status, 201);
    s
}

async fn propfind_with(s: &TestServer, path: &str, depth: &str, headers: &[(&str, &str)]) -> Resp {
    let mut r = s
        .req("PROPFIND", path)
        .header("Depth", depth)
        .header("Content-Type", "application/xml")
        .body(prop_body(&[QName::dav("getetag"), z("unset")]));
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.send().await
}

/// The statuses of every propstat of every response, by href.
fn propstat_statuses(r: &Resp) -> Vec<(String, Vec<u16>)> {
    r.ms()
        .responses
        .iter()
        .map(|x| {
            (
                x.href.clone(),
                x.propstats.iter().map(|p| p.status).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn return_minimal_leaves_out_404_propstats() {
    let s = tree().await;
    let full = propfind_with(&s, "/c/a.txt", "0", &[]).await;
    assert_eq!(
        propstat_statuses(&full),
        vec![("/c/a.txt".into(), vec![200, 404])]
    );
    assert_eq!(full.header("preference-applied"), None);
    for (k, v) in [("Prefer", "return=minimal"), ("Brief", "t")] {
        let r = propfind_with(&s, "/c/a.txt", "0", &[(k, v)]).await;
        assert_eq!(
            propstat_statuses(&r),
            vec![("/c/a.txt".into(), vec![200])],
            "{k}"
        );
        assert!(r.ms().responses[0].dav("getetag").is_some());
        assert_eq!(r.header("preference-applied"), Some("return=minimal"));
        assert_eq!(r.header("vary"), Some("Prefer, Brief"));
    }
    // A collection has no getetag and no Z:unset: one empty 200 propstat is left.
    let r = propfind_with(&s, "/c/", "0", &[("Prefer", "return=minimal")]).await;
    let ms = r.ms();
    assert_eq!(ms.responses[0].propstats.len(), 1);
    assert_eq!(ms.responses[0].propstats[0].status, 200);
    assert!(ms.responses[0].propstats[0].props.is_empty());
}

#[tokio::test]
async fn depth_noroot_lists_only_the_members() {
    let s = tree().await;
    let r = propfind_with(
        &s,
        "/c/",
        "1",
        &[("Prefer", "depth-noroot, return=minimal")],
    )
    .await;
    let mut hrefs: Vec<String> = r.ms().responses.iter().map(|x| x.href.clone()).collect();
    hrefs.sort();
    assert_eq!(hrefs, vec!["/c/a.txt".to_owned(), "/c/b.txt".to_owned()]);
    assert_eq!(
        r.header("preference-applied"),
        Some("return=minimal, depth-noroot")
    );
    // Depth 0: no effect, and not claimed.
    let r = propfind_with(&s, "/c/", "0", &[("Prefer", "depth-noroot")]).await;
    assert_eq!(r.ms().responses.len(), 1);
    assert_eq!(r.header("preference-applied"), None);
}

#[tokio::test]
async fn unknown_or_malformed_preferences_change_nothing() {
    let s = tree().await;
    let plain = propfind_with(&s, "/c/", "1", &[]).await;
    let odd = propfind_with(&s, "/c/", "1", &[("Prefer", "foo=bar, return=weird;;=,")]).await;
    assert_eq!(propstat_statuses(&odd), propstat_statuses(&plain));
    assert_eq!(odd.header("preference-applied"), None);
}

#[tokio::test]
async fn proppatch_with_return_minimal_is_200_and_empty_when_all_succeeded() {
    let s = tree().await;
    let set = |name: &str| {
        format!(
            r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><{name}>v</{name}></D:prop></D:set></D:propertyupdate>"#
        )
    };
    let r = s
        .req("PROPPATCH", "/c/a.txt")
        .header("Prefer", "return=minimal")
        .body(set("Z:color"))
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("preference-applied"), Some("return=minimal"));
    assert_eq!(s.z_prop("/c/a.txt", "color").await.as_deref(), Some("v"));
    // A failure is reported in full.
    let r = s
        .req("PROPPATCH", "/c/a.txt")
        .header("Prefer", "return=minimal")
        .body(set("D:getetag"))
        .send()
        .await;
    assert_eq!(
        r.ms().responses[0].prop_status(&QName::dav("getetag")),
        Some(403)
    );
}
