//! The object-store layer against a real S3 server (Garage, started by scripts/distributed-test.sh);
//! plain `cargo test` skips these.

mod common;

use bytes::Bytes;
use davit_distributed::{BlobConfig, BlobError, Blobs};
use futures_util::StreamExt;

const MIB: usize = 1 << 20;

async fn read_all(
    blobs: &Blobs,
    key: &str,
    range: Option<std::ops::Range<u64>>,
) -> Result<Vec<u8>, BlobError> {
    let mut stream = blobs.read(key, range).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Deterministic bytes, different at every offset.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn unique(name: &str) -> String {
    format!("test/{}/{name}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
#[ignore = "needs an S3 server: scripts/distributed-test.sh"]
async fn small_and_multipart_objects_round_trip_and_copy_server_side() {
    let blobs = Blobs::connect(&common::s3_config(5 * MIB))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Below the part size: one PUT.
    let small = unique("small");
    let mut w = blobs.writer(&small);
    w.write(Bytes::from_static(b"hello, "))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.write(Bytes::from_static(b"world"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.finish().await.unwrap_or_else(|e| panic!("{e}")), 12);
    assert_eq!(
        read_all(&blobs, &small, None).await.unwrap_or_default(),
        b"hello, world"
    );
    assert_eq!(
        read_all(&blobs, &small, Some(7..12))
            .await
            .unwrap_or_default(),
        b"world"
    );

    // 13 MiB in 64 KiB writes: three parts, the last short.
    let big = unique("big");
    let data = pattern(13 * MIB, 7);
    let mut w = blobs.writer(&big);
    for chunk in data.chunks(64 * 1024) {
        w.write(Bytes::copy_from_slice(chunk))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        w.finish().await.unwrap_or_else(|e| panic!("{e}")),
        data.len() as u64
    );
    assert!(
        read_all(&blobs, &big, None).await.unwrap_or_default() == data,
        "multipart body differs"
    );
    let from = (6 * MIB - 3) as u64;
    assert!(
        read_all(&blobs, &big, Some(from..from + 10))
            .await
            .unwrap_or_default()
            == data[from as usize..from as usize + 10]
    );

    // A server-side copy, then the original deleted: the copy stands alone.
    let copy = unique("copy");
    blobs
        .copy(&big, &copy)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    blobs.delete(&big).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        read_all(&blobs, &big, None).await,
        Err(BlobError::NotFound)
    ));
    assert!(
        read_all(&blobs, &copy, None).await.unwrap_or_default() == data,
        "copy differs"
    );
    blobs
        .delete(&big)
        .await
        .unwrap_or_else(|e| panic!("deleting twice: {e}"));

    // The listing sees what is there, with sizes.
    let prefix = copy
        .rsplit_once('/')
        .map(|(p, _)| p.to_owned())
        .unwrap_or_default();
    let listed: Vec<_> = blobs
        .list(&prefix)
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].key.as_str(), listed[0].size),
        (copy.as_str(), data.len() as u64)
    );
    let age = std::time::SystemTime::now()
        .duration_since(listed[0].modified)
        .unwrap_or_default();
    assert!(age < std::time::Duration::from_secs(120), "{age:?}");
}

#[tokio::test]
#[ignore = "needs an S3 server: scripts/distributed-test.sh"]
async fn an_aborted_upload_leaves_nothing_visible() {
    let blobs = Blobs::connect(&common::s3_config(5 * MIB))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for size in [MIB, 12 * MIB] {
        let key = unique("aborted");
        let mut w = blobs.writer(&key);
        for chunk in pattern(size, 1).chunks(256 * 1024) {
            w.write(Bytes::copy_from_slice(chunk))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        w.abort().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(read_all(&blobs, &key, None).await, Err(BlobError::NotFound)),
            "{size}"
        );
    }
}

#[tokio::test]
#[ignore = "needs an S3 server: scripts/distributed-test.sh"]
async fn bad_settings_and_an_unreachable_store_are_errors_not_hangs() {
    let good = common::s3_config(5 * MIB);
    let small_parts = BlobConfig {
        part_size: MIB,
        ..good.clone()
    };
    assert!(matches!(
        Blobs::connect(&small_parts).await,
        Err(BlobError::Config(_))
    ));
    let wrong_secret = BlobConfig {
        secret_access_key: Some("0".repeat(64)),
        ..good.clone()
    };
    assert!(matches!(
        Blobs::connect(&wrong_secret).await,
        Err(BlobError::Failed(_))
    ));
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1);
    let gone = BlobConfig {
        endpoint: format!("http://127.0.0.1:{port}"),
        timeout_secs: 2,
        ..good
    };
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), Blobs::connect(&gone))
        .await
        .unwrap_or_else(|_| panic!("connecting to a closed port hung"));
    assert!(
        matches!(r, Err(BlobError::Unavailable(_))),
        "{r:?} after {:?}",
        started.elapsed()
    );
}
