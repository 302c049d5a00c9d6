//! RFC 6578 sync-collection (checklist SY-1..SY-9): the REPORT over changes made through davit
//! and by other programs in the served directory, tokens, limits and continuations, the live
//! properties. Answers are read with davit-proto's `MultistatusReader`.

use crate::common::*;
use davit_proto::xml::{MultistatusReader, PropFind, QName, Response, SyncCollection, SyncLevel};
use davit_server::auth::{Access, RuleConfig};
use davit_server::DavConfig;
use std::collections::BTreeSet;

/// A sync-collection answer, read per response.
#[derive(Debug)]
struct Answer {
    /// Hrefs listed with propstats (new or changed), in order.
    changed: Vec<Response>,
    /// Hrefs listed with 404 (removed), in order.
    removed: Vec<String>,
    /// True when the Request-URI came back with 507 (truncated).
    truncated: bool,
    token: String,
}

impl Answer {
    fn changed_hrefs(&self) -> BTreeSet<String> {
        self.changed.iter().map(|r| r.href.clone()).collect()
    }

    fn removed_hrefs(&self) -> BTreeSet<String> {
        self.removed.iter().cloned().collect()
    }

    fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty() && !self.truncated
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn body(token: Option<&str>, level: SyncLevel, limit: Option<u64>) -> String {
    SyncCollection {
        token: token.map(str::to_owned),
        level: Some(level),
        props: PropFind::Prop(vec![QName::dav("getetag"), QName::dav("resourcetype")]),
        limit,
    }
    .to_xml()
}

async fn report(s: &TestServer, path: &str, body: String) -> Resp {
    s.req("REPORT", path)
        .header("Content-Type", "application/xml")
        .body(body)
        .send()
        .await
}

fn read(r: &Resp, root: &str) -> Answer {
    assert_eq!(r.status, 207, "{}", r.text());
    let mut reader = MultistatusReader::new(&r.body[..]);
    let mut a = Answer {
        changed: Vec::new(),
        removed: Vec::new(),
        truncated: false,
        token: String::new(),
    };
    let mut seen = BTreeSet::new();
    while let Some(resp) = reader.next_response().expect("multistatus parses") {
        assert!(seen.insert(resp.href.clone()), "{} listed twice", resp.href);
        match resp.status {
            Some(404) => a.removed.push(resp.href.clone()),
            Some(507) if resp.href == root => {
                assert!(
                    resp.error
                        .iter()
                        .any(|e| e.is_dav("number-of-matches-within-limits")),
                    "507 without its condition"
                );
                a.truncated = true;
            }
            Some(other) => panic!("unexpected status {other} for {}", resp.href),
            None => {
                assert!(!resp.propstats.is_empty(), "{}", resp.href);
                a.changed.push(resp);
            }
        }
    }
    a.token = reader
        .sync_token()
        .unwrap_or_else(|| panic!("no sync-token: {}", r.text()))
        .to_owned();
    assert!(a.token.starts_with("urn:"), "token {} is a URI", a.token);
    a
}

async fn sync(s: &TestServer, path: &str, token: Option<&str>, level: SyncLevel) -> Answer {
    read(&report(s, path, body(token, level, None)).await, path)
}

async fn tree() -> TestServer {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/c/").await.status, 201);
    for f in ["m", "o", "p"] {
        assert_eq!(s.put(&format!("/c/{f}"), "old").await.status, 201);
    }
    assert_eq!(s.mkcol("/c/sub/").await.status, 201);
    assert_eq!(s.put("/c/sub/deep", "d").await.status, 201);
    s
}

fn valid_sync_token_refused(r: &Resp) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.dav_error().iter().any(|e| e.is_dav("valid-sync-token")),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn initial_sync_lists_members_within_the_level_with_their_properties() {
    let s = tree().await;
    let one = sync(&s, "/c/", None, SyncLevel::One).await;
    assert_eq!(
        one.changed_hrefs(),
        set(&["/c/m", "/c/o", "/c/p", "/c/sub/"])
    );
    assert!(one.removed.is_empty());
    let m = one.changed.iter().find(|r| r.href == "/c/m").expect("m");
    let etag = s.head("/c/m").await.header("etag").map(str::to_owned);
    assert_eq!(
        m.prop(&QName::dav("getetag")).map(|e| e.text()),
        etag,
        "getetag as PROPFIND gives it"
    );
    let sub = one
        .changed
        .iter()
        .find(|r| r.href == "/c/sub/")
        .expect("sub");
    assert!(sub.live().is_collection);
    let all = sync(&s, "/c/", None, SyncLevel::Infinite).await;
    assert_eq!(
        all.changed_hrefs(),
        set(&["/c/m", "/c/o", "/c/p", "/c/sub/", "/c/sub/deep"])
    );
}

#[tokio::test]
async fn changes_through_davit_are_listed_once_each() {
    let s = tree().await;
    let first = sync(&s, "/c/", None, SyncLevel::Infinite).await;
    assert_eq!(s.put("/c/n", "new").await.status, 201);
    assert_eq!(s.put("/c/m", "new bytes").await.status, 204);
    assert_eq!(s.delete("/c/o").await.status, 204);
    // Created, then removed again, between two syncs.
    assert_eq!(s.put("/c/t", "t").await.status, 201);
    assert_eq!(s.delete("/c/t").await.status, 204);
    // A rename is a removal and an addition.
    // Only a dead property changes.
    s.set_prop("/c/sub/deep", "note", "hello").await;
    let mv = s
        .req("MOVE", "/c/p")
        .header("Destination", &s.url("/c/q"))
        .send()
        .await;
    assert_eq!(mv.status, 201);
    assert_eq!(s.mkcol("/c/k/").await.status, 201);
    let next = sync(&s, "/c/", Some(&first.token), SyncLevel::Infinite).await;
    assert_eq!(
        next.changed_hrefs(),
        set(&["/c/n", "/c/m", "/c/q", "/c/k/", "/c/sub/deep"])
    );
    assert_eq!(next.removed_hrefs(), set(&["/c/o", "/c/t", "/c/p"]));
    assert_ne!(next.token, first.token, "SY-9: the token changed");
}

#[tokio::test]
async fn changes_made_directly_in_the_served_directory_appear_in_the_next_sync() {
    let s = tree().await;
    let first = sync(&s, "/c/", None, SyncLevel::Infinite).await;
    let c = s.root().join("c");
    std::fs::write(c.join("ext"), "by another program").unwrap();
    // A different length, so the ETag differs even within one timestamp tick.
    std::fs::write(c.join("m"), "changed outside davit").unwrap();
    std::fs::remove_file(c.join("o")).unwrap();
    std::fs::rename(c.join("p"), c.join("p2")).unwrap();
    std::fs::create_dir(c.join("newdir")).unwrap();
    std::fs::write(c.join("newdir").join("x"), "x").unwrap();
    let next = sync(&s, "/c/", Some(&first.token), SyncLevel::Infinite).await;
    assert_eq!(
        next.changed_hrefs(),
        set(&["/c/ext", "/c/m", "/c/p2", "/c/newdir/", "/c/newdir/x"])
    );
    assert_eq!(next.removed_hrefs(), set(&["/c/o", "/c/p"]));
    // Removed, then created again: listed as changed.
    std::fs::remove_file(c.join("ext")).unwrap();
    let between = sync(&s, "/c/", Some(&next.token), SyncLevel::Infinite).await;
    assert_eq!(between.removed_hrefs(), set(&["/c/ext"]));
    std::fs::write(c.join("ext"), "again").unwrap();
    let again = sync(&s, "/c/", Some(&next.token), SyncLevel::Infinite).await;
    assert_eq!(again.changed_hrefs(), set(&["/c/ext"]));
    assert!(again.removed.is_empty());
}

#[tokio::test]
async fn a_removed_collection_is_listed_without_its_members() {
    let s = tree().await;
    let first = sync(&s, "/c/", None, SyncLevel::Infinite).await;
    std::fs::remove_dir_all(s.root().join("c/sub")).unwrap();
    let next = sync(&s, "/c/", Some(&first.token), SyncLevel::Infinite).await;
    assert_eq!(next.removed_hrefs(), set(&["/c/sub/"]));
    assert!(next.changed.is_empty());
}

#[tokio::test]
async fn a_sync_with_no_change_has_no_responses_and_keeps_the_token() {
    let s = tree().await;
    let first = sync(&s, "/c/", None, SyncLevel::One).await;
    let again = sync(&s, "/c/", Some(&first.token), SyncLevel::One).await;
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(again.token, first.token);
    // A change below the level does not show at level 1.
    assert_eq!(s.put("/c/sub/deep", "changed").await.status, 204);
    let shallow = sync(&s, "/c/", Some(&first.token), SyncLevel::One).await;
    assert!(
        shallow.changed.is_empty() && shallow.removed.is_empty(),
        "{shallow:?}"
    );
}

#[tokio::test]
async fn foreign_malformed_future_and_expired_tokens_fail_valid_sync_token() {
    let config = DavConfig {
        sync_max_tombstones: 2,
        ..DavConfig::default()
    };
    let s = TestServer::with_config(config).await;
    assert_eq!(s.mkcol("/c/").await.status, 201);
    let first = sync(&s, "/c/", None, SyncLevel::One).await;
    let (prefix, _) = first.token.rsplit_once(':').expect("token has a sequence");
    for bad in [
        "http://bogus/1".to_owned(),
        "urn:davit:sync:0123456789abcdef0123456789abcdef:0".to_owned(),
        format!("{prefix}:x"),
        format!("{prefix}:999999"),
    ] {
        let r = report(&s, "/c/", body(Some(&bad), SyncLevel::One, None)).await;
        valid_sync_token_refused(&r);
    }
    for f in ["a", "b", "c"] {
        assert_eq!(s.put(&format!("/c/{f}"), "x").await.status, 201);
        assert_eq!(s.delete(&format!("/c/{f}")).await.status, 204);
    }
    // Three removals, two remembered: the first token points into forgotten history.
    let r = report(&s, "/c/", body(Some(&first.token), SyncLevel::One, None)).await;
    valid_sync_token_refused(&r);
    // Starting over works.
    let fresh = sync(&s, "/c/", None, SyncLevel::One).await;
    assert!(fresh.changed.is_empty());
}

#[tokio::test]
async fn a_limit_truncates_with_507_and_the_token_continues_exactly_after() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/c/").await.status, 201);
    let first = sync(&s, "/c/", None, SyncLevel::One).await;
    let names = ["f1", "f2", "f3", "f4", "f5"];
    for f in names {
        assert_eq!(s.put(&format!("/c/{f}"), "x").await.status, 201);
    }
    let mut token = first.token.clone();
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let r = report(&s, "/c/", body(Some(&token), SyncLevel::One, Some(2))).await;
        let a = read(&r, "/c/");
        pages += 1;
        assert!(a.changed.len() <= 2);
        got.extend(a.changed.iter().map(|x| x.href.clone()));
        token = a.token;
        if !a.truncated {
            break;
        }
        assert_eq!(a.changed.len(), 2, "a truncated page is full");
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = names.iter().map(|f| format!("/c/{f}")).collect();
    assert_eq!(got, want, "every change exactly once, in order");
    let after = sync(&s, "/c/", Some(&token), SyncLevel::One).await;
    assert!(after.is_empty());
}

#[tokio::test]
async fn depth_level_and_target_are_checked() {
    let s = tree().await;
    let r = s
        .req("REPORT", "/c/")
        .header("Depth", "1")
        .body(body(None, SyncLevel::One, None))
        .send()
        .await;
    assert_eq!(r.status, 400, "SY-6: Depth 1");
    let level2 = body(None, SyncLevel::One, None).replace(">1<", ">2<");
    assert_eq!(report(&s, "/c/", level2).await.status, 400);
    // No sync-level: an older draft's Depth stands in.
    let old = body(None, SyncLevel::One, None).replace("<D:sync-level>1</D:sync-level>", "");
    let r = s
        .req("REPORT", "/c/")
        .header("Depth", "1")
        .body(old)
        .send()
        .await;
    assert_eq!(read(&r, "/c/").changed.len(), 4);
    let file = report(&s, "/c/m", body(None, SyncLevel::One, None)).await;
    assert_eq!(file.status, 403);
    assert!(file
        .dav_error()
        .iter()
        .any(|e| e.is_dav("supported-report")));
    let other = report(
        &s,
        "/c/",
        r#"<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"/>"#.into(),
    )
    .await;
    assert_eq!(other.status, 403);
    assert!(other
        .dav_error()
        .iter()
        .any(|e| e.is_dav("supported-report")));
    assert_eq!(
        report(&s, "/nothing/", body(None, SyncLevel::One, None))
            .await
            .status,
        404
    );
    assert_eq!(report(&s, "/c/", "<oops".into()).await.status, 400);
}

#[tokio::test]
async fn sync_token_and_supported_report_set_are_protected_live_properties() {
    let s = tree().await;
    let a = sync(&s, "/c/", None, SyncLevel::One).await;
    let props = s
        .props_of(
            "/c/",
            &[QName::dav("sync-token"), QName::dav("supported-report-set")],
        )
        .await;
    assert_eq!(props.dav_text("sync-token"), Some(a.token.clone()), "SY-1");
    let set_ = props
        .dav("supported-report-set")
        .expect("supported-report-set");
    let reports: Vec<_> = set_
        .elements()
        .flat_map(|sr| sr.elements())
        .flat_map(|r| r.elements())
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(reports, vec![QName::dav("sync-collection")], "SY-2");
    let allprop = s
        .propfind_ms(
            "/c/",
            Some("0"),
            r#"<propfind xmlns="DAV:"><allprop/></propfind>"#,
        )
        .await;
    let root = &allprop.responses[0];
    assert!(
        root.prop(&QName::dav("sync-token")).is_none(),
        "not in allprop"
    );
    assert!(root.prop(&QName::dav("supported-report-set")).is_none());
    let r = s
        .proppatch(
            "/c/",
            r#"<propertyupdate xmlns="DAV:"><set><prop><sync-token>x</sync-token></prop></set></propertyupdate>"#,
        )
        .await;
    assert_eq!(
        r.ms().responses[0].prop_status(&QName::dav("sync-token")),
        Some(403)
    );
    let allow = s.req("OPTIONS", "/c/").send().await;
    assert!(allow.header("allow").unwrap_or("").contains("REPORT"));
}

#[tokio::test]
async fn listings_leave_out_what_the_user_may_not_read() {
    let mut auth = auth_with_users(&["ann", "bob"]);
    auth.rules.push(RuleConfig {
        path: "/c/private".into(),
        users: vec!["bob".into()],
        access: Access::None,
    });
    let s = TestServer::with_auth(auth).await;
    assert_eq!(s.req("MKCOL", "/c/").user("ann").send().await.status, 201);
    assert_eq!(
        s.req("MKCOL", "/c/private/")
            .user("ann")
            .send()
            .await
            .status,
        201
    );
    let r = s
        .req("PUT", "/c/private/x")
        .user("ann")
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 201);
    let r = s.req("PUT", "/c/open").user("ann").body("x").send().await;
    assert_eq!(r.status, 201);
    let as_bob = s
        .req("REPORT", "/c/")
        .user("bob")
        .body(body(None, SyncLevel::Infinite, None))
        .send()
        .await;
    assert_eq!(read(&as_bob, "/c/").changed_hrefs(), set(&["/c/open"]));
    let as_ann = s
        .req("REPORT", "/c/")
        .user("ann")
        .body(body(None, SyncLevel::Infinite, None))
        .send()
        .await;
    assert_eq!(
        read(&as_ann, "/c/").changed_hrefs(),
        set(&["/c/open", "/c/private/", "/c/private/x"])
    );
}

#[tokio::test]
async fn a_sync_token_in_the_if_header_matches_while_the_collection_is_unchanged() {
    let s = tree().await;
    let a = sync(&s, "/c/", None, SyncLevel::Infinite).await;
    let tagged = |token: &str| format!("<{}> (<{token}>)", s.url("/c/"));
    let r = s
        .req("PUT", "/c/new")
        .header("If", &tagged(&a.token))
        .body("n")
        .send()
        .await;
    assert_eq!(r.status, 201, "SY-10: the current token holds");
    // The PUT changed /c/: the old token no longer describes it.
    let r = s
        .req("MKCOL", "/c/k/")
        .header("If", &tagged(&a.token))
        .send()
        .await;
    assert_eq!(r.status, 412, "SY-10: a stale token fails");
    let b = sync(&s, "/c/", Some(&a.token), SyncLevel::Infinite).await;
    let r = s
        .req("MKCOL", "/c/k/")
        .header("If", &tagged(&b.token))
        .send()
        .await;
    assert_eq!(r.status, 201);
    // A token of another store never matches.
    let r = s
        .req("PUT", "/c/other")
        .header(
            "If",
            &tagged("urn:davit:sync:0123456789abcdef0123456789abcdef:1"),
        )
        .body("o")
        .send()
        .await;
    assert_eq!(r.status, 412);
}

#[tokio::test]
async fn a_symlink_loop_is_walked_once() {
    let s = TestServer::start().await;
    std::fs::create_dir_all(s.root().join("c/a")).unwrap();
    std::fs::write(s.root().join("c/a/f"), "f").unwrap();
    std::os::unix::fs::symlink("..", s.root().join("c/a/loop")).unwrap();
    let a = sync(&s, "/c/", None, SyncLevel::Infinite).await;
    assert_eq!(
        a.changed_hrefs(),
        set(&["/c/a/", "/c/a/f", "/c/a/loop/"]),
        "the loop's members are not walked again"
    );
}
