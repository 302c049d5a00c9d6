//! The client library against the real davit server (every operation), a canned 207 server,
//! and 207 bodies captured from Apache mod_dav and nginx dav-ext.

// Test helpers outside #[test] functions: a failed setup should panic loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::{canned, start_davit};
use davit_client::{
    Client, Depth, Error, LockRequest, PatchValue, PropPatch, PropRequest, QName, Url,
};
use davit_proto::xml::MultistatusReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn url(base: &str, path: &str) -> Url {
    Url::parse(&format!("{base}{path}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_against_davit() {
    let s = start_davit().await;
    let c = Client::builder().build().unwrap();

    let info = c.options(&url(&s.url, "/")).await.unwrap();
    assert!(info.classes.iter().any(|x| x == "2"), "{info:?}");
    assert!(info.allow.iter().any(|m| m == "PROPFIND"));

    c.mkcol(&url(&s.url, "/d%20ir/")).await.unwrap();
    let err = c.mkcol(&url(&s.url, "/d%20ir/")).await.unwrap_err();
    assert_eq!(err.status(), Some(405));

    // PUT with progress, then GET whole and resumed.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = sent.clone();
    let progress: davit_client::Progress = Arc::new(move |n| {
        s2.fetch_add(n, Ordering::Relaxed);
    });
    let f = url(&s.url, "/d%20ir/f%C3%BC.bin");
    let status = c
        .put(
            &f,
            std::io::Cursor::new(data.clone()),
            Some(data.len() as u64),
            Some(progress),
        )
        .await
        .unwrap();
    assert_eq!(status, 201);
    assert_eq!(sent.load(Ordering::Relaxed), data.len() as u64);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("f.bin");
    std::fs::write(&local, &data[..1000]).unwrap();
    let (size, total) = c.get_to_file(&f, &local, true, None).await.unwrap();
    assert_eq!((size, total), (data.len() as u64, Some(data.len() as u64)));
    assert_eq!(std::fs::read(&local).unwrap(), data);
    let dl = c.get(&f, 5, None).await.unwrap();
    assert_eq!((dl.status, dl.offset), (206, 5));
    // Resuming a whole file is a no-op, not an error.
    let (size, _) = c.get_to_file(&f, &local, true, None).await.unwrap();
    assert_eq!(size, data.len() as u64);

    // PROPFIND, streamed, hrefs resolved and decoded.
    let mut listing = c
        .propfind(&url(&s.url, "/d%20ir/"), Depth::One, &PropRequest::Common)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(r) = listing.next().await {
        let r = r.unwrap();
        seen.push((r.path.clone(), r.live.is_collection, r.live.size));
    }
    assert_eq!(
        seen,
        vec![
            ("/d ir/".to_owned(), true, None),
            ("/d ir/fü.bin".to_owned(), false, Some(data.len() as u64))
        ]
    );
    let st = c.stat(&f, &PropRequest::Common).await.unwrap();
    assert_eq!(st.name(), "fü.bin");
    assert!(st.live.etag.is_some() && st.live.modified.is_some());

    // PROPPATCH: per-property outcomes, a protected property makes the whole request fail.
    let color = QName::new("urn:z", "color");
    let out = c
        .proppatch(
            &f,
            &[PropPatch::Set(
                color.clone(),
                PatchValue::Text("r<e>d".into()),
            )],
        )
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].name.clone(), out[0].status), (color.clone(), 200));
    let got = c
        .stat(&f, &PropRequest::Named(vec![color.clone()]))
        .await
        .unwrap();
    assert_eq!(got.response.prop(&color).unwrap().text(), "r<e>d");
    let out = c
        .proppatch(
            &f,
            &[
                PropPatch::Set(
                    QName::new("urn:z", "x"),
                    PatchValue::Xml("<a xmlns='urn:a'>1</a>".into()),
                ),
                PropPatch::Set(QName::dav("getetag"), PatchValue::Text("x".into())),
            ],
        )
        .await
        .unwrap();
    let statuses: Vec<u16> = out.iter().map(|o| o.status).collect();
    assert!(
        statuses.contains(&424) && statuses.iter().any(|s| *s == 403 || *s == 409),
        "{out:?}"
    );
    c.proppatch(&f, &[PropPatch::Remove(color.clone())])
        .await
        .unwrap();

    // COPY, MOVE, DELETE: whole-tree outcomes.
    let o = c
        .copy(&url(&s.url, "/d%20ir/"), &url(&s.url, "/copy/"), true, true)
        .await
        .unwrap();
    assert!(o.is_complete() && o.status == 201, "{o:?}");
    let err = c
        .copy(
            &url(&s.url, "/d%20ir/"),
            &url(&s.url, "/copy/"),
            false,
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(412));
    let o = c
        .move_to(&url(&s.url, "/copy/"), &url(&s.url, "/moved/"), false)
        .await
        .unwrap();
    assert!(o.is_complete());
    assert!(s.root.join("moved/fü.bin").is_file());

    // LOCK, refresh, a refused DELETE carrying the condition, UNLOCK.
    let lock = c
        .lock(
            &f,
            &LockRequest {
                timeout: Some(100),
                owner: Some("me".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(lock.token.starts_with("urn:uuid:") || lock.token.starts_with("opaquelocktoken:"));
    assert!(lock.timeout.is_some_and(|t| t <= 100));
    let again = c.refresh(&f, &lock.token, Some(50)).await.unwrap();
    assert_eq!(again.token, lock.token);
    match c.delete(&f).await.unwrap_err() {
        Error::Status {
            status,
            condition,
            method,
            ..
        } => {
            assert_eq!((status, &*method), (423, "DELETE"));
            assert_eq!(condition.as_deref(), Some("lock-token-submitted"));
        }
        other => panic!("{other}"),
    }
    c.unlock(&f, &lock.token).await.unwrap();
    let o = c.delete(&url(&s.url, "/d%20ir/")).await.unwrap();
    assert!(o.is_complete() && o.status == 204);
    let err = c.stat(&f, &PropRequest::Common).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("404 Not Found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_listing_streams() {
    let s = start_davit().await;
    for i in 0..1500 {
        std::fs::write(s.root.join(format!("f{i:04}")), b"x").unwrap();
    }
    let c = Client::builder().build().unwrap();
    let mut listing = c
        .propfind(&url(&s.url, "/"), Depth::One, &PropRequest::AllProp)
        .await
        .unwrap();
    let mut n = 0;
    while let Some(r) = listing.next().await {
        assert_eq!(r.unwrap().status, 200);
        n += 1;
    }
    assert_eq!(n, 1501);
}

/// A 207 to DELETE lists the members that failed, with their statuses and conditions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_failure_is_reported_per_resource() {
    let body = r#"<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:"><d:response><d:href>http://elsewhere.example/t/locked%20one</d:href>
<d:status>HTTP/1.1 423 Locked</d:status><d:error><d:lock-token-submitted/></d:error></d:response>
<d:response><d:href>sub/</d:href><d:status>HTTP/1.1 424 Failed Dependency</d:status></d:response>
</d:multistatus>"#;
    let base = canned("207 Multi-Status", "application/xml", body);
    let c = Client::builder().build().unwrap();
    let o = c.delete(&url(&base, "/t/")).await.unwrap();
    assert_eq!(o.status, 207);
    assert!(!o.is_complete());
    assert_eq!(o.failures.len(), 2);
    assert_eq!(o.failures[0].path, "/t/locked one");
    assert_eq!(o.failures[0].status, 423);
    assert_eq!(
        o.failures[0].error,
        vec![QName::dav("lock-token-submitted")]
    );
    assert_eq!(o.failures[1].url.as_str(), format!("{base}/t/sub/"));
    assert_eq!(o.failures[1].status, 424);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_kept_short() {
    let page = format!("<html><body>{}</body></html>", "no ".repeat(1000));
    let base = canned("403 Forbidden", "text/html", &page);
    let c = Client::builder().build().unwrap();
    let err = c.mkcol(&url(&base, "/x/")).await.unwrap_err();
    let Error::Status {
        status,
        body,
        condition,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*status, condition.as_deref()), (403, None));
    // An HTML page becomes a line of its text.
    assert!(
        body.starts_with("no no no") && body.len() <= 200 && !body.contains('<'),
        "{body}"
    );
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn reads_apache_and_nginx_bodies() {
    // Apache: DAV: under three prefixes (D, lp1, g0), undeclared-elsewhere ns1, weak etags.
    let rs: Vec<_> = MultistatusReader::new(&fixture("apache-propfind.xml")[..])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rs.len(), 3);
    assert_eq!(rs[1].href, "/a%20b.txt");
    let live = rs[1].live();
    assert_eq!(live.size, Some(6261));
    assert!(live.etag.unwrap().starts_with("W/\""));
    assert!(live.modified.is_some() && !live.is_collection);
    assert!(rs[2].live().is_collection);
    assert_eq!(rs[0].propstats[1].status, 404);
    assert!(rs[0].propstats[1]
        .props
        .iter()
        .any(|p| p.name == QName::new("urn:z", "missing")));

    let all: Vec<_> = MultistatusReader::new(&fixture("apache-allprop.xml")[..])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].live().content_type.is_some());

    // Apache PROPPATCH: "HTTP/1.1 424 (status)" lines, per-group descriptions.
    let pp: Vec<_> = MultistatusReader::new(&fixture("apache-proppatch.xml")[..])
        .collect::<Result<_, _>>()
        .unwrap();
    let groups: Vec<u16> = pp[0].propstats.iter().map(|p| p.status).collect();
    assert_eq!(groups, [424, 409]);
    assert!(pp[0].propstats[1]
        .description
        .as_deref()
        .unwrap()
        .contains("read-only"));

    // nginx dav-ext: empty resourcetype written as a start and end tag, displayname "/".
    let ng: Vec<_> = MultistatusReader::new(&fixture("nginx-propfind.xml")[..])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ng.len(), 2);
    assert!(ng[0].live().is_collection);
    assert_eq!(ng[1].live().display_name.as_deref(), Some("a b.txt"));
    assert_eq!(ng[1].live().size, Some(6261));
    let nall: Vec<_> = MultistatusReader::new(&fixture("nginx-allprop.xml")[..])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(nall.len(), 1);
}

/// Regression: `get -c` after the remote file changed appended the new version's tail to the
/// old version's head, giving bytes that matched neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_download_after_the_remote_changed_gets_the_new_version_whole() {
    let s = start_davit().await;
    let c = Client::builder().build().unwrap();
    let f = url(&s.url, "/v.bin");
    let v1: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let v2: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let put = |body: Vec<u8>| {
        let c = &c;
        let f = &f;
        async move {
            let n = body.len() as u64;
            c.put(f, std::io::Cursor::new(body), Some(n), None)
                .await
                .unwrap()
        }
    };
    put(v1.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("v.bin");
    c.get_to_file(&f, &local, false, None).await.unwrap();
    // An interrupted download of v1: its first 1,000 bytes, with v1's validator recorded.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&local)
        .unwrap()
        .set_len(1000)
        .unwrap();
    // The temporary directory is on a filesystem with user extended attributes (ext4 here).
    assert!(davit_client::partial::validator(&local).is_some());
    // Unchanged: resumed from byte 1,000, the result is v1.
    c.get_to_file(&f, &local, true, None).await.unwrap();
    assert_eq!(std::fs::read(&local).unwrap(), v1);
    // Changed meanwhile: the resume gets v2 whole.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&local)
        .unwrap()
        .set_len(1000)
        .unwrap();
    put(v2.clone()).await;
    let (size, _) = c.get_to_file(&f, &local, true, None).await.unwrap();
    assert_eq!(size, v2.len() as u64);
    assert_eq!(std::fs::read(&local).unwrap(), v2);
    // Whole and unchanged: a resume leaves it as it is.
    let before = std::fs::metadata(&local).unwrap().modified().unwrap();
    c.get_to_file(&f, &local, true, None).await.unwrap();
    assert_eq!(
        std::fs::metadata(&local).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(std::fs::read(&local).unwrap(), v2);
}

/// The resumable-upload calls against davit: start, ask, send the rest, and the state of a
/// completed upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_upload_sends_only_the_rest() {
    let s = start_davit().await;
    let c = Client::builder().build().unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let target = url(&s.url, "/big%20file.bin");
    let upload = c
        .upload_start(&target, data.len() as u64)
        .await
        .unwrap()
        .expect("davit offers resumable uploads");
    assert!(upload.path().starts_with("/.davit/uploads/"), "{upload}");
    // A first part arrives by other means (an earlier run that broke off).
    let r = reqwest::Client::new()
        .patch(upload.clone())
        .header("Upload-Offset", "0")
        .header("Upload-Complete", "?0")
        .header("Content-Type", "application/partial-upload")
        .body(data[..300_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let state = c.upload_state(&upload).await.unwrap().unwrap();
    assert_eq!(
        state,
        davit_client::UploadState {
            offset: 300_000,
            complete: false,
            length: Some(1_000_000)
        }
    );
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = sent.clone();
    let progress: davit_client::Progress = Arc::new(move |n| {
        s2.fetch_add(n, Ordering::Relaxed);
    });
    let stored = c
        .upload_finish(&upload, &target, &src, state.offset, Some(progress))
        .await
        .unwrap();
    assert_eq!(stored.status, 201);
    assert!(stored.etag.is_some());
    assert_eq!(
        sent.load(Ordering::Relaxed),
        700_000,
        "only the rest was sent"
    );
    assert_eq!(std::fs::read(s.root.join("big file.bin")).unwrap(), data);
    let done = c.upload_state(&upload).await.unwrap().unwrap();
    assert!(done.complete);
    assert_eq!(done.offset, 1_000_000);
    // A server that does not know the mechanism stores an empty file: not resumable.
    let plain = canned("201 Created", "text/plain", "");
    assert_eq!(c.upload_start(&url(&plain, "/x"), 10).await.unwrap(), None);
}
