//! When PostgreSQL goes away, requests that need it answer 503 with Retry-After within the
//! time-out, change nothing, and work again once it is back, without a restart. The database
//! is reached through a proxy the test can cut (refusing, or silently swallowing, connections).
//! Run by scripts/distributed-test.sh; plain `cargo test` skips them.

mod common;

use bytes::Bytes;
use davit_distributed::{Pg, PgConfig, PgLockStore};
use davit_server::locks::LockStore;
use davit_server::props::SqlitePropStore;
use davit_server::storage::FsStorage;
use davit_server::{Dav, DavConfig};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const PASS: u8 = 0;
const REFUSE: u8 = 1;
const SWALLOW: u8 = 2;

/// A TCP proxy to PostgreSQL that can be cut.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let mode = Arc::new(AtomicU8::new(PASS));
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (m, t) = (mode.clone(), tasks.clone());
        tokio::spawn(async move {
            let mut swallowed = Vec::new();
            while let Ok((mut client, _)) = listener.accept().await {
                match m.load(Ordering::SeqCst) {
                    REFUSE => drop(client),
                    SWALLOW => swallowed.push(client),
                    _ => {
                        let task = tokio::spawn(async move {
                            if let Ok(mut server) =
                                TcpStream::connect(("127.0.0.1", upstream)).await
                            {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                        if let Ok(mut t) = t.lock() {
                            t.push(task);
                        }
                    }
                }
            }
        });
        Proxy { port, mode, tasks }
    }

    /// From now on connections are refused or swallowed, and the open ones are cut.
    fn cut(&self, how: u8) {
        self.mode.store(how, Ordering::SeqCst);
        if let Ok(mut t) = self.tasks.lock() {
            for task in t.drain(..) {
                task.abort();
            }
        }
    }

    fn restore(&self) {
        self.mode.store(PASS, Ordering::SeqCst);
    }
}

fn port_of(conn: &str) -> u16 {
    conn.split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432)
}

fn with_port(conn: &str, port: u16) -> String {
    conn.split_whitespace()
        .map(|kv| {
            if kv.starts_with("port=") {
                format!("port={port}")
            } else {
                kv.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

type TestDav = Dav<FsStorage, SqlitePropStore, PgLockStore>;

async fn send(
    dav: &TestDav,
    method: &str,
    path: &str,
    body: &'static str,
) -> (StatusCode, Option<String>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Timeout", "Second-600")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_else(|e| panic!("{e}"));
    // The bound is not a measurement: a request that hangs fails the test instead of hanging it.
    let resp = tokio::time::timeout(Duration::from_secs(20), dav.handle(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} hung"));
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = resp.into_body().collect().await;
    (status, retry)
}

const LOCKINFO: &str = r#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn requests_answer_503_while_postgresql_is_away_and_recover_after() {
    let url = common::fresh_database().await;
    let proxy = Proxy::start(port_of(&url)).await;
    let pg = Pg::connect(&PgConfig {
        url: with_port(&url, proxy.port),
        pool_size: 2,
        timeout_secs: 1,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap_or_else(|e| panic!("{e}"));
    let locks = PgLockStore::new(pg);
    let dav: TestDav = Dav::new(
        FsStorage::new(&root, &state).unwrap_or_else(|e| panic!("{e}")),
        SqlitePropStore::open(&state.join("props.sqlite3")).unwrap_or_else(|e| panic!("{e}")),
        locks.clone(),
        DavConfig::default(),
    );

    assert_eq!(
        send(&dav, "PUT", "/a.txt", "old").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&dav, "LOCK", "/a.txt", LOCKINFO).await.0,
        StatusCode::OK
    );

    for how in [REFUSE, SWALLOW] {
        proxy.cut(how);
        // A write must check locks first: it is refused, and nothing is written.
        assert_eq!(
            send(&dav, "PUT", "/a.txt", "new").await,
            (StatusCode::SERVICE_UNAVAILABLE, Some("5".to_owned())),
            "mode {how}"
        );
        assert_eq!(
            send(&dav, "PUT", "/b.txt", "new").await,
            (StatusCode::SERVICE_UNAVAILABLE, Some("5".to_owned()))
        );
        assert_eq!(
            send(&dav, "LOCK", "/c.txt", LOCKINFO).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            std::fs::read_to_string(root.join("a.txt")).ok().as_deref(),
            Some("old")
        );
        assert!(!root.join("b.txt").exists());
        assert!(!root.join("c.txt").exists());
        // Reads that need no lock still work.
        assert_eq!(send(&dav, "GET", "/a.txt", "").await.0, StatusCode::OK);
    }

    // Back: the pool reconnects by itself, and the lock taken before is still there.
    proxy.restore();
    assert_eq!(
        send(&dav, "PUT", "/a.txt", "new").await.0,
        StatusCode::LOCKED
    );
    assert_eq!(
        send(&dav, "PUT", "/b.txt", "new").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&dav, "LOCK", "/c.txt", LOCKINFO).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        locks
            .under(&davit_proto::href::DavPath::root())
            .await
            .map(|l| l.len())
            .ok(),
        Some(2)
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn the_distributed_backend_answers_503_while_postgresql_is_away() {
    use davit_distributed::{Blobs, Namespace, PgPropStore, PgStorage};
    let url = common::fresh_database().await;
    let proxy = Proxy::start(port_of(&url)).await;
    let pg = Pg::connect(&PgConfig {
        url: with_port(&url, proxy.port),
        pool_size: 2,
        timeout_secs: 1,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dav = Dav::new(
        PgStorage::new(Namespace::new(pg.clone()), blobs),
        PgPropStore::new(pg.clone()),
        PgLockStore::new(pg),
        DavConfig::default(),
    );
    let send = |method: &'static str, path: &'static str, body: &'static str| {
        let dav = dav.clone();
        async move {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap_or_else(|e| panic!("{e}"));
            let resp = tokio::time::timeout(Duration::from_secs(20), dav.handle(req))
                .await
                .unwrap_or_else(|_| panic!("{method} {path} hung"));
            let status = resp.status();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, retry, body)
        }
    };
    assert_eq!(send("PUT", "/a.txt", "old").await.0, StatusCode::CREATED);
    for how in [REFUSE, SWALLOW] {
        proxy.cut(how);
        for (method, path, body) in [
            ("GET", "/a.txt", ""),
            ("PUT", "/a.txt", "new"),
            ("PROPFIND", "/", ""),
        ] {
            let (status, retry, _) = send(method, path, body).await;
            assert_eq!(
                (status, retry.as_deref()),
                (StatusCode::SERVICE_UNAVAILABLE, Some("5")),
                "{method} {path}, mode {how}"
            );
        }
    }
    proxy.restore();
    let (status, _, body) = send("GET", "/a.txt", "").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"old"[..]));
    assert_eq!(send("PUT", "/a.txt", "new").await.0, StatusCode::NO_CONTENT);
    assert_eq!(&send("GET", "/a.txt", "").await.2[..], b"new");
}
