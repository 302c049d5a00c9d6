//! The namespace in PostgreSQL against a real server, as two instances sharing one database.
//! Run by scripts/distributed-test.sh; plain `cargo test` skips these.

mod common;

use davit_distributed::Namespace;
use davit_proto::href::DavPath;
use davit_server::storage::Kind;
use std::io::ErrorKind;

fn p(s: &str) -> DavPath {
    DavPath::parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

fn kind<T: std::fmt::Debug>(r: std::io::Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("succeeded: {v:?}"),
        Err(e) => e.kind(),
    }
}

async fn names(ns: &Namespace, path: &str) -> Vec<String> {
    let id = ns
        .collection_id(&p(path))
        .await
        .unwrap_or_else(|e| panic!("list {path}: {e}"));
    ns.list_page(id, None, i64::MAX)
        .await
        .unwrap_or_else(|e| panic!("list {path}: {e}"))
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn collections_files_and_their_errors() {
    let url = common::fresh_database().await;
    let a = Namespace::new(common::instance(&url).await);
    let b = Namespace::new(common::instance(&url).await);

    let root = a
        .meta(&DavPath::root())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(root.meta.kind, Kind::Dir);
    let docs = a
        .create_dir(&p("/docs"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kind(b.create_dir(&p("/docs")).await),
        ErrorKind::AlreadyExists
    );
    assert_eq!(kind(b.create_dir(&p("/none/x")).await), ErrorKind::NotFound);

    let (f, old) = b
        .commit_file(&p("/docs/a.txt"), Some("blobs/1/1"), 5)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f.meta.kind, f.meta.len, old), (Kind::File, 5, None));
    assert_eq!(
        kind(a.create_dir(&p("/docs/a.txt/x")).await),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        kind(a.commit_file(&p("/docs"), None, 0).await),
        ErrorKind::IsADirectory
    );
    assert_eq!(
        kind(a.collection_id(&p("/docs/a.txt")).await),
        ErrorKind::NotADirectory
    );

    // A new version: same id, another ETag, the old object returned as garbage; the other
    // instance sees exactly the same.
    let (g, old) = a
        .commit_file(&p("/docs/a.txt"), Some("blobs/1/2"), 7)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(old.as_deref(), Some("blobs/1/1"));
    assert_eq!(g.id, f.id);
    assert_ne!(g.meta.etag, f.meta.etag);
    let seen = b
        .meta(&p("/docs/a.txt"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (seen.meta.etag, seen.meta.len, seen.blob),
        (g.meta.etag.clone(), 7, Some("blobs/1/2".into()))
    );

    a.commit_file(&p("/docs/b.txt"), None, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    a.create_dir(&p("/docs/sub"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&b, "/docs").await, ["a.txt", "b.txt", "sub"]);
    assert_eq!(names(&b, "/").await, ["docs"]);
    assert_eq!(b.tree_size(&p("/docs")).await.unwrap_or(0), 7);
    assert_eq!(b.count_tree(&p("/docs"), 100).await.unwrap_or(0), 3);
    assert_eq!(b.count_tree(&p("/docs"), 1).await.unwrap_or(0), 2);
    assert_eq!(docs.meta.kind, Kind::Dir);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn a_tree_moves_in_one_transaction_keeping_ids_and_deletes_return_garbage() {
    let url = common::fresh_database().await;
    let ns = Namespace::new(common::instance(&url).await);
    ns.create_dir(&p("/a"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ns.create_dir(&p("/a/b_%"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // 1,000 members below the moved tree.
    for i in 0..1000 {
        ns.commit_file(
            &p(&format!("/a/b_%/f{i:04}")),
            Some(&format!("blobs/{i}/1")),
            1,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    // A sibling whose name starts like the moved one is not moved with it.
    ns.create_dir(&p("/a/b_%x"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ns.create_dir(&p("/z"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = ns
        .meta(&p("/a/b_%/f0500"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        kind(ns.rename(&p("/a"), &p("/a/b_%/in")).await),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(ns.rename(&p("/a/b_%"), &p("/z")).await),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        kind(ns.rename(&p("/nothing"), &p("/y")).await),
        ErrorKind::NotFound
    );
    ns.rename(&p("/a/b_%"), &p("/z/moved"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let after = ns
        .meta(&p("/z/moved/f0500"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (after.id, after.blob.clone()),
        (before.id, before.blob.clone())
    );
    assert!(ns
        .get(&p("/a/b_%/f0500"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    assert_eq!(ns.count_tree(&p("/z/moved"), 5000).await.unwrap_or(0), 1000);
    assert_eq!(names(&ns, "/a").await, ["b_%x"]);
    assert_eq!(names(&ns, "/z").await, ["moved"]);
    // Members can be created under the new path (their parent row moved with its id).
    ns.commit_file(&p("/z/moved/new"), None, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut garbage = ns
        .delete_tree(&p("/z"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    garbage.sort();
    assert_eq!(garbage.len(), 1000);
    assert_eq!(garbage[0], "blobs/0/1");
    assert_eq!(names(&ns, "/").await, ["a"]);
    assert_eq!(kind(ns.delete_tree(&p("/z")).await), ErrorKind::NotFound);
    assert_eq!(
        kind(ns.delete_tree(&DavPath::root()).await),
        ErrorKind::PermissionDenied
    );
}
