//! The sweep of unreferenced objects against a real PostgreSQL and Garage. Run by
//! scripts/distributed-test.sh; plain `cargo test` skips it.

mod common;

use bytes::Bytes;
use davit_distributed::sweep::sweep;
use davit_distributed::{BlobError, Blobs, Namespace};
use davit_proto::href::DavPath;
use futures_util::StreamExt;
use std::time::Duration;

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
