//! The cache of rendered listings and small files: answers come from it (its hit counter says
//! so), and they are never stale, whether davit or another program changed the files.

use crate::common::*;
use davit_proto::xml::QName;
use davit_server::DavConfig;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

fn hits(s: &TestServer) -> u64 {
    s.dav
        .cache()
        .expect("the cache is on")
        .stats
        .hits
        .load(Ordering::Relaxed)
}

/// PROPFIND Depth 1 (allprop) of `path`, and whether it came from the cache.
async fn listing(s: &TestServer, path: &str) -> (Multistatus, bool) {
    let before = hits(s);
    let ms = s.propfind_ms(path, Some("1"), "").await;
    (ms, hits(s) == before + 1)
}

/// GET of `path`, and whether it came from the cache.
async fn get(s: &TestServer, path: &str) -> (Resp, bool) {
    let before = hits(s);
    let r = s.get(path).await;
    (r, hits(s) == before + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_follow_changes_made_by_other_programs_at_once() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/d/").await.status, 201);
    assert_eq!(s.put("/d/a.txt", "one").await.status, 201);
    let (first, cached) = listing(&s, "/d/").await;
    assert!(!cached);
    let (second, cached) = listing(&s, "/d/").await;
    assert!(cached, "the second listing comes from the cache");
    assert_eq!(second.outcomes(), first.outcomes());
    assert_eq!(
        second
            .get("/d/a.txt")
            .dav_text("getcontentlength")
            .as_deref(),
        Some("3")
    );
    let d = s.root().join("d");

    // Changed content.
    std::fs::write(d.join("a.txt"), "longer").unwrap();
    let (ms, cached) = listing(&s, "/d/").await;
    assert!(!cached);
    assert_eq!(
        ms.get("/d/a.txt").dav_text("getcontentlength").as_deref(),
        Some("6")
    );
    assert!(listing(&s, "/d/").await.1, "kept again");

    // Added.
    std::fs::write(d.join("b.txt"), "b").unwrap();
    let (ms, _) = listing(&s, "/d/").await;
    assert_eq!(ms.hrefs(), vec!["/d/", "/d/a.txt", "/d/b.txt"]);
    assert!(listing(&s, "/d/").await.1);

    // Renamed.
    std::fs::rename(d.join("b.txt"), d.join("c.txt")).unwrap();
    let (ms, _) = listing(&s, "/d/").await;
    assert_eq!(ms.hrefs(), vec!["/d/", "/d/a.txt", "/d/c.txt"]);
    assert!(listing(&s, "/d/").await.1);

    // Deleted.
    std::fs::remove_file(d.join("c.txt")).unwrap();
    let (ms, _) = listing(&s, "/d/").await;
    assert_eq!(ms.hrefs(), vec!["/d/", "/d/a.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_collection_changing_inside_shows_in_its_parents_listing() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/d/").await.status, 201);
    assert_eq!(s.mkcol("/d/sub/").await.status, 201);
    // An old date, so that the change below moves it to now.
    let old = SystemTime::now() - Duration::from_secs(86400 * 30);
    std::fs::File::open(s.root().join("d/sub"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let (ms, _) = listing(&s, "/d/").await;
    let before = ms.get("/d/sub/").dav_text("getlastmodified").unwrap();
    assert!(listing(&s, "/d/").await.1);
    // Only the member's own watch sees this: nothing in /d itself changes.
    std::fs::write(s.root().join("d/sub/new.txt"), "x").unwrap();
    let (ms, cached) = listing(&s, "/d/").await;
    assert!(!cached);
    let after = ms.get("/d/sub/").dav_text("getlastmodified").unwrap();
    assert_ne!(after, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_follow_changes_made_by_other_programs_at_once() {
    let s = TestServer::start().await;
    assert_eq!(s.put("/f.txt", "version 1").await.status, 201);
    let (r1, cached) = get(&s, "/f.txt").await;
    assert!(!cached);
    let (r2, cached) = get(&s, "/f.txt").await;
    assert!(cached);
    assert_eq!(&r2.body[..], b"version 1");
    for h in ["etag", "last-modified", "content-type", "content-length"] {
        assert_eq!(r2.header(h), r1.header(h), "{h}");
    }
    let etag = r2.header("etag").unwrap().to_owned();
    // A conditional GET answered from the cache.
    let before = hits(&s);
    let r = s
        .req("GET", "/f.txt")
        .header("If-None-Match", &etag)
        .send()
        .await;
    assert_eq!(r.status, 304);
    assert_eq!(hits(&s), before + 1);

    std::fs::write(s.root().join("f.txt"), "version 2, longer").unwrap();
    let (r, cached) = get(&s, "/f.txt").await;
    assert!(!cached);
    assert_eq!(&r.body[..], b"version 2, longer");
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    assert!(get(&s, "/f.txt").await.1);

    // A range is read from storage, and right.
    let r = s
        .req("GET", "/f.txt")
        .header("Range", "bytes=0-6")
        .send()
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], b"version");

    std::fs::remove_file(s.root().join("f.txt")).unwrap();
    assert_eq!(s.get("/f.txt").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_davit_show_at_once() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/d/").await.status, 201);
    assert_eq!(s.put("/d/a.txt", "one").await.status, 201);
    listing(&s, "/d/").await;
    assert!(listing(&s, "/d/").await.1);

    // A dead property: only the property store changes, no file.
    s.set_prop("/d/a.txt", "color", "red").await;
    let (ms, cached) = listing(&s, "/d/").await;
    assert!(!cached);
    let color = QName::new(Z, "color");
    assert_eq!(
        ms.get("/d/a.txt")
            .prop(&color)
            .map(|(st, e)| (st, e.text())),
        Some((200, "red".to_owned()))
    );
    assert!(listing(&s, "/d/").await.1);

    // A lock: only the lock store changes.
    let r = s
        .lock(
            "/d/a.txt",
            Some("0"),
            None,
            &lockinfo("exclusive", None),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let token = r.header("lock-token").unwrap().to_owned();
    let (ms, cached) = listing(&s, "/d/").await;
    assert!(!cached);
    let lock = ms.get("/d/a.txt").dav("lockdiscovery").unwrap();
    assert_eq!(lock.elements().count(), 1, "one activelock");
    // Its timeout counts down: never kept.
    assert!(!listing(&s, "/d/").await.1);
    let r = s
        .req("UNLOCK", "/d/a.txt")
        .header("Lock-Token", &token)
        .send()
        .await;
    assert_eq!(r.status, 204);
    let (ms, _) = listing(&s, "/d/").await;
    let lock = ms.get("/d/a.txt").dav("lockdiscovery").unwrap();
    assert_eq!(lock.elements().count(), 0, "no activelock");

    // Content, through davit.
    assert!(listing(&s, "/d/").await.1);
    assert!(matches!(get(&s, "/d/a.txt").await, (_, false)));
    assert_eq!(s.put("/d/a.txt", "two!").await.status, 204);
    assert_eq!(&s.get("/d/a.txt").await.body[..], b"two!");
    let (ms, _) = listing(&s, "/d/").await;
    assert_eq!(
        ms.get("/d/a.txt").dav_text("getcontentlength").as_deref(),
        Some("4")
    );
    let r = s.copy_move("MOVE", "/d/a.txt", "/d/b.txt", &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(listing(&s, "/d/").await.0.hrefs(), vec!["/d/", "/d/b.txt"]);
    assert_eq!(s.get("/d/a.txt").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_lost_events_nothing_stale_is_served() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/d/").await.status, 201);
    assert_eq!(s.put("/d/a.txt", "one").await.status, 201);
    listing(&s, "/d/").await;
    get(&s, "/d/a.txt").await;
    assert!(listing(&s, "/d/").await.1);
    assert!(get(&s, "/d/a.txt").await.1);
    std::fs::write(s.root().join("d/a.txt"), "changed").unwrap();
    std::fs::write(s.root().join("d/new.txt"), "new").unwrap();
    let cache = s.dav.cache().unwrap();
    let overflows = cache.stats.overflows.load(Ordering::Relaxed);
    // The events of both changes are lost, as when the kernel's queue overflows.
    cache.simulate_overflow();
    let (ms, cached) = listing(&s, "/d/").await;
    assert!(!cached);
    assert_eq!(ms.hrefs(), vec!["/d/", "/d/a.txt", "/d/new.txt"]);
    let (r, cached) = get(&s, "/d/a.txt").await;
    assert!(!cached);
    assert_eq!(&r.body[..], b"changed");
    assert_eq!(cache.stats.overflows.load(Ordering::Relaxed), overflows + 1);
    // Watched again from scratch, the cache works as before.
    assert!(listing(&s, "/d/").await.1);
    std::fs::write(s.root().join("d/a.txt"), "again").unwrap();
    assert_eq!(&get(&s, "/d/a.txt").await.0.body[..], b"again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_with_other_names_are_not_kept() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/d/").await.status, 201);
    assert_eq!(s.mkcol("/e/").await.status, 201);
    assert_eq!(s.put("/d/a.txt", "one").await.status, 201);
    // A hard link in /e and a symlink to /d: a change through /d shows under both.
    std::fs::hard_link(s.root().join("d/a.txt"), s.root().join("e/b.txt")).unwrap();
    std::os::unix::fs::symlink("d", s.root().join("link")).unwrap();
    for _ in 0..2 {
        assert!(!listing(&s, "/e/").await.1);
        assert!(!listing(&s, "/link/").await.1);
        assert!(!get(&s, "/e/b.txt").await.1);
        assert!(!get(&s, "/link/a.txt").await.1);
    }
    // Written in place (the inode both names share).
    std::fs::OpenOptions::new()
        .write(true)
        .open(s.root().join("d/a.txt"))
        .unwrap()
        .set_len(1)
        .unwrap();
    assert_eq!(&s.get("/e/b.txt").await.body[..], b"o");
    assert_eq!(&s.get("/link/a.txt").await.body[..], b"o");
    let (ms, _) = listing(&s, "/e/").await;
    assert_eq!(
        ms.get("/e/b.txt").dav_text("getcontentlength").as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_can_be_turned_off() {
    let s = TestServer::with_config(DavConfig {
        cache_bytes: 0,
        ..DavConfig::default()
    })
    .await;
    assert!(s.dav.cache().is_none());
    assert_eq!(s.put("/f.txt", "x").await.status, 201);
    assert_eq!(&s.get("/f.txt").await.body[..], b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_change_with_time_or_the_whole_share_are_not_kept() {
    let s = TestServer::start().await;
    assert_eq!(s.put("/f.txt", "one").await.status, 201);
    for prop in [
        "quota-used-bytes",
        "sync-token",
        "current-user-privilege-set",
    ] {
        let body =
            format!(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:{prop}/></D:prop></D:propfind>"#);
        for _ in 0..2 {
            let before = hits(&s);
            let r = s.propfind("/", Some("0"), &body).await;
            assert_eq!(r.status, 207, "{prop}");
            assert_eq!(hits(&s), before, "{prop} answered from the cache");
        }
    }
    // And a conditional PROPFIND is checked, not looked up.
    let body = r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#;
    s.propfind("/f.txt", Some("0"), body).await;
    let r = s
        .req("PROPFIND", "/f.txt")
        .header("Depth", "0")
        .header("If-Match", "\"not-the-etag\"")
        .body(body)
        .send()
        .await;
    assert_eq!(r.status, 412);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_gets_their_own_answers_and_a_reload_of_the_rules_drops_them() {
    use davit_server::auth::{Access, RuleConfig};
    let mut auth = auth_with_users(&["alice", "bob"]);
    auth.rules.push(RuleConfig {
        path: "/d/secret".into(),
        users: vec!["bob".into()],
        access: Access::None,
    });
    let s = TestServer::with_auth(auth.clone()).await;
    std::fs::create_dir_all(s.root().join("d/secret")).unwrap();
    std::fs::write(s.root().join("d/open.txt"), "o").unwrap();
    let list = |user: &'static str| {
        let s = &s;
        async move {
            let before = hits(s);
            let r = s
                .req("PROPFIND", "/d/")
                .user(user)
                .header("Depth", "1")
                .send()
                .await;
            assert_eq!(r.status, 207, "{user}");
            (r.ms().hrefs(), hits(s) == before + 1)
        }
    };
    let hrefs = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let everything = hrefs(&["/d/", "/d/open.txt", "/d/secret/"]);
    let visible = hrefs(&["/d/", "/d/open.txt"]);
    assert_eq!(list("alice").await, (everything.clone(), false));
    assert_eq!(list("alice").await, (everything.clone(), true));
    // Bob's answer is his own, never alice's kept one.
    assert_eq!(list("bob").await, (visible.clone(), false));
    assert_eq!(list("bob").await, (visible, true));
    // The rules change (SIGHUP): what was kept under the old ones is not used.
    auth.rules.clear();
    s.dav.auth().unwrap().reload(&auth).unwrap();
    assert_eq!(list("bob").await, (everything.clone(), false));
    auth.rules.push(RuleConfig {
        path: "/d/secret".into(),
        users: vec!["alice".into()],
        access: Access::None,
    });
    s.dav.auth().unwrap().reload(&auth).unwrap();
    assert_eq!(list("alice").await, (hrefs(&["/d/", "/d/open.txt"]), false));
}
