//! Shared by the tests that need a real PostgreSQL: `DAVIT_TEST_PG` is the connection string
//! of a server the tests may create databases on (scripts/distributed-test.sh starts one and sets it).
#![allow(dead_code)]

use davit_distributed::{Pg, PgConfig};

/// A fresh, empty database on the test server, and its connection string.
pub async fn fresh_database() -> String {
    let admin = std::env::var("DAVIT_TEST_PG")
        .unwrap_or_else(|_| panic!("DAVIT_TEST_PG is not set: run scripts/distributed-test.sh"));
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {admin}: {e}"));
    tokio::spawn(conn);
    let name = format!("davit_test_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE: {e}"));
    format!("{admin} dbname={name}")
}

/// A pool on `url`, as one davit instance would open it.
pub async fn instance(url: &str) -> Pg {
    Pg::connect(&PgConfig {
        url: url.to_owned(),
        pool_size: 8,
        timeout_secs: 5,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The test S3 bucket (`DAVIT_TEST_S3`: `endpoint=... region=... bucket=... key=... secret=...`,
/// as scripts/garage.sh prints it), with `part_size`.
pub fn s3_config(part_size: usize) -> davit_distributed::BlobConfig {
    let text = std::env::var("DAVIT_TEST_S3")
        .unwrap_or_else(|_| panic!("DAVIT_TEST_S3 is not set: run scripts/distributed-test.sh"));
    let get = |k: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("DAVIT_TEST_S3 has no {k}"))
            .to_owned()
    };
    davit_distributed::BlobConfig {
        endpoint: get("endpoint"),
        region: get("region"),
        bucket: get("bucket"),
        path_style: true,
        part_size,
        access_key_id: Some(get("key")),
        secret_access_key: Some(get("secret")),
        timeout_secs: 5,
        sweep_interval_secs: 0,
        reuse_connections: false,
        sign_payload: None,
    }
}
