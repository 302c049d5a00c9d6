//! SEARCH (RFC 5323 basicsearch): names matched with `like`, kinds with `is-collection`,
//! scopes and depths, the limit, what the user may read, and the parts davit refuses by name.

use crate::common::*;
use davit_server::auth::{Access, RuleConfig};

fn search_body(scope: &str, depth: &str, where_: &str, extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<D:searchrequest xmlns:D="DAV:"><D:basicsearch>
<D:select><D:prop><D:resourcetype/><D:getcontentlength/></D:prop></D:select>
<D:from><D:scope><D:href>{scope}</D:href><D:depth>{depth}</D:depth></D:scope></D:from>
{where_}{extra}
</D:basicsearch></D:searchrequest>"#
    )
}

fn name_like(pattern: &str) -> String {
    format!(
        "<D:where><D:like><D:prop><D:displayname/></D:prop><D:literal>{pattern}</D:literal></D:like></D:where>"
    )
}

async fn fill(s: &TestServer) {
    for d in ["/docs/", "/docs/Reports/", "/docs/old/", "/other/"] {
        s.mkcol(d).await;
    }
    for (f, body) in [
        ("/docs/report-2024.txt", "a"),
        ("/docs/Reports/Q1%20report.pdf", "bb"),
        ("/docs/old/notes.txt", "ccc"),
        ("/docs/old/REPORT%20%C3%BC.md", "dddd"),
        ("/other/report.txt", "e"),
    ] {
        assert_eq!(s.put(f, body).await.status, 201, "{f}");
    }
}

fn hrefs(r: &Resp) -> Vec<String> {
    let mut h: Vec<String> = r.ms().responses.into_iter().map(|r| r.href).collect();
    h.sort();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_names_below_the_scope() {
    let s = TestServer::start().await;
    fill(&s).await;
    let r = s
        .req("SEARCH", "/docs/")
        .header("Content-Type", "application/xml")
        .body(search_body(
            "/docs/",
            "infinity",
            &name_like("%report%"),
            "",
        ))
        .send()
        .await;
    assert_eq!(r.status, 207, "{}", r.text());
    assert_eq!(
        hrefs(&r),
        [
            "/docs/Reports/",
            "/docs/Reports/Q1%20report.pdf",
            "/docs/old/REPORT%20%C3%BC.md",
            "/docs/report-2024.txt",
        ]
    );
    // The properties asked for come with each match.
    let pdf = r
        .ms()
        .responses
        .into_iter()
        .find(|x| x.href == "/docs/Reports/Q1%20report.pdf")
        .expect("pdf");
    let (status, len) = pdf
        .prop(&davit_proto::xml::QName::dav("getcontentlength"))
        .expect("length");
    assert_eq!((status, len.text().as_str()), (200, "2"));

    // Files only, one level down, relative scope.
    let files_only = "<D:where><D:and><D:like><D:prop><D:displayname/></D:prop>\
         <D:literal>%report%</D:literal></D:like><D:not><D:is-collection/></D:not></D:and></D:where>";
    let r = s
        .req("SEARCH", "/docs/")
        .body(search_body("Reports/", "1", files_only, ""))
        .send()
        .await;
    assert_eq!(hrefs(&r), ["/docs/Reports/Q1%20report.pdf"]);
    let r = s
        .req("SEARCH", "/docs/")
        .body(search_body("/docs/", "1", files_only, ""))
        .send()
        .await;
    assert_eq!(hrefs(&r), ["/docs/report-2024.txt"]);
    // `_` is one character, and nothing matches nothing.
    let r = s
        .req("SEARCH", "/")
        .body(search_body("/", "infinity", &name_like("notes.tx_"), ""))
        .send()
        .await;
    assert_eq!(hrefs(&r), ["/docs/old/notes.txt"]);
    let r = s
        .req("SEARCH", "/")
        .body(search_body("/", "infinity", &name_like("%zzz%"), ""))
        .send()
        .await;
    assert_eq!((r.status, hrefs(&r)), (207, Vec::<String>::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_ends_the_answer_with_507() {
    let s = TestServer::start().await;
    fill(&s).await;
    let r = s
        .req("SEARCH", "/")
        .body(search_body(
            "/",
            "infinity",
            &name_like("%report%"),
            "<D:limit><D:nresults>2</D:nresults></D:limit>",
        ))
        .send()
        .await;
    assert_eq!(r.status, 207);
    let ms = r.ms();
    let found: Vec<_> = ms.responses.iter().filter(|x| x.status.is_none()).collect();
    assert_eq!(found.len(), 2);
    let cut: Vec<_> = ms.responses.iter().filter(|x| x.status.is_some()).collect();
    assert_eq!(cut.len(), 1);
    assert_eq!((cut[0].href.as_str(), cut[0].status), ("/", Some(507)));
    assert_eq!(
        cut[0].error,
        [davit_proto::xml::QName::dav(
            "number-of-matches-within-limits"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_searched_is_refused_with_its_reason() {
    let s = TestServer::start().await;
    fill(&s).await;
    let gt = "<D:where><D:gt><D:prop><D:getcontentlength/></D:prop><D:literal>1</D:literal></D:gt></D:where>";
    let r = s
        .req("SEARCH", "/")
        .body(search_body("/", "infinity", gt, ""))
        .send()
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("where operator"), "{}", r.text());
    let r = s
        .req("SEARCH", "/")
        .body(r#"<D:searchrequest xmlns:D="DAV:" xmlns:x="urn:x"><x:sql/></D:searchrequest>"#)
        .send()
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.dav_error(),
        [davit_proto::xml::QName::dav("search-grammar-supported")]
    );
    // A scope outside the Request-URI, or not there at all.
    for scope in ["/other/", "/docs/missing/"] {
        let r = s
            .req("SEARCH", "/docs/")
            .body(search_body(scope, "1", &name_like("%"), ""))
            .send()
            .await;
        assert_eq!(r.status, 400, "{scope}");
        assert_eq!(
            r.dav_error(),
            [davit_proto::xml::QName::dav("search-scope-valid")]
        );
    }
    let r = s.req("SEARCH", "/").body("<not xml").send().await;
    assert_eq!(r.status, 400);
    // OPTIONS of a collection names the grammar.
    let o = s.req("OPTIONS", "/docs/").send().await;
    assert_eq!(o.header("dasl"), Some("<DAV:basicsearch>"));
    assert!(o.header("allow").is_some_and(|a| a.contains("SEARCH")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_shows_only_what_the_user_may_read() {
    let mut auth = auth_with_users(&["alice"]);
    auth.rules.push(RuleConfig {
        path: "/docs/old".into(),
        users: vec!["*".into()],
        access: Access::None,
    });
    let s = TestServer::with_auth(auth).await;
    for d in ["docs/old", "docs/new"] {
        std::fs::create_dir_all(s.root().join(d)).expect("mkdir");
    }
    std::fs::write(s.root().join("docs/old/report"), "x").expect("write");
    std::fs::write(s.root().join("docs/new/report"), "y").expect("write");
    let r = s
        .req("SEARCH", "/docs/")
        .user("alice")
        .body(search_body("/docs/", "infinity", &name_like("report"), ""))
        .send()
        .await;
    assert_eq!(hrefs(&r), ["/docs/new/report"]);
    let r = s
        .req("SEARCH", "/docs/")
        .body(search_body("/docs/", "infinity", &name_like("report"), ""))
        .send()
        .await;
    assert_eq!(r.status, 401);
}
