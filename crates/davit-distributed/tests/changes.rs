//! RFC 6578 sync-collection on the distributed backend: the change log in PostgreSQL
//! (`PgChangeLog`) at store level, and REPORTs through davit's own handlers on two instances
//! sharing one database and one bucket: changes made through one are listed by the other, and
//! tokens issued by one are valid on the other. Mirrors the directory backend's cases
//! (crates/davit-server/tests/server/sync.rs). Run by scripts/distributed-test.sh; plain
//! `cargo test` skips these.

mod common;

use bytes::Bytes;
use davit_distributed::{Blobs, Namespace, PgChangeLog, PgLockStore, PgPropStore, PgStorage};
use davit_proto::href::DavPath;
use davit_proto::xml::{MultistatusReader, PropFind, QName, SyncCollection, SyncLevel};
use davit_server::changes::{ChangeLog, LoggedChange, MemberState, Noted, Observed, Scope};
use davit_server::storage::Kind;
use davit_server::{Dav, DavConfig};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

type TestDav = Dav<PgStorage, PgPropStore, PgLockStore>;

/// Runs `test` on a thread of its own: the handlers' futures are polled on it, and
/// unoptimised they need more than a test thread's 2 MiB of stack.
fn run<F: std::future::Future<Output = ()> + 'static>(test: impl FnOnce() -> F + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(test())
        })
        .expect("thread")
        .join()
        .expect("the test panicked");
}

async fn log_on(url: &str, max_tombstones: u64) -> PgChangeLog {
    PgChangeLog::open(common::instance(url).await, max_tombstones)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One davit instance on the database at `url`, with its change log, as the binary builds it.
async fn instance(url: &str, config: DavConfig) -> TestDav {
    let pg = common::instance(url).await;
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .with_upload_log(pg.clone());
    let changes = PgChangeLog::open(pg.clone(), config.sync_max_tombstones)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Dav::new(
        PgStorage::new(Namespace::new(pg.clone()), blobs),
        PgPropStore::new(pg.clone()),
        PgLockStore::new(pg),
        config,
    )
    .with_change_log(Arc::new(changes))
}

/// Two instances on one fresh database.
async fn pair(config: DavConfig) -> (TestDav, TestDav) {
    let url = common::fresh_database().await;
    let a = instance(&url, config.clone()).await;
    let b = instance(&url, config).await;
    (a, b)
}

struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(
    dav: &TestDav,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = tokio::time::timeout(Duration::from_secs(60), dav.handle(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} hung"));
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(60), body.collect())
        .await
        .unwrap_or_else(|_| panic!("the body of {method} {path} hung"))
        .map(|b| b.to_bytes())
        .unwrap_or_else(|e| panic!("the body of {method} {path} broke off: {e}"));
    Answer {
        status: parts.status,
        body,
    }
}

async fn put(dav: &TestDav, path: &str, body: &str) -> StatusCode {
    send(dav, "PUT", path, &[], body).await.status
}

async fn mkcol(dav: &TestDav, path: &str) -> StatusCode {
    send(dav, "MKCOL", path, &[], "").await.status
}

async fn delete(dav: &TestDav, path: &str) -> StatusCode {
    send(dav, "DELETE", path, &[], "").await.status
}

/// A sync-collection answer, read per response.
#[derive(Debug)]
struct Sync {
    /// Hrefs listed with properties (new or changed), in order.
    changed: Vec<String>,
    /// Hrefs listed with 404 (removed), in order.
    removed: Vec<String>,
    /// True when the Request-URI came back with 507 (truncated).
    truncated: bool,
    token: String,
}

impl Sync {
    fn changed(&self) -> BTreeSet<String> {
        self.changed.iter().cloned().collect()
    }

    fn removed(&self) -> BTreeSet<String> {
        self.removed.iter().cloned().collect()
    }

    fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty() && !self.truncated
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn report_body(token: Option<&str>, level: SyncLevel, limit: Option<u64>) -> String {
    SyncCollection {
        token: token.map(str::to_owned),
        level: Some(level),
        props: PropFind::Prop(vec![QName::dav("getetag"), QName::dav("resourcetype")]),
        limit,
    }
    .to_xml()
}

async fn report(dav: &TestDav, path: &str, body: &str) -> Answer {
    send(
        dav,
        "REPORT",
        path,
        &[("Content-Type", "application/xml")],
        body,
    )
    .await
}

fn read(r: &Answer, root: &str) -> Sync {
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.text());
    let mut reader = MultistatusReader::new(&r.body[..]);
    let mut a = Sync {
        changed: Vec::new(),
        removed: Vec::new(),
        truncated: false,
        token: String::new(),
    };
    let mut seen = BTreeSet::new();
    while let Some(resp) = reader.next_response().expect("multistatus parses") {
        assert!(seen.insert(resp.href.clone()), "{} listed twice", resp.href);
        match resp.status {
            Some(404) => a.removed.push(resp.href),
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
                assert!(
                    resp.propstats.iter().any(|p| p.status == 200),
                    "{} has no found properties",
                    resp.href
                );
                a.changed.push(resp.href);
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

async fn sync(dav: &TestDav, path: &str, token: Option<&str>, level: SyncLevel) -> Sync {
    read(
        &report(dav, path, &report_body(token, level, None)).await,
        path,
    )
}

fn valid_sync_token_refused(r: &Answer) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let root = davit_proto::xml::parse_document(&r.body, &Default::default())
        .unwrap_or_else(|e| panic!("error body is not XML ({e}): {}", r.text()));
    assert!(root.name.is_dav("error"), "{}", r.text());
    assert!(
        root.elements().any(|e| e.name.is_dav("valid-sync-token")),
        "{}",
        r.text()
    );
}

/// `/c/` with three files and a collection with one member, made through `dav`.
async fn tree(dav: &TestDav) {
    assert_eq!(mkcol(dav, "/c/").await, StatusCode::CREATED);
    for f in ["m", "o", "p"] {
        assert_eq!(
            put(dav, &format!("/c/{f}"), "old").await,
            StatusCode::CREATED
        );
    }
    assert_eq!(mkcol(dav, "/c/sub/").await, StatusCode::CREATED);
    assert_eq!(put(dav, "/c/sub/deep", "d").await, StatusCode::CREATED);
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn changes_through_one_instance_are_listed_by_the_other() {
    run(|| async {
        let (a, b) = pair(DavConfig::default()).await;
        tree(&b).await;
        let first = sync(&a, "/c/", None, SyncLevel::Infinite).await;
        assert_eq!(
            first.changed(),
            set(&["/c/m", "/c/o", "/c/p", "/c/sub/", "/c/sub/deep"])
        );
        assert!(first.removed.is_empty());

        // Every kind of write, through the other instance.
        assert_eq!(put(&b, "/c/n", "new").await, StatusCode::CREATED);
        assert_eq!(put(&b, "/c/m", "new bytes").await, StatusCode::NO_CONTENT);
        assert_eq!(delete(&b, "/c/o").await, StatusCode::NO_CONTENT);
        // Created, then removed again, between two syncs: only the record tells.
        assert_eq!(put(&b, "/c/t", "t").await, StatusCode::CREATED);
        assert_eq!(delete(&b, "/c/t").await, StatusCode::NO_CONTENT);
        // Only a dead property changes.
        let patch = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:z="urn:x"><D:set><D:prop><z:note>hello</z:note></D:prop></D:set></D:propertyupdate>"#;
        assert_eq!(
            send(&b, "PROPPATCH", "/c/sub/deep", &[], patch)
                .await
                .status,
            StatusCode::MULTI_STATUS
        );
        // A rename is a removal and an addition.
        let mv = send(&b, "MOVE", "/c/p", &[("Destination", "/c/q")], "").await;
        assert_eq!(mv.status, StatusCode::CREATED, "{}", mv.text());
        assert_eq!(mkcol(&b, "/c/k/").await, StatusCode::CREATED);

        let next = sync(&a, "/c/", Some(&first.token), SyncLevel::Infinite).await;
        assert_eq!(
            next.changed(),
            set(&["/c/n", "/c/m", "/c/q", "/c/k/", "/c/sub/deep"])
        );
        assert_eq!(next.removed(), set(&["/c/o", "/c/t", "/c/p"]));
        assert_ne!(next.token, first.token, "the token changed");

        // A's first token, asked of B: the same changes.
        let on_b = sync(&b, "/c/", Some(&first.token), SyncLevel::Infinite).await;
        assert_eq!(on_b.changed(), next.changed());
        assert_eq!(on_b.removed(), next.removed());
        assert_eq!(
            on_b.token, next.token,
            "both instances issue the same token"
        );

        // Nothing new: nothing listed, on either, and the token stays.
        for dav in [&a, &b] {
            let again = sync(dav, "/c/", Some(&next.token), SyncLevel::Infinite).await;
            assert!(again.is_empty(), "{again:?}");
            assert_eq!(again.token, next.token);
        }

        // The live property agrees on both instances.
        let prop = r#"<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>"#;
        let mut tokens = Vec::new();
        for dav in [&a, &b] {
            let r = send(dav, "PROPFIND", "/c/", &[("Depth", "0")], prop).await;
            assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.text());
            let mut reader = MultistatusReader::new(&r.body[..]);
            let resp = reader
                .next_response()
                .expect("multistatus parses")
                .expect("one response");
            tokens.push(
                resp.prop(&QName::dav("sync-token"))
                    .map(|e| e.text())
                    .expect("DAV:sync-token"),
            );
        }
        assert_eq!(tokens, vec![next.token.clone(), next.token.clone()]);
    });
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn a_removed_collection_is_listed_without_its_members() {
    run(|| async {
        let (a, b) = pair(DavConfig::default()).await;
        tree(&a).await;
        let first = sync(&a, "/c/", None, SyncLevel::Infinite).await;
        assert_eq!(delete(&b, "/c/sub/").await, StatusCode::NO_CONTENT);
        let next = sync(&a, "/c/", Some(&first.token), SyncLevel::Infinite).await;
        assert_eq!(next.removed(), set(&["/c/sub/"]));
        assert!(next.changed.is_empty(), "{next:?}");
        // Created again under the old name: listed as changed, its old member not at all.
        assert_eq!(mkcol(&b, "/c/sub/").await, StatusCode::CREATED);
        let again = sync(&b, "/c/", Some(&next.token), SyncLevel::Infinite).await;
        assert_eq!(again.changed(), set(&["/c/sub/"]));
        assert!(again.removed.is_empty(), "{again:?}");
    });
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn level_one_lists_members_only_and_infinity_lists_the_tree() {
    run(|| async {
        let (a, b) = pair(DavConfig::default()).await;
        tree(&a).await;
        let one = sync(&b, "/c/", None, SyncLevel::One).await;
        assert_eq!(one.changed(), set(&["/c/m", "/c/o", "/c/p", "/c/sub/"]));
        let all = sync(&b, "/c/", None, SyncLevel::Infinite).await;
        assert_eq!(
            all.changed(),
            set(&["/c/m", "/c/o", "/c/p", "/c/sub/", "/c/sub/deep"])
        );
        // A change below the level does not show at level 1; it does at infinity.
        assert_eq!(
            put(&a, "/c/sub/deep", "changed").await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(put(&a, "/c/sub/new", "n").await, StatusCode::CREATED);
        let shallow = sync(&b, "/c/", Some(&one.token), SyncLevel::One).await;
        assert!(shallow.is_empty(), "{shallow:?}");
        let deep = sync(&b, "/c/", Some(&all.token), SyncLevel::Infinite).await;
        assert_eq!(deep.changed(), set(&["/c/sub/deep", "/c/sub/new"]));
        assert!(deep.removed.is_empty());
        // A sync of the subcollection sees the same from its own root.
        let sub = sync(&a, "/c/sub/", Some(&all.token), SyncLevel::One).await;
        assert_eq!(sub.changed(), set(&["/c/sub/deep", "/c/sub/new"]));
        // Depth and the sync-level are checked as on the directory backend.
        let r = send(
            &a,
            "REPORT",
            "/c/",
            &[("Depth", "1")],
            &report_body(None, SyncLevel::One, None),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let file = report(&a, "/c/m", &report_body(None, SyncLevel::One, None)).await;
        assert_eq!(file.status, StatusCode::FORBIDDEN, "{}", file.text());
    });
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn foreign_malformed_future_and_expired_tokens_fail_valid_sync_token() {
    run(|| async {
        let config = DavConfig {
            sync_max_tombstones: 2,
            ..DavConfig::default()
        };
        let (a, b) = pair(config).await;
        assert_eq!(mkcol(&a, "/c/").await, StatusCode::CREATED);
        let first = sync(&a, "/c/", None, SyncLevel::One).await;
        let (prefix, _) = first.token.rsplit_once(':').expect("token has a sequence");
        for bad in [
            "http://bogus/1".to_owned(),
            "urn:davit:sync:0123456789abcdef0123456789abcdef:0".to_owned(),
            format!("{prefix}:x"),
            format!("{prefix}:999999"),
        ] {
            for dav in [&a, &b] {
                let r = report(dav, "/c/", &report_body(Some(&bad), SyncLevel::One, None)).await;
                valid_sync_token_refused(&r);
            }
        }
        // A token of another database is foreign here.
        let (other, _) = pair(DavConfig::default()).await;
        assert_eq!(mkcol(&other, "/c/").await, StatusCode::CREATED);
        let theirs = sync(&other, "/c/", None, SyncLevel::One).await;
        assert_ne!(theirs.token, first.token);
        let r = report(
            &a,
            "/c/",
            &report_body(Some(&theirs.token), SyncLevel::One, None),
        )
        .await;
        valid_sync_token_refused(&r);

        for f in ["a", "b", "c"] {
            assert_eq!(put(&b, &format!("/c/{f}"), "x").await, StatusCode::CREATED);
            assert_eq!(delete(&b, &format!("/c/{f}")).await, StatusCode::NO_CONTENT);
        }
        // Three removals, two remembered: the first token points into forgotten history,
        // on both instances.
        for dav in [&a, &b] {
            let r = report(
                dav,
                "/c/",
                &report_body(Some(&first.token), SyncLevel::One, None),
            )
            .await;
            valid_sync_token_refused(&r);
        }
        // Starting over works.
        let fresh = sync(&b, "/c/", None, SyncLevel::One).await;
        assert!(fresh.is_empty(), "{fresh:?}");
    });
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn a_limit_truncates_with_507_and_the_token_continues_on_the_other_instance() {
    run(|| async {
        let (a, b) = pair(DavConfig::default()).await;
        assert_eq!(mkcol(&a, "/c/").await, StatusCode::CREATED);
        let first = sync(&a, "/c/", None, SyncLevel::One).await;
        let names = ["f1", "f2", "f3", "f4", "f5"];
        for f in names {
            assert_eq!(put(&b, &format!("/c/{f}"), "x").await, StatusCode::CREATED);
        }
        let mut token = first.token.clone();
        let mut got = Vec::new();
        let mut pages = 0;
        loop {
            // Alternate instances page by page.
            let dav = if pages % 2 == 0 { &a } else { &b };
            let r = report(
                dav,
                "/c/",
                &report_body(Some(&token), SyncLevel::One, Some(2)),
            )
            .await;
            let page = read(&r, "/c/");
            pages += 1;
            assert!(page.changed.len() <= 2);
            got.extend(page.changed.iter().cloned());
            token = page.token;
            if !page.truncated {
                break;
            }
            assert_eq!(page.changed.len(), 2, "a truncated page is full");
        }
        assert_eq!(pages, 3);
        let want: Vec<String> = names.iter().map(|f| format!("/c/{f}")).collect();
        assert_eq!(got, want, "every change exactly once, in order");
        let after = sync(&a, "/c/", Some(&token), SyncLevel::One).await;
        assert!(after.is_empty(), "{after:?}");
    });
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn a_sync_token_in_the_if_header_holds_on_both_instances_until_a_change() {
    run(|| async {
        let (a, b) = pair(DavConfig::default()).await;
        tree(&a).await;
        let s = sync(&a, "/c/", None, SyncLevel::Infinite).await;
        let tagged = |token: &str| format!("</c/> (<{token}>)");
        let r = send(&b, "PUT", "/c/new", &[("If", &tagged(&s.token))], "n").await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "the current token holds on B"
        );
        // The PUT through B changed /c/: A knows the old token no longer describes it.
        let r = send(&a, "MKCOL", "/c/k/", &[("If", &tagged(&s.token))], "").await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text());
    });
}

// Store level: the log itself, as two instances' pools on one database.

fn path(s: &str) -> DavPath {
    s.split('/')
        .filter(|seg| !seg.is_empty())
        .try_fold(DavPath::root(), |p, seg| p.join(seg))
        .unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

fn file(s: &str, etag: &str) -> Observed {
    Observed {
        path: path(s),
        kind: Kind::File,
        fingerprint: etag.into(),
    }
}

fn dir(s: &str) -> Observed {
    Observed {
        path: path(s),
        kind: Kind::Dir,
        fingerprint: String::new(),
    }
}

fn scope(root: &str, level: SyncLevel) -> Scope {
    Scope {
        root: path(root),
        level,
    }
}

async fn walk(log: &PgChangeLog, s: &Scope, found: Vec<Observed>) {
    let w = log
        .begin_walk(s.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    log.observe(&w, found)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    log.end_walk(w).await.unwrap_or_else(|e| panic!("{e}"));
}

async fn changes(log: &PgChangeLog, s: &Scope, since: Option<u64>) -> Vec<LoggedChange> {
    log.changes(s, since, 0, 1000)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn names(changes: &[LoggedChange]) -> Vec<(String, bool)> {
    changes
        .iter()
        .map(|c| {
            (
                c.path.as_str().to_owned(),
                matches!(c.state, MemberState::Removed(_)),
            )
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn walks_find_additions_changes_and_removals_across_instances() {
    let url = common::fresh_database().await;
    let (a, b) = (log_on(&url, 100).await, log_on(&url, 100).await);
    assert_eq!(a.store_id(), b.store_id(), "one store id per database");
    let s = scope("/c", SyncLevel::Infinite);
    walk(
        &a,
        &s,
        vec![file("/c/a", "1"), file("/c/b", "1"), file("/c/%x y", "1")],
    )
    .await;
    let initial = changes(&b, &s, None).await;
    assert_eq!(initial.len(), 3);
    assert_eq!(initial[2].path.as_str(), "/c/%x y");
    let token = b.current().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(token, 3);
    walk(&b, &s, vec![file("/c/a", "2"), file("/c/%x y", "1")]).await;
    assert_eq!(
        names(&changes(&a, &s, Some(token)).await),
        vec![("/c/a".into(), false), ("/c/b".into(), true)]
    );
    // Nothing new: nothing listed, and the sequence stays.
    let token = a.current().await.unwrap_or_else(|e| panic!("{e}"));
    walk(&a, &s, vec![file("/c/a", "2"), file("/c/%x y", "1")]).await;
    assert!(changes(&b, &s, Some(token)).await.is_empty());
    assert_eq!(b.current().await.unwrap_or_else(|e| panic!("{e}")), token);
    // A sibling whose name sorts just after the scope's is not in it.
    walk(
        &a,
        &scope("/", SyncLevel::One),
        vec![dir("/c"), file("/c0", "1")],
    )
    .await;
    assert!(changes(&b, &s, Some(token)).await.is_empty());
    // A new database is another store.
    let other = log_on(&common::fresh_database().await, 100).await;
    assert_ne!(other.store_id(), a.store_id());
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn members_of_a_removed_collection_are_not_listed_and_pruning_raises_the_floor() {
    let url = common::fresh_database().await;
    let (a, b) = (log_on(&url, 3).await, log_on(&url, 3).await);
    let s = scope("/", SyncLevel::Infinite);
    walk(
        &a,
        &s,
        vec![dir("/d"), file("/d/x", "1"), file("/d/y", "1")],
    )
    .await;
    let token = a.current().await.unwrap_or_else(|e| panic!("{e}"));
    walk(&b, &s, vec![]).await;
    assert_eq!(
        names(&changes(&a, &s, Some(token)).await),
        vec![("/d".into(), true)]
    );
    assert_eq!(a.oldest().await.unwrap_or_else(|e| panic!("{e}")), 0);
    walk(&a, &s, vec![file("/e", "1")]).await;
    b.record(vec![Noted::Gone(path("/e"))])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Four tombstones, three kept: the first is forgotten, for both instances.
    let oldest = a.oldest().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(oldest > token, "{oldest} > {token}");
    assert_eq!(b.oldest().await.unwrap_or_else(|e| panic!("{e}")), oldest);
    // From the floor on: the collection's removal and /e's (its members' are implied).
    assert_eq!(
        names(&changes(&a, &s, Some(oldest)).await),
        vec![("/d".into(), true), ("/e".into(), true)]
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn records_count_from_the_first_walk_of_any_instance() {
    let url = common::fresh_database().await;
    let (a, b) = (log_on(&url, 100).await, log_on(&url, 100).await);
    // Before any sync, records are skipped.
    a.record(vec![Noted::Present(file("/t", "1"))])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.current().await.unwrap_or_else(|e| panic!("{e}")), 0);
    let s = scope("/", SyncLevel::One);
    walk(&b, &s, vec![]).await;
    let token = b.current().await.unwrap_or_else(|e| panic!("{e}"));
    // A has never walked, but B has: A records.
    a.record(vec![Noted::Present(file("/t", "1"))])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.record(vec![Noted::Touched(path("/t")), Noted::Gone(path("/t"))])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        names(&changes(&b, &s, Some(token)).await),
        vec![("/t".into(), true)]
    );
    assert_eq!(
        b.current().await.unwrap_or_else(|e| panic!("{e}")),
        token + 3
    );
    // A touch of a member no sync knows of takes no number.
    a.record(vec![Noted::Touched(path("/unknown"))])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.current().await.unwrap_or_else(|e| panic!("{e}")),
        token + 3
    );
    // Reopened, the log keeps its id.
    let again = log_on(&url, 100).await;
    assert_eq!(again.store_id(), a.store_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn walks_are_serialised_across_instances() {
    let url = common::fresh_database().await;
    let (a, b) = (log_on(&url, 100).await, log_on(&url, 100).await);
    let s = scope("/", SyncLevel::One);
    let held = a
        .begin_walk(s.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let waiting = {
        let b = b.clone();
        let s = s.clone();
        tokio::spawn(async move { b.begin_walk(s).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "B's walk began while A's ran");
    a.observe(&held, vec![file("/x", "1")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.end_walk(held).await.unwrap_or_else(|e| panic!("{e}"));
    let b_walk = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("B's walk began once A's ended")
        .expect("task")
        .unwrap_or_else(|e| panic!("{e}"));
    // B's walk does not find /x: ended, it removes it.
    let token = b.current().await.unwrap_or_else(|e| panic!("{e}"));
    b.end_walk(b_walk).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        names(&changes(&a, &s, Some(token)).await),
        vec![("/x".into(), true)]
    );

    // A walk dropped unfinished (a REPORT whose listing failed) lets the next one in, and
    // removes nothing.
    let token = a.current().await.unwrap_or_else(|e| panic!("{e}"));
    let w = a
        .begin_walk(s.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(w);
    let next = tokio::time::timeout(Duration::from_secs(10), b.begin_walk(s.clone()))
        .await
        .expect("the dropped walk's lock was released")
        .unwrap_or_else(|e| panic!("{e}"));
    b.end_walk(next).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.current().await.unwrap_or_else(|e| panic!("{e}")), token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn sequence_numbers_are_unique_under_racing_records_of_two_instances() {
    let url = common::fresh_database().await;
    let (a, b) = (log_on(&url, 1000).await, log_on(&url, 1000).await);
    let s = scope("/", SyncLevel::One);
    walk(&a, &s, vec![]).await;
    let start = a.current().await.unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let p = format!("/f{i:02}");
            log.record(vec![Noted::Present(file(&p, "1"))]).await?;
            log.record(vec![Noted::Present(file(&p, "2"))]).await?;
            log.record(vec![Noted::Gone(path(&p))]).await
        }));
    }
    for t in tasks {
        t.await.expect("task").unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        b.current().await.unwrap_or_else(|e| panic!("{e}")),
        start + 120,
        "one number per change, none twice"
    );
    let listed = changes(&a, &s, Some(start)).await;
    assert_eq!(listed.len(), 40);
    assert!(listed
        .iter()
        .all(|c| matches!(c.state, MemberState::Removed(_))));
    let seqs: Vec<u64> = listed.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}
