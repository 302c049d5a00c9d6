//! The sweep of unreferenced objects against a real PostgreSQL and Garage. Run by
//! scripts/distributed-test.sh; plain `cargo test` skips it.

mod common;

use bytes::Bytes;
use davit_distributed::sweep::sweep;
use davit_distributed::{BlobError, Blobs, Namespace};
use davit_proto::href::DavPath;
use futures_util::StreamExt;
use std::time::Duration;

/// A sweep with no minimum age takes every unreferenced object of the bucket, including the
/// ones another test of this file (with its own database) refers to: one at a time.
static ONE_SWEEPER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn put(blobs: &Blobs, key: &str, body: &'static [u8]) {
    let mut w = blobs.writer(key);
    w.write(Bytes::from_static(body))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.finish().await.unwrap_or_else(|e| panic!("{e}"));
}

async fn exists(blobs: &Blobs, key: &str) -> bool {
    match blobs.read(key, None).await {
        Ok(mut s) => {
            while let Some(c) = s.next().await {
                c.unwrap_or_else(|e| panic!("{e}"));
            }
            true
        }
        Err(BlobError::NotFound) => false,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn unreferenced_objects_go_and_referenced_or_young_ones_stay() {
    let _turn = ONE_SWEEPER.lock().await;
    let url = common::fresh_database().await;
    let ns = Namespace::new(common::instance(&url).await);
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = uuid::Uuid::new_v4().simple().to_string();
    let used = format!("blobs/{id}/used");
    let orphan = format!("blobs/{id}/orphan");
    put(&blobs, &used, b"kept: a file points at it").await;
    put(&blobs, &orphan, b"an upload that never committed").await;
    let path = DavPath::parse("/f.txt").unwrap_or_else(|_| DavPath::root());
    ns.commit_file(&path, Some(&used), 25)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Young objects are left alone: they may be about to be committed.
    let r = sweep(&ns, &blobs, Duration::from_secs(3600))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.young >= 1, "{r:?}");
    assert!(exists(&blobs, &orphan).await && exists(&blobs, &used).await);

    let r = sweep(&ns, &blobs, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.removed >= 1 && r.removed_bytes >= 30, "{r:?}");
    assert!(!exists(&blobs, &orphan).await, "the orphan is still there");
    assert!(
        exists(&blobs, &used).await,
        "a referenced object was removed"
    );
}

/// The rows of the upload log.
async fn logged_uploads(url: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(conn);
    client
        .query_one("SELECT count(*) FROM davit_uploads", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0)
}

/// The multipart uploads the object store itself has in progress under `key` (S3
/// ListMultipartUploads, which object_store does not offer, through curl's SigV4 signing).
fn unfinished_at_store(key: &str) -> usize {
    let text = std::env::var("DAVIT_TEST_S3").unwrap_or_default();
    let get = |k: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_owned()
    };
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "--aws-sigv4",
            &format!("aws:amz:{}:s3", get("region")),
            "--user",
            &format!("{}:{}", get("key"), get("secret")),
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            &format!(
                "{}/{}?prefix={}&uploads=",
                get("endpoint"),
                get("bucket"),
                key.replace('/', "%2F")
            ),
        ])
        .output()
        .unwrap_or_else(|e| panic!("curl: {e}"));
    assert!(out.status.success(), "ListMultipartUploads failed");
    String::from_utf8_lossy(&out.stdout)
        .matches("<Upload>")
        .count()
}

#[tokio::test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn a_multipart_upload_whose_writer_died_is_aborted_by_the_sweep() {
    let _turn = ONE_SWEEPER.lock().await;
    let url = common::fresh_database().await;
    let pg = common::instance(&url).await;
    let ns = Namespace::new(pg.clone());
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .with_upload_log(pg);
    let part = Bytes::from(vec![7u8; 5 << 20]);

    // Finished and aborted uploads leave nothing in the log.
    let key = format!("blobs/{}/whole", uuid::Uuid::new_v4().simple());
    let mut w = blobs.writer(&key);
    for _ in 0..3 {
        w.write(part.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    w.write(Bytes::from_static(b"tail"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(logged_uploads(&url).await, 1);
    assert_eq!(
        w.finish().await.unwrap_or_else(|e| panic!("{e}")),
        (15 << 20) + 4
    );
    assert_eq!(logged_uploads(&url).await, 0);
    assert!(exists(&blobs, &key).await);
    let mut w = blobs.writer(&format!("blobs/{}/aborted", uuid::Uuid::new_v4().simple()));
    w.write(part.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(logged_uploads(&url).await, 1);
    w.abort().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(logged_uploads(&url).await, 0);

    // A writer that disappears mid-way (its process killed) leaves its upload in the log.
    let dead = format!("blobs/{}/dead", uuid::Uuid::new_v4().simple());
    let mut w = blobs.writer(&dead);
    w.write(part.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.write(part.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(w);
    assert_eq!(logged_uploads(&url).await, 1);
    assert_eq!(unfinished_at_store(&dead), 1);

    // Too young for the sweep: it may still be going.
    let r = sweep(&ns, &blobs, Duration::from_secs(3600))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.aborted_uploads, 0);
    assert_eq!(logged_uploads(&url).await, 1);
    let r = sweep(&ns, &blobs, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.aborted_uploads, 1, "{r:?}");
    assert_eq!(logged_uploads(&url).await, 0);
    assert_eq!(
        unfinished_at_store(&dead),
        0,
        "the parts are still in the store"
    );
    assert!(
        !exists(&blobs, &dead).await,
        "an aborted upload became visible"
    );
}
