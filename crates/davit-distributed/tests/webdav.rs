//! WebDAV requests through davit's own handlers on the distributed backend (namespace in
//! PostgreSQL, content in Garage), as two instances sharing them. Run by
//! scripts/distributed-test.sh; plain `cargo test` skips these.

mod common;

use bytes::Bytes;
use davit_distributed::{Blobs, Namespace, PgLockStore, PgPropStore, PgStorage};
use davit_server::{Dav, DavConfig};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

type TestDav = Dav<PgStorage, PgPropStore, PgLockStore>;

async fn instance(url: &str) -> TestDav {
    let pg = common::instance(url).await;
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .with_upload_log(pg.clone());
    Dav::new(
        PgStorage::new(Namespace::new(pg.clone()), blobs),
        PgPropStore::new(pg.clone()),
        PgLockStore::new(pg),
        DavConfig::default(),
    )
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

async fn send(
    dav: &TestDav,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).unwrap_or_else(|e| panic!("{e}"));
    let resp = tokio::time::timeout(std::time::Duration::from_secs(60), dav.handle(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} hung"));
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// The hrefs of a multistatus, in order.
fn hrefs(xml: &[u8]) -> Vec<String> {
    let root = davit_proto::xml::parse_document(xml, &Default::default())
        .unwrap_or_else(|e| panic!("not XML ({e}): {}", String::from_utf8_lossy(xml)));
    root.elements()
        .filter(|r| r.name.is_dav("response"))
        .filter_map(|r| {
            r.elements()
                .find(|h| h.name.is_dav("href"))
                .map(|h| h.text())
        })
        .collect()
}

/// The `z:color` property of `path`, if it has one.
async fn color(dav: &TestDav, path: &str) -> Option<String> {
    let body = Bytes::from_static(
        br#"<D:propfind xmlns:D="DAV:" xmlns:z="urn:x"><D:prop><z:color/></D:prop></D:propfind>"#,
    );
    let r = send(dav, "PROPFIND", path, &[("Depth", "0")], body).await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{path}");
    let root = davit_proto::xml::parse_document(&r.body, &Default::default())
        .unwrap_or_else(|e| panic!("not XML ({e})"));
    let response = root.elements().find(|e| e.name.is_dav("response"))?;
    let found = response
        .elements()
        .filter(|e| e.name.is_dav("propstat"))
        .find(|ps| {
            ps.elements()
                .any(|s| s.name.is_dav("status") && s.text().contains(" 200 "))
        })?
        .elements()
        .find(|e| e.name.is_dav("prop"))?
        .elements()
        .find(|e| e.name.local == "color" && e.name.ns == "urn:x")
        .map(|e| e.text());
    found
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn two_instances_serve_one_share() {
    on_a_large_stack(two_instances_serve_one_share_body());
}

async fn two_instances_serve_one_share_body() {
    let url = common::fresh_database().await;
    let a = instance(&url).await;
    let b = instance(&url).await;
    let none = Bytes::new();

    assert_eq!(
        send(&a, "MKCOL", "/docs/", &[], none.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&b, "MKCOL", "/docs/", &[], none.clone()).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(
            &b,
            "PUT",
            "/docs/small.txt",
            &[],
            Bytes::from_static(b"hello")
        )
        .await
        .status,
        StatusCode::CREATED
    );
    // 12 MiB: a multipart upload of three parts.
    let big = pattern(12 << 20, 3);
    assert_eq!(
        send(&a, "PUT", "/docs/big.bin", &[], big.clone())
            .await
            .status,
        StatusCode::CREATED
    );

    // Either instance serves the same bytes and the same ETag.
    let ga = send(&a, "GET", "/docs/big.bin", &[], none.clone()).await;
    let gb = send(&b, "GET", "/docs/big.bin", &[], none.clone()).await;
    assert_eq!((ga.status, gb.status), (StatusCode::OK, StatusCode::OK));
    assert!(
        ga.body == big && gb.body == big,
        "GET bodies differ from what was PUT"
    );
    assert_eq!(ga.headers.get("etag"), gb.headers.get("etag"));
    let r = send(
        &b,
        "GET",
        "/docs/big.bin",
        &[("Range", "bytes=6291454-6291463")],
        none.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, big.slice(6_291_454..6_291_464));

    // A new version changes the ETag everywhere.
    let old = ga.headers.get("etag").cloned();
    assert_eq!(
        send(
            &b,
            "PUT",
            "/docs/big.bin",
            &[],
            Bytes::from_static(b"short now")
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let g = send(&a, "GET", "/docs/big.bin", &[], none.clone()).await;
    assert_eq!(g.body, Bytes::from_static(b"short now"));
    assert_ne!(g.headers.get("etag"), old.as_ref());

    // A dead property set through one instance is read through the other.
    let set = Bytes::from_static(
        br#"<D:propertyupdate xmlns:D="DAV:" xmlns:z="urn:x"><D:set><D:prop><z:color>red</z:color></D:prop></D:set></D:propertyupdate>"#,
    );
    assert_eq!(
        send(&a, "PROPPATCH", "/docs/small.txt", &[], set)
            .await
            .status,
        StatusCode::MULTI_STATUS
    );
    assert_eq!(color(&b, "/docs/small.txt").await.as_deref(), Some("red"));

    // Listings, COPY (objects copied server-side), MOVE and DELETE.
    let l = send(&a, "PROPFIND", "/docs/", &[("Depth", "1")], none.clone()).await;
    assert_eq!(l.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        hrefs(&l.body),
        ["/docs/", "/docs/big.bin", "/docs/small.txt"]
    );
    let c = send(
        &b,
        "COPY",
        "/docs/",
        &[("Destination", "http://localhost/copy/")],
        none.clone(),
    )
    .await;
    assert_eq!(c.status, StatusCode::CREATED);
    let m = send(
        &a,
        "MOVE",
        "/docs/",
        &[("Destination", "http://localhost/moved/")],
        none.clone(),
    )
    .await;
    assert_eq!(m.status, StatusCode::CREATED);
    assert_eq!(
        send(&b, "GET", "/moved/small.txt", &[], none.clone())
            .await
            .body,
        Bytes::from_static(b"hello")
    );
    assert_eq!(
        send(&b, "GET", "/docs/small.txt", &[], none.clone())
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&a, "DELETE", "/moved/", &[], none.clone())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // The copy stands on its own objects.
    assert_eq!(
        send(&a, "GET", "/copy/small.txt", &[], none.clone())
            .await
            .body,
        Bytes::from_static(b"hello")
    );
    assert_eq!(
        send(&b, "GET", "/copy/big.bin", &[], none.clone())
            .await
            .body,
        Bytes::from_static(b"short now")
    );
    let l = send(&b, "PROPFIND", "/", &[("Depth", "infinity")], none).await;
    assert_eq!(
        hrefs(&l.body),
        ["/", "/copy/", "/copy/big.bin", "/copy/small.txt"]
    );
}

/// A body fed by the test, one chunk at a time, for an upload kept in progress.
fn fed_body(
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> http_body_util::StreamBody<
    impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::io::Error>> + Send + Unpin,
> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok(http_body::Frame::data(chunk)), rx))
    });
    http_body_util::StreamBody::new(Box::pin(stream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn a_lock_on_one_instance_waits_for_a_write_in_progress_on_another() {
    let url = common::fresh_database().await;
    let a = instance(&url).await;
    let b = instance(&url).await;
    // A PUT on A has passed its lock check and is still receiving its body.
    let (feed, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let put = {
        let a = a.clone();
        tokio::spawn(async move {
            let req = Request::builder()
                .method("PUT")
                .uri("/slow.bin")
                .body(fed_body(rx))
                .unwrap_or_else(|e| panic!("{e}"));
            a.handle(req).await.status()
        })
    };
    feed.send(pattern(64 << 10, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Its first chunk was taken, so its check is done and its write announced.
    feed.send(pattern(64 << 10, 2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let lockinfo = Bytes::from_static(
        b"<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/>\
          </D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>",
    );
    let lock = {
        let b = b.clone();
        let lockinfo = lockinfo.clone();
        tokio::spawn(
            async move { send(&b, "LOCK", "/slow.bin", &[("Depth", "0")], lockinfo).await },
        )
    };
    // A LOCK of an unrelated path on B is granted meanwhile.
    let other = send(&b, "LOCK", "/other.bin", &[("Depth", "0")], lockinfo).await;
    assert_eq!(other.status, StatusCode::CREATED);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !lock.is_finished(),
        "a LOCK was granted during a write it protects"
    );
    drop(feed);
    assert_eq!(
        put.await.unwrap_or_else(|e| panic!("{e}")),
        StatusCode::CREATED
    );
    let locked = lock.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(locked.status, StatusCode::OK, "{:?}", locked.body);
    // The lock now holds on A too: a PUT without its token is refused.
    let put = send(&a, "PUT", "/slow.bin", &[], pattern(10, 3)).await;
    assert_eq!(put.status, StatusCode::LOCKED);
}

/// How many objects under `blobs/` hold exactly `content` (the bucket is shared with the
/// tests running beside this one, so objects are told apart by their content).
async fn objects_holding(blobs: &Blobs, content: &[u8]) -> usize {
    use futures_util::{StreamExt, TryStreamExt};
    let all: Vec<_> = blobs
        .list("blobs/")
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0;
    for info in all.iter().filter(|i| i.size == content.len() as u64) {
        let Ok(stream) = blobs.read(&info.key, None).await else {
            continue; // deleted meanwhile by another test
        };
        let bytes: Vec<Bytes> = stream.filter_map(|c| async { c.ok() }).collect().await;
        if bytes.concat() == content {
            n += 1;
        }
    }
    n
}

/// The statuses of a batch's answer (JSON), one per operation, in order.
fn statuses(body: &[u8]) -> Vec<u64> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    doc["responses"]
        .as_array()
        .unwrap_or_else(|| panic!("no responses: {doc}"))
        .iter()
        .map(|r| {
            r["status"]
                .as_u64()
                .unwrap_or_else(|| panic!("no status: {r}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn an_atomic_batch_is_one_transaction_seen_whole_or_not_at_all_by_the_other_instance() {
    let url = common::fresh_database().await;
    let a = instance(&url).await;
    let b = instance(&url).await;
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let json = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    // Unique to this run: the bucket outlives the test's database.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (old, new, replaced) = (
        format!("old body {run}"),
        format!("new body {run}"),
        format!("replacing body {run}"),
    );
    let (old_b, new_b, replaced_b) = (old.as_bytes(), new.as_bytes(), replaced.as_bytes());
    let put = send(&a, "PUT", "/keep.txt", &[], Bytes::from(old.clone())).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let etag = send(&b, "GET", "/keep.txt", &[], Bytes::new())
        .await
        .headers["etag"]
        .clone();

    // The fourth operation fails (no parent): nothing of the first three may remain.
    let failing = Bytes::from(
        r#"{"mode": "atomic", "operations": [
            {"op": "mkcol", "href": "/t/"},
            {"op": "put", "href": "/t/new.txt", "content": "NEW"},
            {"op": "put", "href": "/keep.txt", "content": "REPLACED"},
            {"op": "proppatch", "href": "/keep.txt", "set": {"{urn:x}color": "red"}},
            {"op": "mkcol", "href": "/missing/child/"}
        ]}"#
        .replace("NEW", &new)
        .replace("REPLACED", &replaced),
    );
    let r = send(&a, "POST", "/", &json, failing).await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(statuses(&r.body), [424, 424, 424, 424, 409], "{:?}", r.body);
    assert_eq!(
        send(&b, "GET", "/t/new.txt", &[], Bytes::new())
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&b, "PROPFIND", "/t/", &[("Depth", "0")], Bytes::new())
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let kept = send(&b, "GET", "/keep.txt", &[], Bytes::new()).await;
    assert_eq!((&kept.body[..], &kept.headers["etag"]), (old_b, &etag));
    assert_eq!(color(&b, "/keep.txt").await, None);
    // The rolled-back batch's objects are gone; the old body's object is still there.
    assert_eq!(objects_holding(&blobs, new_b).await, 0);
    assert_eq!(objects_holding(&blobs, replaced_b).await, 0);
    assert_eq!(objects_holding(&blobs, old_b).await, 1);

    // The same without the failing step commits as a whole.
    let passing = Bytes::from(
        r#"{"mode": "atomic", "operations": [
            {"op": "mkcol", "href": "/t/"},
            {"op": "put", "href": "/t/new.txt", "content": "NEW"},
            {"op": "put", "href": "/keep.txt", "content": "REPLACED"},
            {"op": "proppatch", "href": "/keep.txt", "set": {"{urn:x}color": "red"}},
            {"op": "move", "href": "/t/new.txt", "destination": "/t/moved.txt"}
        ]}"#
        .replace("NEW", &new)
        .replace("REPLACED", &replaced),
    );
    let r = send(&a, "POST", "/", &json, passing).await;
    assert_eq!(
        statuses(&r.body),
        [201, 201, 204, 200, 201],
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        &send(&b, "GET", "/t/moved.txt", &[], Bytes::new())
            .await
            .body[..],
        new_b
    );
    let replaced = send(&b, "GET", "/keep.txt", &[], Bytes::new()).await;
    assert_eq!(&replaced.body[..], replaced_b);
    assert_ne!(replaced.headers["etag"], etag);
    assert_eq!(color(&b, "/keep.txt").await.as_deref(), Some("red"));
    // The replaced body's object went with the commit; one object per body remains.
    assert_eq!(objects_holding(&blobs, old_b).await, 0);
    assert_eq!(objects_holding(&blobs, new_b).await, 1);
    assert_eq!(objects_holding(&blobs, replaced_b).await, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn a_listing_longer_than_a_page_is_whole_and_in_order() {
    let url = common::fresh_database().await;
    let a = instance(&url).await;
    let ns = Namespace::new(common::instance(&url).await);
    let dir = davit_proto::href::DavPath::parse("/many").unwrap_or_else(|e| panic!("{e:?}"));
    ns.create_dir(&dir).await.unwrap_or_else(|e| panic!("{e}"));
    // 600 members (pages of 256: two full, one partial), names sorting differently as text
    // and as numbers.
    let mut names: Vec<String> = (0..600).map(|i| format!("m{i}")).collect();
    for name in &names {
        let p = davit_proto::href::DavPath::parse(&format!("/many/{name}"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        ns.commit_file(&p, None, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let r = send(&a, "PROPFIND", "/many/", &[("Depth", "1")], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    let listed = hrefs(&r.body);
    names.sort();
    let mut expected = vec!["/many/".to_owned()];
    expected.extend(names.iter().map(|n| format!("/many/{n}")));
    let mut got = listed.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(listed.len(), 601, "a member listed twice or missed");
}

/// The folder zip and SEARCH work on this backend as on the directory one: a zip written by A
/// of what was put through B (its exact length announced, each body whole inside), and a
/// SEARCH on B finding by name what B wrote, case aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn a_folders_zip_and_a_search_cover_what_the_other_instance_wrote() {
    let url = common::fresh_database().await;
    let a = instance(&url).await;
    let b = instance(&url).await;
    let none = Bytes::new();
    assert_eq!(
        send(&b, "MKCOL", "/z/", &[], none.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&b, "MKCOL", "/z/sub/", &[], none.clone()).await.status,
        StatusCode::CREATED
    );
    let big = pattern(6 << 20, 7);
    let small = Bytes::from_static(b"a small report");
    for (path, body) in [
        ("/z/sub/big.bin", big.clone()),
        ("/z/Report.txt", small.clone()),
    ] {
        assert_eq!(
            send(&b, "PUT", path, &[], body).await.status,
            StatusCode::CREATED,
            "{path}"
        );
    }
    let zip = send(&a, "GET", "/z/?zip", &[], none.clone()).await;
    assert_eq!(zip.status, StatusCode::OK);
    assert_eq!(
        zip.headers["content-length"].to_str().ok(),
        Some(zip.body.len().to_string().as_str())
    );
    // Stored members: each body lies whole in the archive, right after its local header.
    for (name, body) in [("z/sub/big.bin", &big), ("z/Report.txt", &small)] {
        let at = zip
            .body
            .windows(name.len())
            .position(|w| w == name.as_bytes())
            .unwrap_or_else(|| panic!("{name} not in the archive"));
        // Local header: 30 bytes, the name, then its extra field (length at offset 28).
        let header = at - 30;
        let extra = u16::from_le_bytes([zip.body[header + 28], zip.body[header + 29]]) as usize;
        let data = at + name.len() + extra;
        assert_eq!(&zip.body[data..data + body.len()], &body[..], "{name}");
    }
    let search = Bytes::from_static(
        br#"<D:searchrequest xmlns:D="DAV:"><D:basicsearch>
<D:select><D:prop><D:getcontentlength/></D:prop></D:select>
<D:from><D:scope><D:href>/z/</D:href><D:depth>infinity</D:depth></D:scope></D:from>
<D:where><D:like><D:prop><D:displayname/></D:prop><D:literal>%REPORT%</D:literal></D:like></D:where>
</D:basicsearch></D:searchrequest>"#,
    );
    let found = send(&b, "SEARCH", "/z/", &[], search).await;
    assert_eq!(found.status, StatusCode::MULTI_STATUS);
    assert_eq!(hrefs(&found.body), ["/z/Report.txt"]);
}

fn hits(dav: &TestDav) -> u64 {
    dav.cache()
        .expect("the cache is on")
        .stats
        .hits
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// PROPFIND Depth 1 (allprop) of `path` on `dav`, and whether it came from its cache.
async fn listing(dav: &TestDav, path: &str) -> (Bytes, bool) {
    let before = hits(dav);
    let r = send(dav, "PROPFIND", path, &[("Depth", "1")], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    (r.body, hits(dav) == before + 1)
}

/// GET of `path` on `dav`, and whether it came from its cache.
async fn get(dav: &TestDav, path: &str) -> (Bytes, bool) {
    let before = hits(dav);
    let r = send(dav, "GET", path, &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    (r.body, hits(dav) == before + 1)
}

/// Asks `ask` until its answer comes from the cache (5 s at most) and returns that answer.
/// Any transaction that writes, in any database of the PostgreSQL cluster (other tests run
/// beside this one), moves the version the cache checks, so an answer is kept only once
/// nothing was written between its fill and the next lookup.
async fn until_kept<F: std::future::Future<Output = (Bytes, bool)>>(
    mut ask: impl FnMut() -> F,
) -> Bytes {
    for _ in 0..500 {
        let (body, cached) = ask().await;
        if cached {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never answered from the cache");
}

fn text_of(xml: &[u8], local: &str) -> Vec<String> {
    let root = davit_proto::xml::parse_document(xml, &davit_proto::xml::Limits::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut pending = vec![&root];
    while let Some(e) = pending.pop() {
        if e.name.local == local {
            out.push(e.text());
        }
        pending.extend(e.elements());
    }
    out.sort();
    out
}

#[test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
fn what_one_instance_caches_never_hides_a_write_on_the_other() {
    on_a_large_stack(what_one_instance_caches_never_hides_a_write_on_the_other_body());
}

/// Runs `test` on a thread with 16 MiB of stack: the handlers' futures, polled directly and
/// unoptimised, need more than a test thread's 2 MiB.
fn on_a_large_stack(test: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(test)
        })
        .expect("thread")
        .join()
        .expect("the test panicked");
}

async fn what_one_instance_caches_never_hides_a_write_on_the_other_body() {
    let url = common::fresh_database().await;
    let a = instance(&url).await;
    let b = instance(&url).await;
    let none = Bytes::new();
    let put =
        |dav, body: &'static [u8]| send(dav, "PUT", "/c/f.txt", &[], Bytes::from_static(body));
    assert_eq!(
        send(&a, "MKCOL", "/c/", &[], none.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(put(&a, b"one").await.status, StatusCode::CREATED);

    // B keeps its answers while nothing changes.
    let (first, _) = listing(&b, "/c/").await;
    assert_eq!(until_kept(|| listing(&b, "/c/")).await, first);
    assert_eq!(
        until_kept(|| get(&b, "/c/f.txt")).await,
        Bytes::from_static(b"one")
    );

    // A writes: B's next answers are the new ones.
    assert_eq!(put(&a, b"two two").await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&b, "/c/f.txt").await,
        (Bytes::from_static(b"two two"), false)
    );
    let (xml, cached) = listing(&b, "/c/").await;
    assert!(!cached);
    assert_eq!(text_of(&xml, "getcontentlength"), vec!["7".to_owned()]);
    until_kept(|| listing(&b, "/c/")).await;

    // A dead property set on A.
    let patch = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>"#;
    let r = send(
        &a,
        "PROPPATCH",
        "/c/f.txt",
        &[],
        Bytes::from_static(patch.as_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    let (xml, cached) = listing(&b, "/c/").await;
    assert!(!cached);
    assert_eq!(text_of(&xml, "color"), vec!["red".to_owned()]);

    // A lock taken on A shows in B's listing (once B kept its listing again).
    until_kept(|| listing(&b, "/c/")).await;
    let lockinfo = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let r = send(
        &a,
        "LOCK",
        "/c/f.txt",
        &[],
        Bytes::from_static(lockinfo.as_bytes()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let (xml, cached) = listing(&b, "/c/").await;
    assert!(!cached);
    assert_eq!(text_of(&xml, "locktoken").len(), 1);
}
