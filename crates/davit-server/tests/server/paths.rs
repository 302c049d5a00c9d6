//! Names and the root: hostile names round-trip, nothing escapes the root, symlinks pointing
//! outside are invisible, and the state directory is hidden.

use crate::common::*;
use davit_server::DavConfig;
use percent_encoding::percent_decode_str;

/// A server whose root sits inside a parent directory that holds a canary file.
async fn fenced() -> (TestServer, std::path::PathBuf) {
    let parent = tempfile::tempdir().expect("parent tempdir");
    let root = parent.path().join("root");
    std::fs::create_dir(&root).expect("root dir");
    std::fs::write(parent.path().join("secret.txt"), "CANARY-OUTSIDE").expect("canary");
    let state = tempfile::tempdir().expect("state tempdir");
    let parent_path = parent.path().to_path_buf();
    let dirs = Dirs {
        root,
        state: Some(state.path().to_path_buf()),
        guards: vec![parent, state],
    };
    (
        TestServer::launch(dirs, DavConfig::default()).await,
        parent_path,
    )
}

fn decode(href: &str) -> String {
    percent_decode_str(href)
        .decode_utf8()
        .expect("href decodes as UTF-8")
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_never_leaves_the_root() {
    let (s, parent) = fenced().await;
    s.put("/inside.txt", "inside").await;
    let targets = [
        "/../secret.txt",
        "/..",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2e%2e",
        "/a/../../secret.txt",
        "/./../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/a%2fb",
        "/secret.txt%00",
        "/inside.txt%00",
        "/%00",
        "/.",
        "/%2e",
        "/inside.txt/..",
        "/%c0%ae%c0%ae/secret.txt",
        "/%ff",
    ];
    for t in targets {
        for method in ["GET", "PROPFIND", "DELETE"] {
            let req = format!(
                "{method} {t} HTTP/1.1\r\nHost: {}\r\nDepth: 0\r\nConnection: close\r\n\r\n",
                s.host()
            );
            let r = s.raw_resp(req.as_bytes()).await;
            assert!(
                (400..500).contains(&r.status),
                "{method} {t} gave {}",
                r.status
            );
            assert!(
                find(&r.body, b"CANARY").is_none(),
                "{method} {t} leaked the canary"
            );
        }
    }
    // Absolute-form request targets are held to the same rules.
    let req = format!(
        "GET http://{}/%2e%2e/secret.txt HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.host(),
        s.host()
    );
    let r = s.raw_resp(req.as_bytes()).await;
    assert!(
        (400..500).contains(&r.status),
        "absolute form gave {}",
        r.status
    );
    // Writes that try to leave the root.
    for t in [
        "/../evil.txt",
        "/%2e%2e/evil.txt",
        "/a/../../evil.txt",
        "/..%2fevil.txt",
    ] {
        for method in ["PUT", "MKCOL"] {
            let req = format!(
                "{method} {t} HTTP/1.1\r\nHost: {}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil",
                s.host()
            );
            let r = s.raw_resp(req.as_bytes()).await;
            assert!(
                (400..500).contains(&r.status),
                "{method} {t} gave {}",
                r.status
            );
        }
    }
    for dest in [
        "/../evil.txt",
        "/%2e%2e/evil.txt",
        &s.url("/%2e%2e/evil.txt"),
        "/a%2f..%2f..%2fevil.txt",
    ] {
        for method in ["COPY", "MOVE"] {
            let r = s.copy_move(method, "/inside.txt", dest, &[]).await;
            assert!(
                (400..500).contains(&r.status),
                "{method} -> {dest} gave {}",
                r.status
            );
        }
    }
    assert_eq!(dir_names(&parent), vec!["root", "secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(parent.join("secret.txt")).unwrap(),
        "CANARY-OUTSIDE"
    );
    assert_eq!(dir_names(s.root()), vec!["inside.txt"]);
    // The server is still fine.
    assert_eq!(&s.get("/inside.txt").await.body[..], b"inside");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_fragment_in_target_is_refused() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    for t in ["/f#frag", "/#"] {
        let req = format!(
            "GET {t} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.host()
        );
        let r = s.raw_resp(req.as_bytes()).await;
        assert_eq!(r.status, 400, "GET {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_space_in_target() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    // A query is not part of the path.
    assert_eq!(&s.get("/f?x=1").await.body[..], b"x");
    assert_eq!(s.get("/nope?/f").await.status, 404);
    // A raw space cannot be part of a request target.
    let req = format!(
        "GET /a b HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.host()
    );
    assert_eq!(s.raw_resp(req.as_bytes()).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_round_trip_through_put() {
    let s = TestServer::start().await;
    s.mkcol("/dir/").await;
    for name in HOSTILE {
        let href = href_of(name, false);
        assert_eq!(
            s.put(&format!("/dir{href}"), format!("body of {name}"))
                .await
                .status,
            201,
            "PUT {name}"
        );
        let coll = href_of(&format!("c {name}"), true);
        assert_eq!(
            s.mkcol(&format!("/dir{coll}")).await.status,
            201,
            "MKCOL c {name}"
        );
        assert_eq!(
            s.put(&format!("/dir{coll}inner"), "inner").await.status,
            201
        );
    }
    let ms = s.propfind_ms("/dir/", Some("infinity"), "").await;
    let map = ms.map();
    assert_eq!(map.len(), 1 + 3 * HOSTILE.len());
    for name in HOSTILE {
        let href = format!("/dir{}", href_of(name, false));
        let r = map
            .get(&href)
            .unwrap_or_else(|| panic!("{href} not listed: {:?}", ms.hrefs()));
        assert!(!r.is_collection());
        assert!(
            !href.contains([' ', '#', '?', '<', '>', '&', '+']),
            "unescaped href {href}"
        );
        assert!(href.is_ascii(), "href {href} is not ASCII");
        assert_eq!(decode(&href), format!("/dir/{name}"));
        let g = s.get(&href).await;
        assert_eq!(g.status, 200, "GET {href}");
        assert_eq!(g.text(), format!("body of {name}"));
        let coll = format!("/dir{}", href_of(&format!("c {name}"), true));
        assert!(map.get(&coll).is_some_and(|r| r.is_collection()), "{coll}");
        let inner = format!("{coll}inner");
        assert!(map.contains_key(&inner), "{inner}");
        assert_eq!(s.get(&inner).await.status, 200);
    }
    // On disk the names are the decoded ones.
    let on_disk = dir_names(&s.root().join("dir"));
    for name in HOSTILE {
        assert!(
            on_disk.contains(&name.to_string()),
            "{name} not on disk: {on_disk:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_made_on_disk_round_trip() {
    let s = TestServer::start().await;
    for name in HOSTILE.iter().chain(&[
        "it's",
        "tab\tname",
        "semi;colon=eq",
        "~tilde",
        "ünï cødé.txt",
    ]) {
        write_file(s.root(), name, name.as_bytes());
    }
    let ms = s.propfind_ms("/", Some("1"), "").await;
    let hrefs: Vec<String> = ms.hrefs().into_iter().filter(|h| h != "/").collect();
    assert_eq!(hrefs.len(), HOSTILE.len() + 5);
    for href in hrefs {
        let name = decode(&href[1..]);
        let g = s.get(&href).await;
        assert_eq!(g.status, 200, "GET {href}");
        assert_eq!(g.text(), name, "{href}");
        // COPY and MOVE with the same kind of name as destination.
        let dest = format!("/copy{}", &href[1..]);
        assert_eq!(
            s.copy_move("COPY", &href, &dest, &[]).await.status,
            201,
            "COPY {href}"
        );
        assert_eq!(s.get(&dest).await.text(), name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_pointing_outside_are_invisible() {
    use std::os::unix::fs::symlink;
    let s = TestServer::start().await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "CANARY-OUTSIDE").unwrap();
    std::fs::create_dir(outside.path().join("sub")).unwrap();
    symlink(outside.path(), s.root().join("out")).unwrap();
    symlink(outside.path().join("secret.txt"), s.root().join("outfile")).unwrap();
    s.mkcol("/c/").await;
    s.put("/c/ok", "ok").await;
    symlink(outside.path(), s.root().join("c/link")).unwrap();

    for p in [
        "/out",
        "/out/",
        "/out/secret.txt",
        "/out/sub/",
        "/outfile",
        "/c/link/secret.txt",
    ] {
        let g = s.get(p).await;
        assert_eq!(g.status, 404, "GET {p}");
        assert!(find(&g.body, b"CANARY").is_none());
        assert_eq!(
            s.propfind(p, Some("0"), "").await.status,
            404,
            "PROPFIND {p}"
        );
        assert_eq!(s.proppatch(p, r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">1</Z:a></D:prop></D:set></D:propertyupdate>"#).await.status, 404, "PROPPATCH {p}");
    }
    let ms = s.propfind_ms("/", Some("infinity"), "").await;
    assert_eq!(ms.hrefs(), vec!["/", "/c/", "/c/ok"]);
    let index = s.get("/").await.text();
    assert!(
        !index.contains("out"),
        "index lists an outside symlink: {index}"
    );
    assert!(!s.get("/c/").await.text().contains("link"));

    // Writes through the link do not land outside.
    assert!((400..500).contains(&s.put("/out/new.txt", "x").await.status));
    assert!((400..500).contains(&s.mkcol("/out/newdir/").await.status));
    assert!((400..500).contains(
        &s.copy_move("COPY", "/c/ok", "/out/copied", &[])
            .await
            .status
    ));
    assert_eq!(s.copy_move("MOVE", "/out", "/moved", &[]).await.status, 404);
    assert_eq!(s.delete("/out").await.status, 404);
    // Copying a tree that holds one does not pull outside content in.
    let r = s.copy_move("COPY", "/c/", "/k/", &[]).await;
    assert!(matches!(r.status, 201 | 207), "{}", r.status);
    assert!(!s.root().join("k/link/secret.txt").exists());
    // Deleting a tree that holds one removes the link, not what it points to.
    assert_eq!(s.delete("/c/").await.status, 204);
    assert!(!s.root().join("c").exists());
    assert_eq!(dir_names(outside.path()), vec!["secret.txt", "sub"]);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
        "CANARY-OUTSIDE"
    );
}

/// A symlink at a destination that points outside the root reads as unmapped; copying onto it
/// must replace nothing outside (regression: the copy used to open the destination following
/// the link).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_onto_an_outside_symlink_never_writes_outside() {
    use std::os::unix::fs::symlink;
    let s = TestServer::start().await;
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "CANARY-OUTSIDE").unwrap();
    symlink(&victim, s.root().join("trap")).unwrap();
    s.put("/src.txt", "attacker").await;
    for method in ["COPY", "MOVE"] {
        let r = s.copy_move(method, "/src.txt", "/trap", &[]).await;
        assert!(r.status < 500, "{method}: {}", r.status);
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "CANARY-OUTSIDE",
            "{method}"
        );
        s.put("/src.txt", "attacker").await;
        if !s.root().join("trap").is_symlink() {
            std::fs::remove_file(s.root().join("trap")).unwrap();
            symlink(&victim, s.root().join("trap")).unwrap();
        }
    }
    let r = s.put("/trap", "attacker").await;
    assert!(r.status < 500);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "CANARY-OUTSIDE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_inside_the_root_work() {
    use std::os::unix::fs::symlink;
    let s = TestServer::start().await;
    s.put("/real.txt", "real").await;
    s.mkcol("/realdir/").await;
    s.put("/realdir/x", "x").await;
    symlink(s.root().join("real.txt"), s.root().join("alias.txt")).unwrap();
    symlink("realdir", s.root().join("aliasdir")).unwrap();
    assert_eq!(&s.get("/alias.txt").await.body[..], b"real");
    assert_eq!(&s.get("/aliasdir/x").await.body[..], b"x");
    let ms = s.propfind_ms("/", Some("1"), "").await;
    assert_eq!(
        ms.hrefs(),
        vec!["/", "/alias.txt", "/aliasdir/", "/real.txt", "/realdir/"]
    );
    assert!(ms.get("/aliasdir/").is_collection());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_state_dir_is_invisible() {
    let root = tempfile::tempdir().unwrap();
    let dirs = Dirs {
        root: root.path().to_path_buf(),
        state: None,
        guards: vec![root],
    };
    let s = TestServer::launch(dirs, DavConfig::default()).await;
    let state = s.root().join(".davit");
    assert!(state.is_dir(), "the state directory is root/.davit");
    s.put("/f", "x").await;
    s.set_prop("/f", "p", "v").await;
    s.mkcol("/e/").await;
    s.mkcol("/c/").await;
    s.mkcol("/c/.davit/").await; // an ordinary directory of that name deeper down
    let state_before = dir_names(&state);
    assert!(!state_before.is_empty());

    for depth in ["1", "infinity"] {
        let ms = s.propfind_ms("/", Some(depth), "").await;
        let hrefs = ms.hrefs();
        assert!(
            !hrefs.iter().any(|h| h.starts_with("/.davit")),
            "Depth {depth}: {hrefs:?}"
        );
        assert!(hrefs.contains(&"/f".to_owned()));
        if depth == "infinity" {
            assert!(hrefs.contains(&"/c/.davit/".to_owned()), "{hrefs:?}");
        }
    }
    let links = crate::get::html_links(&s.get("/").await.text());
    assert!(!links.iter().any(|l| l.contains(".davit")), "{links:?}");

    for p in [
        "/.davit",
        "/.davit/",
        "/.davit/props.sqlite3",
        "/.davit/tmp/",
        "/%2edavit/",
    ] {
        assert_eq!(s.get(p).await.status, 404, "GET {p}");
        assert_eq!(s.head(p).await.status, 404, "HEAD {p}");
        assert_eq!(
            s.propfind(p, Some("0"), "").await.status,
            404,
            "PROPFIND {p}"
        );
        assert_eq!(s.delete(p).await.status, 404, "DELETE {p}");
        assert_eq!(
            s.copy_move("COPY", p, "/stolen", &[]).await.status,
            404,
            "COPY {p}"
        );
        assert_eq!(
            s.copy_move("MOVE", p, "/stolen", &[]).await.status,
            404,
            "MOVE {p}"
        );
    }
    // Nothing can be written into it or over it.
    for (method, path, dest) in [
        ("PUT", "/.davit/x", None),
        ("PUT", "/.davit/props.sqlite3", None),
        ("PUT", "/.davit", None),
        ("MKCOL", "/.davit/", None),
        ("MKCOL", "/.davit/sub/", None),
        ("COPY", "/f", Some("/.davit/props.sqlite3")),
        ("COPY", "/f", Some("/.davit")),
        ("MOVE", "/e/", Some("/.davit")),
        ("COPY", "/c/", Some("/.davit")),
    ] {
        let mut r = s.req(method, path).body("junk");
        if let Some(d) = dest {
            r = r.header("Destination", d);
        }
        let r = r.send().await;
        assert!(
            !(200..300).contains(&r.status),
            "{method} {path} {dest:?} gave {}",
            r.status
        );
    }
    // Every file of the state directory is still there, and nothing was added to it (beyond
    // SQLite's own journal files).
    let state_after = dir_names(&state);
    for name in &state_before {
        assert!(
            state_after.contains(name),
            "{name} vanished from the state directory"
        );
    }
    for name in &state_after {
        let journal = state_before
            .iter()
            .any(|b| name.starts_with(&format!("{b}-")));
        assert!(
            state_before.contains(name) || journal,
            "{name} appeared in the state directory"
        );
    }
    assert!(!s.root().join("stolen").exists());
    // The server's own data is intact and still works.
    assert_eq!(s.z_prop("/f", "p").await.as_deref(), Some("v"));
    s.set_prop("/f", "p2", "w").await;
    assert_eq!(s.z_prop("/f", "p2").await.as_deref(), Some("w"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_in_the_tree_never_hangs_a_request() {
    // Opening a FIFO for reading waits for a writer; a GET or a COPY of one once held its
    // worker (or a pool thread) for good. Now it is refused at once.
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/ok", "ok").await;
    let made = std::process::Command::new("mkfifo")
        .arg(s.root().join("c/pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    let limit = std::time::Duration::from_secs(10);

    let g = tokio::time::timeout(limit, s.get("/c/pipe"))
        .await
        .expect("GET of a FIFO hung");
    assert_eq!(g.status, 403);
    let c = tokio::time::timeout(limit, s.copy_move("COPY", "/c/", "/d/", &[]))
        .await
        .expect("COPY of a tree with a FIFO hung");
    assert_eq!(c.status, 207, "the FIFO is reported, the rest copied");
    assert_eq!(s.get("/d/ok").await.text(), "ok");
    assert_eq!(s.get("/c/ok").await.status, 200);
}
