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

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn only_collections_store_paths_and_nested_trees_move_whole() {
    let url = common::fresh_database().await;
    let pg = common::instance(&url).await;
    let ns = Namespace::new(pg.clone());
    for d in ["/a", "/a/b", "/a/b/c", "/a/bc", "/y"] {
        ns.create_dir(&p(d))
            .await
            .unwrap_or_else(|e| panic!("{d}: {e}"));
    }
    for f in ["/a/f", "/a/b/f", "/a/b/c/f", "/a/bc/f"] {
        ns.commit_file(&p(f), Some(&format!("blobs{f}")), 3)
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let client = pg.client().await.unwrap_or_else(|e| panic!("{e}"));
    let stored = |rows: Vec<tokio_postgres::Row>| -> Vec<Option<String>> {
        rows.iter().map(|r| r.get(0)).collect()
    };
    let paths = stored(
        client
            .query(
                "SELECT path FROM davit_resources ORDER BY path COLLATE \"C\"",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let expected: Vec<Option<String>> = ["/", "/a", "/a/b", "/a/b/c", "/a/bc", "/y"]
        .iter()
        .map(|s| Some(s.to_string()))
        .chain(std::iter::repeat_n(None, 4))
        .collect();
    assert_eq!(paths, expected);

    // A MOVE rewrites the collections of the tree, and every member is found at its new path.
    ns.rename(&p("/a/b"), &p("/y/moved"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (gone, there) in [("/a/b/f", "/y/moved/f"), ("/a/b/c/f", "/y/moved/c/f")] {
        assert!(ns
            .get(&p(gone))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        let r = ns
            .meta(&p(there))
            .await
            .unwrap_or_else(|e| panic!("{there}: {e}"));
        assert_eq!(r.blob.as_deref(), Some(format!("blobs{gone}").as_str()));
    }
    assert_eq!(names(&ns, "/y/moved/c").await, ["f"]);
    assert_eq!(names(&ns, "/a").await, ["bc", "f"]);
    assert_eq!(ns.tree_size(&p("/y")).await.unwrap_or(0), 6);
    assert_eq!(ns.tree_size(&p("/a/f")).await.unwrap_or(0), 3);
    assert_eq!(ns.count_tree(&p("/a/f"), 10).await.unwrap_or(9), 0);

    // A file moves and is renamed; a file is deleted alone.
    ns.rename(&p("/a/f"), &p("/y/moved/c/g"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&ns, "/y/moved/c").await, ["f", "g"]);
    assert_eq!(
        kind(ns.rename(&p("/a/bc/f"), &p("/y/moved/c/g")).await),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        ns.delete_tree(&p("/y/moved/c/g")).await.unwrap_or_default(),
        ["blobs/a/f"]
    );
    assert_eq!(names(&ns, "/y/moved/c").await, ["f"]);
    assert_eq!(
        kind(ns.touch(&p("/y/moved/c/g")).await),
        ErrorKind::NotFound
    );
    ns.touch(&p("/y/moved/c/f"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // COPY's plan: parents before members, paths relative to the copied collection.
    let plan = ns
        .copy_plan(&p("/y"), true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rels: Vec<&str> = plan.iter().map(|i| i.rel.as_str()).collect();
    assert_eq!(rels, ["", "/moved", "/moved/c", "/moved/c/f", "/moved/f"]);
    let one = ns
        .copy_plan(&p("/a/bc/f"), false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        one.iter()
            .map(|i| (i.rel.as_str(), i.size))
            .collect::<Vec<_>>(),
        [("", 3)]
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/distributed-test.sh"]
async fn a_database_whose_files_kept_paths_is_migrated_at_start() {
    let url = common::fresh_database().await;
    let pg = common::instance(&url).await;
    let ns = Namespace::new(pg.clone());
    ns.create_dir(&p("/d"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ns.commit_file(&p("/d/f"), Some("blobs/f"), 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Back to the layout of earlier versions: every row with its path, no schema version.
    let client = pg.client().await.unwrap_or_else(|e| panic!("{e}"));
    client
        .batch_execute(
            "ALTER TABLE davit_resources DROP CONSTRAINT davit_resources_paths;
             UPDATE davit_resources SET path = '/d/f' WHERE name = 'f';
             DROP TABLE davit_schema;",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    drop(client);

    let again = Namespace::new(common::instance(&url).await);
    let client = pg.client().await.unwrap_or_else(|e| panic!("{e}"));
    let with_path: i64 = client
        .query_one(
            "SELECT count(*) FROM davit_resources WHERE NOT collection AND path IS NOT NULL",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(with_path, 0);
    let f = again
        .meta(&p("/d/f"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.blob.as_deref(), Some("blobs/f"));
    // The rule holds from now on.
    let refused = client
        .execute(
            "UPDATE davit_resources SET path = '/d/f' WHERE name = 'f'",
            &[],
        )
        .await;
    match refused {
        Ok(n) => panic!("a file's stored path was accepted ({n} rows)"),
        Err(e) => assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
        ),
    }
}
