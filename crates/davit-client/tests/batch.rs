//! The batch call and lock-token writes, against the real davit server in-process.

// Test helpers outside #[test] functions: a failed setup should panic loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::start_davit;
use davit_client::{Client, Error, LockRequest, OpResult, PatchValue, PropPatch, QName, Url};

fn url(base: &str, path: &str) -> Url {
    Url::parse(&format!("{base}{path}")).unwrap()
}

fn summary(rs: &[OpResult]) -> Vec<(usize, String, u16)> {
    rs.iter()
        .map(|r| (r.index, r.path.clone(), r.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_batch_reports_every_operation() {
    let s = start_davit().await;
    std::fs::create_dir(s.root.join("docs")).unwrap();
    let c = Client::builder().build().unwrap();
    let doc = r#"<b:batch xmlns:b="urn:davit:batch" xmlns:D="DAV:" xmlns:z="urn:z">
  <b:put href="a%20b.txt" content-type="text/plain">hello</b:put>
  <b:put href="nope/c.txt">orphan</b:put>
  <b:mkcol href="x/y/" parents="true"/>
  <b:copy href="a%20b.txt" destination="/docs/x/y/copy.txt"/>
  <b:proppatch href="a%20b.txt"><D:set><D:prop><z:tag>red</z:tag></D:prop></D:set></b:proppatch>
  <b:proppatch href="a%20b.txt"><D:set><D:prop><D:getetag>x</D:getetag></D:prop></D:set></b:proppatch>
  <b:propfind href="a%20b.txt"><D:prop><D:getcontentlength/><z:tag/><z:missing/></D:prop></b:propfind>
  <b:frob href="q"/>
  <b:delete href="/docs/x/"/>
</b:batch>"#;
    let mut stream = c
        .batch(&url(&s.url, "/docs/"), doc, "application/xml")
        .await
        .unwrap();
    // Results come one at a time, in request order.
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!((first.index, first.status), (0, 201));
    assert_eq!(first.path, "/docs/a b.txt");
    assert_eq!(
        first.location.as_ref().map(Url::path),
        Some("/docs/a%20b.txt")
    );
    let mut rs = vec![first];
    rs.extend(stream.collect_all().await.unwrap());
    assert_eq!(
        summary(&rs),
        vec![
            (0, "/docs/a b.txt".into(), 201),
            (1, "/docs/nope/c.txt".into(), 409),
            (2, "/docs/x/y/".into(), 201),
            (3, "/docs/a b.txt".into(), 201),
            (4, "/docs/a b.txt".into(), 200),
            (5, "/docs/a b.txt".into(), 403),
            (6, "/docs/a b.txt".into(), 200),
            (7, "/docs/q".into(), 400),
            (8, "/docs/x/".into(), 204),
        ]
    );
    // A failure says why.
    assert!(rs[1].description.as_deref().unwrap().contains("parent"));
    assert!(!rs[1].is_success() && rs[0].is_success());
    assert!(rs[7].description.as_deref().unwrap().contains("frob"));
    // COPY reports where it copied to.
    assert_eq!(
        rs[3].location.as_ref().unwrap().path(),
        "/docs/x/y/copy.txt"
    );
    // PROPPATCH of a protected property: its group says 403 with the condition.
    let bad = &rs[5].propstats;
    assert!(bad.iter().any(|g| g.status == 403
        && g.error
            .contains(&QName::dav("cannot-modify-protected-property"))));
    // PROPFIND: the propstat groups, a 404 group for the missing property.
    let pf = &rs[6];
    let found = pf.propstats.iter().find(|g| g.status == 200).unwrap();
    let tag = found
        .props
        .iter()
        .find(|p| p.name == QName::new("urn:z", "tag"))
        .unwrap();
    assert_eq!(tag.text(), "red");
    assert!(pf
        .propstats
        .iter()
        .any(|g| g.status == 404 && g.props[0].name == QName::new("urn:z", "missing")));
    assert_eq!(
        std::fs::read_to_string(s.root.join("docs/a b.txt")).unwrap(),
        "hello"
    );
    assert!(!s.root.join("docs/x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_batch_stop_on_error_and_atomic() {
    let s = start_davit().await;
    let c = Client::builder().build().unwrap();
    let base = url(&s.url, "/");
    let doc = r#"{"mode": "stop-on-error", "operations": [
        {"op": "put", "href": "one.txt", "content": "1"},
        {"op": "put", "href": "dot.bin", "content_base64": "AAEC"},
        {"op": "delete", "href": "missing.txt"},
        {"op": "put", "href": "never.txt", "content": "x"}
    ]}"#;
    let rs = c
        .batch(&base, doc.as_bytes().to_vec(), "application/json")
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(
        summary(&rs),
        vec![
            (0, "/one.txt".into(), 201),
            (1, "/dot.bin".into(), 201),
            (2, "/missing.txt".into(), 404),
            (3, "/never.txt".into(), 424),
        ]
    );
    assert_eq!(std::fs::read(s.root.join("dot.bin")).unwrap(), [0, 1, 2]);
    assert!(!s.root.join("never.txt").exists());

    // Atomic: one failure and nothing takes effect; the others answer 424.
    let doc = r#"{"mode": "atomic", "operations": [
        {"op": "put", "href": "one.txt", "content": "changed"},
        {"op": "mkcol", "href": "dir/"},
        {"op": "move", "href": "dot.bin", "destination": "dir/dot.bin"},
        {"op": "move", "href": "missing.txt", "destination": "gone.txt"}
    ]}"#;
    let rs = c
        .batch(&base, doc, "application/json")
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [424, 424, 424, 404]);
    assert_eq!(
        std::fs::read_to_string(s.root.join("one.txt")).unwrap(),
        "1"
    );
    assert!(!s.root.join("dir").exists() && s.root.join("dot.bin").is_file());
    // And the same batch without the failing operation commits whole.
    let doc = doc.replace(
        r#",
        {"op": "move", "href": "missing.txt", "destination": "gone.txt"}"#,
        "",
    );
    let rs = c
        .batch(&base, doc, "application/json")
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert!(rs.iter().all(OpResult::is_success), "{rs:?}");
    assert!(s.root.join("dir/dot.bin").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_as_a_whole_is_an_error() {
    let s = start_davit().await;
    std::fs::write(s.root.join("f.txt"), "x").unwrap();
    let c = Client::builder().build().unwrap();
    let err = c
        .batch(&url(&s.url, "/"), "<not-closed", "application/xml")
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(400));
    let err = c
        .batch(&url(&s.url, "/"), "{}", "text/plain")
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(415));
    let err = c
        .batch(&url(&s.url, "/f.txt"), "{}", "application/json")
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(405));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_holder_writes_with_its_token() {
    let s = start_davit().await;
    let c = Client::builder().build().unwrap();
    let f = url(&s.url, "/f.txt");
    c.put(&f, &b"v1"[..], Some(2), None).await.unwrap();
    let lock = c.lock(&f, &LockRequest::default()).await.unwrap();

    // Without the token: 423 with the condition.
    let err = c.put(&f, &b"v2"[..], Some(2), None).await.unwrap_err();
    match &err {
        Error::Status {
            status, condition, ..
        } => {
            assert_eq!(*status, 423);
            assert_eq!(condition.as_deref(), Some("lock-token-submitted"));
        }
        other => panic!("{other}"),
    }
    // A token that names no lock on the resource: the If header fails, 412.
    let stranger = c.with_lock_tokens(["urn:uuid:00000000-0000-0000-0000-000000000000"]);
    let err = stranger
        .put(&f, &b"v2"[..], Some(2), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(412));

    // With it: every kind of write goes through.
    let holder = c.with_lock_tokens([lock.token.as_str()]);
    assert_eq!(
        holder.put(&f, &b"v2"[..], Some(2), None).await.unwrap(),
        204
    );
    assert_eq!(std::fs::read(s.root.join("f.txt")).unwrap(), b"v2");
    let color = QName::new("urn:z", "color");
    assert!(c
        .proppatch(
            &f,
            &[PropPatch::Set(
                color.clone(),
                PatchValue::Text("red".into())
            )]
        )
        .await
        .is_err());
    let out = holder
        .proppatch(
            &f,
            &[PropPatch::Set(
                color.clone(),
                PatchValue::Text("red".into()),
            )],
        )
        .await
        .unwrap();
    assert_eq!(out[0].status, 200);
    // COPY onto the locked file: the token is for the destination, which the If header tags.
    let src = url(&s.url, "/src.txt");
    c.put(&src, &b"copied"[..], Some(6), None).await.unwrap();
    assert_eq!(
        c.copy(&src, &f, true, true).await.unwrap_err().status(),
        Some(423)
    );
    // A second, irrelevant token does not get in the way.
    let two = c.with_lock_tokens([
        "urn:uuid:00000000-0000-0000-0000-000000000000",
        lock.token.as_str(),
    ]);
    assert!(two.copy(&src, &f, true, true).await.unwrap().is_complete());
    assert_eq!(std::fs::read(s.root.join("f.txt")).unwrap(), b"copied");

    // A locked collection: creating and deleting inside it needs the token too.
    let dir = url(&s.url, "/locked/");
    c.mkcol(&dir).await.unwrap();
    let dlock = c.lock(&dir, &LockRequest::default()).await.unwrap();
    let sub = url(&s.url, "/locked/sub/");
    assert_eq!(c.mkcol(&sub).await.unwrap_err().status(), Some(423));
    let dholder = c.with_lock_tokens([dlock.token.clone()]);
    dholder.mkcol(&sub).await.unwrap();
    // The batch's If header applies to every operation without its own.
    let doc = r#"<b:batch xmlns:b="urn:davit:batch"><b:put href="sub/a.txt">a</b:put><b:delete href="sub/"/></b:batch>"#;
    let rs = c
        .batch(&dir, doc, "application/xml")
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(rs.iter().map(|r| r.status).collect::<Vec<_>>(), [423, 423]);
    assert!(rs[0].error.contains(&QName::dav("lock-token-submitted")));
    let rs = dholder
        .batch(&dir, doc, "application/xml")
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(rs.iter().map(|r| r.status).collect::<Vec<_>>(), [201, 204]);
    // MOVE out of the locked collection: the token covers the source.
    let inside = url(&s.url, "/locked/m.txt");
    dholder
        .put(&inside, &b"m"[..], Some(1), None)
        .await
        .unwrap();
    let outside = url(&s.url, "/m.txt");
    assert_eq!(
        c.move_to(&inside, &outside, false)
            .await
            .unwrap_err()
            .status(),
        Some(423)
    );
    assert!(dholder
        .move_to(&inside, &outside, false)
        .await
        .unwrap()
        .is_complete());
    // A raw If header, given as it is.
    let tagged = c.with_if(format!("<{dir}> (<{}>)", dlock.token));
    tagged.mkcol(&url(&s.url, "/locked/t/")).await.unwrap();
    assert!(dholder.delete(&dir).await.unwrap().is_complete());
    assert!(!s.root.join("locked").exists());
}
