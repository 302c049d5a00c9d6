//! `davit import`'s engine: a directory served by the embedded backend (files, collections,
//! dates, dead properties, resource ids) is loaded into PostgreSQL and the object store, and
//! what davit then serves from there is what it served from the directory. Run by
//! scripts/distributed-test.sh; plain `cargo test` skips these.

mod common;

use bytes::Bytes;
use davit_distributed::import::{Importer, Progress};
use davit_distributed::{Blobs, Namespace, Pg, PgLockStore, PgPropStore, PgStorage};
use davit_server::locks::LockStore;
use davit_server::props::{PropStore, SqlitePropStore};
use davit_server::storage::{FsStorage, Storage};
use davit_server::{Dav, DavConfig, Server};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use std::collections::BTreeMap;

async fn send<S, P, L>(
    dav: &Dav<S, P, L>,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, Bytes)
where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    let mut req = Request::builder().method(method).uri(path);
    if method == "PROPFIND" {
        req = req.header("Depth", "infinity");
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = tokio::time::timeout(std::time::Duration::from_secs(60), dav.handle(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} hung"));
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, body)
}

/// Every resource of a Depth-infinity allprop PROPFIND: href -> its 200 properties (name ->
/// text), without the ones that differ between backends by design (ETag, lock discovery).
async fn tree<S, P, L>(dav: &Dav<S, P, L>) -> BTreeMap<String, BTreeMap<String, String>>
where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    let (status, body) = send(
        dav,
        "PROPFIND",
        "/",
        r#"<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:resource-id/></D:include></D:propfind>"#,
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    let root = davit_proto::xml::parse_document(&body, &Default::default())
        .unwrap_or_else(|e| panic!("not XML ({e})"));
    let mut out = BTreeMap::new();
    for response in root.elements().filter(|e| e.name.is_dav("response")) {
        let href = response
            .elements()
            .find(|e| e.name.is_dav("href"))
            .map(|h| h.text())
            .unwrap_or_default();
        let mut props = BTreeMap::new();
        for ps in response.elements().filter(|e| e.name.is_dav("propstat")) {
            if !ps
                .elements()
                .any(|s| s.name.is_dav("status") && s.text().contains(" 200 "))
            {
                continue;
            }
            for prop in ps.elements().filter(|e| e.name.is_dav("prop")) {
                for p in prop.elements() {
                    if p.name.is_dav("getetag")
                        || p.name.is_dav("lockdiscovery")
                        || p.name.is_dav("supportedlock")
                    {
                        continue;
                    }
                    let value = if p.name.is_dav("resource-id") {
                        p.elements().next().map(|h| h.text()).unwrap_or_default()
                    } else {
                        p.text()
                    };
                    props.insert(format!("{{{}}}{}", p.name.ns, p.name.local), value);
                }
            }
        }
        if href == "/" {
            // The store's root is its own resource, with its own id and dates; only its dead
            // properties come from the source.
            props.retain(|name, _| !name.starts_with("{DAV:}"));
        }
        out.insert(href, props);
    }
    out
}

async fn distributed(pg: Pg) -> Dav<PgStorage, PgPropStore, PgLockStore> {
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Dav::new(
        PgStorage::new(Namespace::new(pg.clone()), blobs),
        PgPropStore::new(pg.clone()),
        PgLockStore::new(pg),
        DavConfig::default(),
    )
}

fn pattern(len: usize, seed: u8) -> String {
    (0..len)
        .map(|i| char::from(b'a' + ((i * 7 + usize::from(seed)) % 26) as u8))
        .collect()
}

struct Source {
    dir: tempfile::TempDir,
    storage: FsStorage,
    props: SqlitePropStore,
}

fn source(dir: tempfile::TempDir) -> Source {
    let state = davit_server::config::default_state_dir(dir.path());
    Source {
        storage: FsStorage::new(dir.path(), &state).unwrap_or_else(|e| panic!("{e}")),
        props: SqlitePropStore::open(&state.join("props.sqlite3"))
            .unwrap_or_else(|e| panic!("{e}")),
        dir,
    }
}

async fn import(pg: &Pg, src: &Source) -> Progress {
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Importer::new(pg.clone(), blobs)
        .run(&src.storage, &src.props, |_| {})
        .await
        .unwrap_or_else(|e| panic!("import: {e}"))
}

#[tokio::test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn an_imported_directory_is_served_as_it_was() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let local =
        Server::open(dir.path(), None, DavConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    for (method, path, body) in [
        ("MKCOL", "/docs/", ""),
        ("MKCOL", "/docs/deep/", ""),
        ("MKCOL", "/empty/", ""),
        ("PUT", "/docs/a.txt", "alpha"),
        ("PUT", "/docs/deep/b.txt", "beta"),
        ("PUT", "/zero.bin", ""),
        ("PUT", "/name%20with%20spaces%20&%20%C3%BC.txt", "gamma"),
    ] {
        let (status, _) = send(&local, method, path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{method} {path}");
    }
    let big = pattern(11 << 20, 1);
    assert_eq!(
        send(&local, "PUT", "/docs/big.txt", &big).await.0,
        StatusCode::CREATED
    );
    for path in ["/docs/a.txt", "/docs/deep/", "/"] {
        let (status, _) = send(
            &local,
            "PROPPATCH",
            path,
            r#"<D:propertyupdate xmlns:D="DAV:" xmlns:z="urn:x" xmlns:W="urn:schemas-microsoft-com:"><D:set><D:prop><z:color>red &amp; <z:b>bold</z:b></z:color><W:Win32FileAttributes>00000020</W:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"#,
        )
        .await;
        assert_eq!(status, StatusCode::MULTI_STATUS, "{path}");
    }
    let before = tree(&local).await;
    drop(local);
    assert_eq!(before.len(), 9, "{before:?}");
    let a = &before["/docs/a.txt"];
    for name in [
        "{DAV:}resource-id",
        "{DAV:}getlastmodified",
        "{DAV:}creationdate",
        "{DAV:}getcontentlength",
        "{DAV:}getcontenttype",
        "{urn:x}color",
        "{urn:schemas-microsoft-com:}Win32FileAttributes",
    ] {
        assert!(a.contains_key(name), "no {name} in {a:?}");
    }
    assert_eq!(a["{urn:x}color"], "red & ");
    assert!(a["{DAV:}resource-id"].starts_with("urn:uuid:"), "{a:?}");

    let src = source(dir);
    let url = common::fresh_database().await;
    let pg = common::instance(&url).await;
    let first = import(&pg, &src).await;
    assert_eq!(
        first,
        Progress {
            collections: 3,
            files: 5,
            bytes: 5 + 4 + 5 + (11 << 20),
            unchanged: 0,
            properties: 6,
        }
    );

    let remote = distributed(pg.clone()).await;
    let after = tree(&remote).await;
    assert_eq!(
        after, before,
        "the store serves another tree than the directory did"
    );
    assert_eq!(
        send(&remote, "GET", "/docs/big.txt", "").await,
        (StatusCode::OK, Bytes::from(big))
    );
    assert_eq!(
        send(&remote, "GET", "/name%20with%20spaces%20&%20%C3%BC.txt", "").await,
        (StatusCode::OK, Bytes::from_static(b"gamma"))
    );
    assert_eq!(
        send(&remote, "GET", "/zero.bin", "").await,
        (StatusCode::OK, Bytes::new())
    );

    // Again: nothing is read or written but the properties.
    let second = import(&pg, &src).await;
    assert_eq!(
        second,
        Progress {
            unchanged: 8,
            properties: 6,
            ..Progress::default()
        }
    );

    // A file changed in the directory is brought up to date, a new one added.
    std::fs::write(src.dir.path().join("docs/a.txt"), "alpha, longer")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(src.dir.path().join("docs/new.txt"), "new").unwrap_or_else(|e| panic!("{e}"));
    let third = import(&pg, &src).await;
    assert_eq!(
        third,
        Progress {
            files: 2,
            bytes: 13 + 3,
            unchanged: 7,
            properties: 6,
            ..Progress::default()
        }
    );
    assert_eq!(
        send(&remote, "GET", "/docs/a.txt", "").await,
        (StatusCode::OK, Bytes::from_static(b"alpha, longer"))
    );
    assert_eq!(tree(&remote).await, tree_of(&src).await);
}

/// What `davit serve` serves from the source directory now.
async fn tree_of(src: &Source) -> BTreeMap<String, BTreeMap<String, String>> {
    let local =
        Server::open(src.dir.path(), None, DavConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    tree(&local).await
}

#[tokio::test]
#[ignore = "needs PostgreSQL and an S3 server: scripts/distributed-test.sh"]
async fn an_interrupted_import_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(dir.path().join("many")).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..1500 {
        std::fs::write(
            dir.path().join(format!("many/f{i:04}")),
            format!("file {i}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let src = source(dir);
    let url = common::fresh_database().await;
    let pg = common::instance(&url).await;
    let blobs = Blobs::connect(&common::s3_config(5 << 20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Stopped after its first batch of files, as a ^C would stop it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let importer = Importer::new(pg.clone(), blobs);
    let run = importer.run(&src.storage, &src.props, |p| {
        let _ = tx.send(p.files);
    });
    let stopped_after = tokio::select! {
        r = run => panic!("the import ended before it could be stopped: {r:?}"),
        Some(files) = async {
            // The root's batch (one collection) first, then the first batch of files.
            loop {
                match rx.recv().await {
                    Some(0) => continue,
                    other => return other,
                }
            }
        } => files,
    };
    assert!(stopped_after > 0 && stopped_after < 1500, "{stopped_after}");

    let rest = import(&pg, &src).await;
    assert!(
        rest.unchanged > stopped_after,
        "the second run read again what the first one had imported: {rest:?}"
    );
    // Every file is there once: what the first run committed, the second did not copy again
    // (files in flight when it was stopped may have been committed without being counted).
    assert_eq!(rest.files + rest.unchanged, 1501, "{rest:?}");
    assert!(rest.files <= 1500 - stopped_after, "{rest:?}");
    let remote = distributed(pg).await;
    let listed = tree(&remote).await;
    assert_eq!(listed.len(), 1502);
    assert_eq!(
        send(&remote, "GET", "/many/f1499", "").await,
        (StatusCode::OK, Bytes::from_static(b"file 1499"))
    );
}
