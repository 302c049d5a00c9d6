//! Locking (RFC 4918 §6, §7, §9.10, §9.11, §10.4, §10.5, §10.7): LOCK and UNLOCK, the If
//! header, enforcement on every method, durability and races (issue 3).

use crate::common::*;
use davit_proto::xml::{parse_document, Limits, QName};
use davit_server::DavConfig;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The lockroot and token of the only lock on `path`.
async fn only_lock(s: &TestServer, path: &str) -> ActiveLock {
    let ld = s.lockdiscovery(path).await;
    assert_eq!(ld.len(), 1, "one lock on {path}: {ld:?}");
    ld.into_iter().next().expect("one")
}

fn if_tok(token: &str) -> String {
    format!("(<{token}>)")
}

/// Asserts a 423 whose `lock-token-submitted` names exactly these roots.
fn assert_423(r: &Resp, roots: &[&str], what: &str) {
    assert_eq!(r.status, 423, "{what}: {}", r.text());
    let mut got = r.condition_hrefs("lock-token-submitted");
    got.sort();
    let mut want: Vec<String> = roots.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{what}: lock roots named");
}

fn is_uuid_urn(token: &str) -> bool {
    token
        .strip_prefix("urn:uuid:")
        .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok() && u.len() == 36)
}

// ------------------------------------------------------------------------------------------
// LOCK

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_lock_response() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let r = s
        .lock("/f", Some("0"), None, &lockinfo("exclusive", None), &[])
        .await;
    assert_eq!(r.status, 200);
    let token = r.lock_token();
    assert!(is_uuid_urn(&token), "{token}");
    let locks = r.lock_body();
    assert_eq!(locks.len(), 1);
    let l = &locks[0];
    assert_eq!(l.token, token, "header and body carry the same token");
    assert_eq!(l.scope, "exclusive");
    assert_eq!(l.depth, "0");
    assert_eq!(l.root, "/f");
    assert!(l.owner.is_none());
    // No Timeout asked: the configured default (3600 s).
    assert!(l.seconds().is_some_and(|n| n > 3590 && n <= 3600), "{l:?}");
    // The same lock in lockdiscovery.
    let ld = only_lock(&s, "/f").await;
    assert_eq!(
        (ld.token, ld.root, ld.scope),
        (token, "/f".into(), "exclusive".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_locks_coexist_exclusive_conflicts() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let t1 = s.lock_ok("/f", "shared", Some("0")).await;
    let t2 = s.lock_ok("/f", "shared", Some("0")).await;
    assert_ne!(t1, t2);
    let ld = s.lockdiscovery("/f").await;
    let tokens: BTreeSet<_> = ld.iter().map(|l| l.token.clone()).collect();
    assert_eq!(tokens, BTreeSet::from([t1.clone(), t2.clone()]));
    assert!(ld.iter().all(|l| l.scope == "shared"));

    let r = s
        .lock("/f", Some("0"), None, &lockinfo("exclusive", None), &[])
        .await;
    assert_eq!(r.status, 423);
    assert_eq!(r.condition_hrefs("no-conflicting-lock"), ["/f"]);
    assert_eq!(s.lockdiscovery("/f").await.len(), 2, "nothing added");

    // Any holder of a shared lock may write.
    let r = s
        .req("PUT", "/f")
        .header("If", &if_tok(&t2))
        .body("y")
        .send()
        .await;
    assert_eq!(r.status, 204);

    // An exclusive lock refuses a shared one as well.
    s.put("/g", "x").await;
    s.lock_ok("/g", "exclusive", Some("0")).await;
    let r = s
        .lock("/g", Some("0"), None, &lockinfo("shared", None), &[])
        .await;
    assert_eq!(r.status, 423);
    assert_eq!(r.condition_hrefs("no-conflicting-lock"), ["/g"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_zero_and_infinity() {
    let s = TestServer::start().await;
    for c in ["/z/", "/i/"] {
        s.mkcol(c).await;
        s.put(&format!("{c}x"), "x").await;
    }
    // Depth 0 covers the collection only.
    let tz = s.lock_ok("/z/", "exclusive", Some("0")).await;
    let l = only_lock(&s, "/z/").await;
    assert_eq!((l.depth.as_str(), l.root.as_str()), ("0", "/z/"));
    assert_eq!(l.token, tz);
    assert!(s.lockdiscovery("/z/x").await.is_empty());

    // No Depth means infinity; members report the collection as lockroot.
    let ti = s.lock_ok("/i/", "exclusive", None).await;
    let l = only_lock(&s, "/i/").await;
    assert_eq!(l.depth, "infinity");
    let m = only_lock(&s, "/i/x").await;
    assert_eq!(
        (m.token, m.root, m.depth),
        (ti.clone(), "/i/".into(), "infinity".into())
    );

    // Depth 1 is refused.
    s.mkcol("/one/").await;
    let r = s
        .lock("/one/", Some("1"), None, &lockinfo("exclusive", None), &[])
        .await;
    assert_eq!(r.status, 400);
    assert!(s.lockdiscovery("/one/").await.is_empty());

    // New members of a depth-infinity lock are covered; members moved out are not (LK-13).
    let r = s
        .req("PUT", "/i/n")
        .header("If", &if_tok(&ti))
        .body("n")
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(only_lock(&s, "/i/n").await.root, "/i/");
    s.mkcol("/u/").await;
    let r = s
        .copy_move("MOVE", "/i/n", "/u/n", &[("If", &if_tok(&ti))])
        .await;
    assert_eq!(r.status, 201);
    assert!(s.lockdiscovery("/u/n").await.is_empty());
    assert_eq!(s.put("/u/n", "free").await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_kept_verbatim() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let owner_inner = r#"<D:href>mailto:a@b</D:href><Z:x xmlns:Z="urn:z" a="1" Z:b="two"><Z:y xml:lang="de">t &amp; u</Z:y>text</Z:x>"#;
    let body = lockinfo("exclusive", Some(owner_inner));
    let expected = {
        let doc = parse_document(body.as_bytes(), &Limits::default()).unwrap();
        let owner = doc
            .elements()
            .find(|e| e.name.is_dav("owner"))
            .expect("owner")
            .clone();
        owner
    };
    let r = s.lock("/f", Some("0"), None, &body, &[]).await;
    assert_eq!(r.status, 200);
    let got = r.lock_body()[0]
        .owner
        .clone()
        .expect("owner in LOCK response");
    same_infoset(&expected, &got).unwrap_or_else(|e| panic!("LOCK response owner: {e}"));
    let ld = only_lock(&s, "/f").await;
    same_infoset(
        &expected,
        ld.owner.as_ref().expect("owner in lockdiscovery"),
    )
    .unwrap_or_else(|e| panic!("lockdiscovery owner: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_bounded_by_config() {
    let s = TestServer::with_config(DavConfig {
        lock_timeout_default: 50,
        lock_timeout_max: Some(100),
        ..Default::default()
    })
    .await;
    let cases: &[(Option<&str>, u64)] = &[
        (None, 50),
        (Some("Second-10"), 10),
        (Some("Infinite"), 100),
        (Some("Second-4100000000"), 100),
        (Some("Infinite, Second-30"), 100),
        (Some("Second-30, Infinite"), 30),
    ];
    for (i, (asked, want)) in cases.iter().enumerate() {
        let path = format!("/f{i}");
        s.put(&path, "x").await;
        let r = s
            .lock(&path, Some("0"), *asked, &lockinfo("exclusive", None), &[])
            .await;
        assert_eq!(r.status, 200, "{asked:?}");
        let l = &r.lock_body()[0];
        let n = l.seconds().unwrap_or_else(|| panic!("{asked:?}: finite"));
        assert!(
            n <= *want && n + 5 >= *want,
            "{asked:?}: granted {n}, want {want}"
        );
    }

    // Without a maximum, Infinite is granted as asked.
    let s = TestServer::with_config(DavConfig {
        lock_timeout_max: None,
        ..Default::default()
    })
    .await;
    s.put("/f", "x").await;
    let r = s
        .lock(
            "/f",
            Some("0"),
            Some("Infinite"),
            &lockinfo("exclusive", None),
            &[],
        )
        .await;
    assert_eq!(r.lock_body()[0].timeout, "Infinite");
    assert_eq!(only_lock(&s, "/f").await.timeout, "Infinite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_keeps_token_and_restarts_timer() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let r = s
        .lock(
            "/f",
            Some("0"),
            Some("Second-100"),
            &lockinfo("exclusive", None),
            &[],
        )
        .await;
    let t = r.lock_token();
    assert!(r.lock_body()[0].seconds().is_some_and(|n| n <= 100));

    let r = s
        .lock("/f", None, Some("Second-500"), "", &[("If", &if_tok(&t))])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let l = &r.lock_body()[0];
    assert_eq!(l.token, t);
    assert!(l.seconds().is_some_and(|n| n > 490 && n <= 500), "{l:?}");
    assert!(only_lock(&s, "/f").await.seconds().is_some_and(|n| n > 490));

    // Refresh through a member of a depth-infinity lock; Depth is ignored.
    s.mkcol("/c/").await;
    s.put("/c/x", "x").await;
    let tc = s.lock_ok("/c/", "exclusive", Some("infinity")).await;
    let r = s
        .lock(
            "/c/x",
            Some("0"),
            Some("Second-600"),
            "",
            &[("If", &if_tok(&tc))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let l = &r.lock_body()[0];
    assert_eq!(
        (l.token.as_str(), l.root.as_str(), l.depth.as_str()),
        (tc.as_str(), "/c/", "infinity")
    );
    assert!(l.seconds().is_some_and(|n| n > 590 && n <= 600));
    assert_eq!(s.lockdiscovery("/c/").await.len(), 1, "no second lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_with_wrong_token_is_412() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.put("/g", "x").await;
    let tf = s.lock_ok("/f", "exclusive", Some("0")).await;
    let before = only_lock(&s, "/f").await;
    for token in [tf.as_str(), "urn:uuid:00000000-0000-0000-0000-000000000000"] {
        let r = s
            .lock("/g", None, Some("Second-99"), "", &[("If", &if_tok(token))])
            .await;
        assert_eq!(r.status, 412, "{token}: {}", r.text());
    }
    assert!(s.lockdiscovery("/g").await.is_empty(), "no lock created");
    let after = only_lock(&s, "/f").await;
    assert_eq!(after.token, before.token);
    assert!(
        after.seconds() > Some(99),
        "the failed refresh changed nothing"
    );

    // A bodyless LOCK without If creates nothing.
    let r = s.lock("/g", Some("0"), None, "", &[]).await;
    assert!(r.status == 400 || r.status == 412, "{}", r.status);
    assert!(s.lockdiscovery("/g").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_with_wrong_token_names_the_condition() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.put("/g", "x").await;
    let tf = s.lock_ok("/f", "exclusive", Some("0")).await;
    for token in [tf.as_str(), "urn:uuid:00000000-0000-0000-0000-000000000000"] {
        let r = s
            .lock("/g", None, Some("Second-99"), "", &[("If", &if_tok(token))])
            .await;
        assert_eq!(r.status, 412, "{token}");
        assert_eq!(
            r.dav_error(),
            [QName::dav("lock-token-matches-request-uri")],
            "{token}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lockinfo_is_400() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    for body in [
        r#"<D:lockinfo xmlns:D="DAV:"><D:locktype><D:write/></D:locktype></D:lockinfo>"#,
        r#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope></D:lockinfo>"#,
        r#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:weird/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#,
        r#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>"#,
    ] {
        let r = s.lock("/f", Some("0"), None, body, &[]).await;
        assert!(r.status == 400 || r.status == 422, "{body}: {}", r.status);
    }
    assert!(s.lockdiscovery("/f").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_locks_never_block() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/f", "x").await;
    let r = s
        .lock(
            "/c/",
            None,
            Some("Second-1"),
            &lockinfo("exclusive", None),
            &[],
        )
        .await;
    let t = r.lock_token();
    assert!(r.lock_body()[0].seconds().is_some_and(|n| n <= 1));
    assert_eq!(s.put("/c/f", "y").await.status, 423);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    assert!(s.lockdiscovery("/c/").await.is_empty());
    assert!(s.lockdiscovery("/c/f").await.is_empty());
    assert_eq!(s.put("/c/f", "y").await.status, 204);
    assert_eq!(s.put("/c/g", "y").await.status, 201);
    // An expired token matches nothing and unlocks nothing.
    let r = s
        .req("PUT", "/c/f")
        .header("If", &if_tok(&t))
        .body("z")
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.unlock("/c/", &t).await.status, 409);
    // And it is no obstacle to a new exclusive lock.
    s.lock_ok("/c/", "exclusive", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_tokens_all_distinct() {
    let s = Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for w in 0..10 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/w{w}");
            s.put(&path, "x").await;
            let mut tokens = Vec::new();
            for _ in 0..100 {
                let t = s.lock_ok(&path, "exclusive", Some("0")).await;
                assert_eq!(s.unlock(&path, &t).await.status, 204);
                tokens.push(t);
            }
            tokens
        }));
    }
    let mut all = BTreeSet::new();
    let mut count = 0;
    for t in tasks {
        for token in t.await.unwrap() {
            assert!(is_uuid_urn(&token), "{token}");
            count += 1;
            all.insert(token);
        }
    }
    assert_eq!(count, 1000);
    assert_eq!(all.len(), 1000, "every token distinct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_on_unmapped_url_creates_empty_resource() {
    let s = TestServer::start().await;
    let r = s
        .lock("/new", Some("0"), None, &lockinfo("exclusive", None), &[])
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let t = r.lock_token();
    assert_eq!(r.lock_body()[0].token, t);
    assert_eq!(r.lock_body()[0].root, "/new");

    let g = s.get("/new").await;
    assert_eq!(g.status, 200);
    assert!(g.body.is_empty());
    let ms = s
        .propfind_ms(
            "/",
            Some("1"),
            &prop_body(&[
                QName::dav("resourcetype"),
                QName::dav("getcontentlength"),
                QName::dav("lockdiscovery"),
            ]),
        )
        .await;
    let r = ms.get("/new");
    assert!(!r.is_collection());
    assert_eq!(r.dav_text("getcontentlength").as_deref(), Some("0"));
    let ld = activelocks(r.dav("lockdiscovery").expect("lockdiscovery"));
    assert_eq!(ld.len(), 1);
    assert_eq!(ld[0].token, t);

    // PUT turns it into an ordinary resource; the token is needed for that.
    assert_eq!(s.put("/new", "intruder").await.status, 423);
    let r = s
        .req("PUT", "/new")
        .header("If", &if_tok(&t))
        .body("content")
        .send()
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
    assert_eq!(only_lock(&s, "/new").await.token, t, "still locked");
    assert_eq!(s.unlock("/new", &t).await.status, 204);
    assert_eq!(&s.get("/new").await.body[..], b"content");
    assert!(s.lockdiscovery("/new").await.is_empty());
    assert_eq!(s.put("/new", "free").await.status, 204);

    // Unlocked right away, the empty resource stays too.
    let t = s.lock_ok("/empty", "exclusive", Some("0")).await;
    assert_eq!(s.unlock("/empty", &t).await.status, 204);
    let g = s.get("/empty").await;
    assert_eq!((g.status, g.body.len()), (200, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_with_missing_parent_is_409() {
    let s = TestServer::start().await;
    let r = s
        .lock("/no/x", Some("0"), None, &lockinfo("exclusive", None), &[])
        .await;
    assert_eq!(r.status, 409);
    assert!(dir_names(s.root()).is_empty(), "nothing created");
    s.put("/file", "x").await;
    let r = s
        .lock(
            "/file/x",
            Some("0"),
            None,
            &lockinfo("exclusive", None),
            &[],
        )
        .await;
    assert_eq!(r.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_lock_names_the_lock_root() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.mkcol("/c/d/").await;
    s.put("/c/d/x", "x").await;
    s.lock_ok("/c/", "exclusive", None).await;
    for target in ["/c/d/x", "/c/d/", "/c/"] {
        for scope in ["exclusive", "shared"] {
            let r = s
                .lock(target, Some("0"), None, &lockinfo(scope, None), &[])
                .await;
            assert_eq!(r.status, 423, "{scope} LOCK {target}");
            assert_eq!(
                r.condition_hrefs("no-conflicting-lock"),
                ["/c/"],
                "{target}"
            );
        }
    }
    // A new member under the lock, from a client without the token: 423 as well.
    let r = s
        .lock("/c/new", Some("0"), None, &lockinfo("exclusive", None), &[])
        .await;
    assert_eq!(r.status, 423);
    assert_eq!(s.get("/c/new").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_infinity_lock_blocked_by_member_is_207() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.mkcol("/c/d/").await;
    s.put("/c/d/x", "x").await;
    s.put("/c/y", "y").await;
    let tx = s.lock_ok("/c/d/x", "exclusive", Some("0")).await;
    let r = s
        .lock(
            "/c/",
            Some("infinity"),
            None,
            &lockinfo("exclusive", None),
            &[],
        )
        .await;
    let ms = r.ms();
    let out = ms.outcomes();
    assert_eq!(out.get("/c/d/x"), Some(&Outcome::Status(423)));
    assert_eq!(out.get("/c/"), Some(&Outcome::Status(424)));
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        ms.get("/c/d/x").error,
        [QName::dav("no-conflicting-lock")],
        "the blocking member carries the condition"
    );
    assert!(r.header("lock-token").is_none(), "no lock granted");
    assert!(s.lockdiscovery("/c/").await.is_empty(), "nothing locked");
    assert!(s.lockdiscovery("/c/y").await.is_empty());
    assert_eq!(only_lock(&s, "/c/d/x").await.token, tx);
    assert_eq!(s.put("/c/y", "free").await.status, 204);
    // A depth-0 lock of the collection does not reach the member: granted.
    s.lock_ok("/c/", "exclusive", Some("0")).await;
}

// ------------------------------------------------------------------------------------------
// UNLOCK

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_rules() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.put("/g", "x").await;
    let tf = s.lock_ok("/f", "exclusive", Some("0")).await;
    let tg = s.lock_ok("/g", "exclusive", Some("0")).await;

    // Missing Lock-Token: 400, lock stays.
    assert_eq!(s.req("UNLOCK", "/f").send().await.status, 400);
    // Unparsable: 400.
    let r = s
        .req("UNLOCK", "/f")
        .header("Lock-Token", "not a token")
        .send()
        .await;
    assert_eq!(r.status, 400);
    // Another resource's token, an unknown one: 409 lock-token-matches-request-uri.
    for t in [tg.as_str(), "urn:uuid:00000000-0000-0000-0000-000000000000"] {
        let r = s.unlock("/f", t).await;
        assert_eq!(r.status, 409, "{t}");
        assert_eq!(
            r.dav_error(),
            [QName::dav("lock-token-matches-request-uri")]
        );
    }
    assert_eq!(only_lock(&s, "/f").await.token, tf);
    assert_eq!(only_lock(&s, "/g").await.token, tg);

    assert_eq!(s.unlock("/f", &tf).await.status, 204);
    assert!(s.lockdiscovery("/f").await.is_empty());
    // The old token matches nothing any more (UL-5), and UNLOCK of an unlocked resource is 409.
    let r = s
        .req("PUT", "/f")
        .header("If", &if_tok(&tf))
        .body("y")
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.unlock("/f", &tf).await.status, 409);

    // Without angle brackets: accepted.
    let r = s.req("UNLOCK", "/g").header("Lock-Token", &tg).send().await;
    assert_eq!(r.status, 204);
    assert!(s.lockdiscovery("/g").await.is_empty());

    // From a member of a depth-infinity lock: the whole lock goes (UL-1).
    s.mkcol("/c/").await;
    s.put("/c/x", "x").await;
    let tc = s.lock_ok("/c/", "exclusive", None).await;
    assert_eq!(s.unlock("/c/x", &tc).await.status, 204);
    assert!(s.lockdiscovery("/c/").await.is_empty());
    assert_eq!(s.put("/c/x", "free").await.status, 204);
}

// ------------------------------------------------------------------------------------------
// Properties and OPTIONS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supportedlock_and_lockdiscovery_properties() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.mkcol("/c/").await;
    for path in ["/f", "/c/"] {
        let r = s
            .props_of(
                path,
                &[QName::dav("supportedlock"), QName::dav("lockdiscovery")],
            )
            .await;
        let sl = r.dav("supportedlock").expect("supportedlock");
        let entries: Vec<(String, String)> = sl
            .elements()
            .map(|e| {
                assert!(e.name.is_dav("lockentry"), "{:?}", e.name);
                let scope = e.elements().find(|c| c.name.is_dav("lockscope")).unwrap();
                let ty = e.elements().find(|c| c.name.is_dav("locktype")).unwrap();
                (
                    scope.elements().next().unwrap().name.local.clone(),
                    ty.elements().next().unwrap().name.local.clone(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("exclusive".to_owned(), "write".to_owned()),
                ("shared".to_owned(), "write".to_owned())
            ],
            "{path}"
        );
        assert!(activelocks(r.dav("lockdiscovery").unwrap()).is_empty());
    }
    // allprop includes both.
    let ms = s.propfind_ms("/f", Some("0"), "").await;
    let r = ms.only();
    assert!(r.dav("supportedlock").is_some() && r.dav("lockdiscovery").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_advertises_classes_1_2_3() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    for path in ["/", "/f", "/unmapped"] {
        let r = s.req("OPTIONS", path).send().await;
        let dav: BTreeSet<String> = r
            .header("dav")
            .expect("DAV header")
            .split(',')
            .map(|c| c.trim().to_owned())
            .collect();
        for class in ["1", "2", "3"] {
            assert!(dav.contains(class), "{path}: DAV {dav:?}");
        }
        let allow = r.header("allow").unwrap_or_default().to_owned();
        assert!(allow.contains("LOCK"), "{path}: Allow {allow}");
    }
}

// ------------------------------------------------------------------------------------------
// The If header

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_header_tags_etags_and_lists() {
    let s = TestServer::start().await;
    s.put("/o%20p", "o").await;
    s.put("/f", "f").await;
    let abs = s.url("/o%20p");
    // `{EO}` and `{EF}` stand for the current ETags of /o%20p and /f (every successful PUT
    // gives /f a new one).
    let cases: &[(&str, u16)] = &[
        // Tagged list, absolute URI and path tags.
        ("<{ABS}> ([{EO}])", 204),
        ("<{ABS}> ([\"stale\"])", 412),
        ("</o%20p> ([{EO}])", 204),
        ("</o%20p> ([\"stale\"])", 412),
        // Several resource tags: true when any list is.
        ("</o%20p> ([\"stale\"]) </f> ([{EF}])", 204),
        ("</o%20p> ([\"stale\"]) </f> ([\"stale\"])", 412),
        // One tag, several lists.
        ("</f> ([\"stale\"]) ([{EF}])", 204),
        // Untagged lists: any list, all conditions.
        ("(<urn:bad>) ([{EF}])", 204),
        ("(<urn:bad>)", 412),
        ("(Not [\"stale\"] [{EF}])", 204),
        ("(Not [{EF}])", 412),
        // DAV:no-lock never matches.
        ("(Not <DAV:no-lock>)", 204),
        ("(<DAV:no-lock>)", 412),
        // A tag naming an unmapped resource: its conditions are false, their Not true.
        ("</nowhere> ([\"x\"])", 412),
        ("</nowhere> (Not [\"x\"])", 204),
    ];
    for (template, want) in cases {
        let eo = s.get("/o%20p").await.header("etag").unwrap().to_owned();
        let ef = s.get("/f").await.header("etag").unwrap().to_owned();
        let value = template
            .replace("{ABS}", &abs)
            .replace("{EO}", &eo)
            .replace("{EF}", &ef);
        let r = s
            .req("PUT", "/f")
            .header("If", &value)
            .body("f")
            .send()
            .await;
        assert_eq!(r.status, *want, "If: {value}");
        if *want == 412 {
            assert_eq!(
                s.get("/f").await.header("etag"),
                Some(ef.as_str()),
                "unchanged"
            );
        }
    }
    assert_eq!(&s.get("/f").await.body[..], b"f");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_header_on_unmapped_and_other_methods() {
    let s = TestServer::start().await;
    // IF-7: an unmapped URL has no state.
    let r = s
        .req("PUT", "/new")
        .header("If", "(Not [\"x\"])")
        .body("n")
        .send()
        .await;
    assert_eq!(r.status, 201);
    let r = s
        .req("PUT", "/new2")
        .header("If", "([\"x\"])")
        .body("n")
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.get("/new2").await.status, 404);

    // IF-6: ETags on PROPPATCH, DELETE, MOVE, LOCK, GET.
    s.put("/f", "f").await;
    let etag = s.get("/f").await.header("etag").unwrap().to_owned();
    let pp = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>"#;
    let r = s
        .req("PROPPATCH", "/f")
        .header("If", "([\"stale\"])")
        .body(pp)
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.z_prop("/f", "p").await, None);
    let r = s
        .req("LOCK", "/f")
        .header("If", "([\"stale\"])")
        .body(lockinfo("exclusive", None))
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert!(s.lockdiscovery("/f").await.is_empty());
    let r = s
        .req("GET", "/f")
        .header("If", "([\"stale\"])")
        .send()
        .await;
    assert_eq!(r.status, 412);
    let r = s
        .copy_move("MOVE", "/f", "/g", &[("If", "([\"stale\"])")])
        .await;
    assert_eq!(r.status, 412);
    let r = s
        .req("DELETE", "/f")
        .header("If", &format!("([{etag}])"))
        .send()
        .await;
    assert_eq!(r.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_header_with_lock_tokens() {
    let s = TestServer::start().await;
    s.put("/f", "f").await;
    let t = s.lock_ok("/f", "exclusive", Some("0")).await;
    let etag = s.get("/f").await.header("etag").unwrap().to_owned();
    let cases: Vec<(String, u16)> = vec![
        // IF-9: tokens and ETags in one list.
        (format!("(<{t}> [{etag}])"), 204),
        (format!("(<{t}> [\"stale\"])"), 412),
        // IF-8: a token counts as submitted even in a list that is not needed.
        (format!("(Not <DAV:no-lock>) (<{t}>)"), 204),
        // IF-10: an unknown token fails the If header.
        (
            "(<urn:uuid:00000000-0000-0000-0000-000000000000>)".to_owned(),
            412,
        ),
        // A tagged list with the token.
        (format!("</f> (<{t}>)"), 204),
        (format!("<{}> (<{t}>)", s.url("/f")), 204),
    ];
    for (value, want) in &cases {
        let r = s
            .req("PUT", "/f")
            .header("If", value)
            .body("f")
            .send()
            .await;
        assert_eq!(r.status, *want, "If: {value}");
    }
    // Without any token the If header may hold and still the lock is in the way.
    let r = s
        .req("PUT", "/f")
        .header("If", "(Not <DAV:no-lock>)")
        .body("f")
        .send()
        .await;
    assert_423(&r, &["/f"], "If without the token");

    // IF-4: a depth-infinity token matches members.
    s.mkcol("/c/").await;
    s.mkcol("/c/d/").await;
    let tc = s.lock_ok("/c/", "exclusive", None).await;
    let r = s
        .req("PUT", "/c/d/x")
        .header("If", &if_tok(&tc))
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 201);

    // LE-7: a token for lock A gives nothing on B.
    s.put("/f2", "x").await;
    let t2 = s.lock_ok("/f2", "exclusive", Some("0")).await;
    let r = s
        .req("PUT", "/f2")
        .header("If", &format!("</f> (<{t}>)"))
        .body("y")
        .send()
        .await;
    assert_423(&r, &["/f2"], "token of another lock");
    let r = s
        .req("PUT", "/f2")
        .header("If", &format!("</f> (<{t}>) </f2> (<{t2}>)"))
        .body("y")
        .send()
        .await;
    assert_eq!(r.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_if_is_400() {
    let s = TestServer::start().await;
    s.put("/f", "f").await;
    for value in [
        "(<urn:x>",
        "(<urn:a>) </f> (<urn:b>)",
        "(foo)",
        "()",
        "<urn:x>",
        "([\"unterminated)",
        "(<urn:x>) garbage",
        "(Not)",
    ] {
        let r = s
            .req("PUT", "/f")
            .header("If", value)
            .body("g")
            .send()
            .await;
        assert_eq!(r.status, 400, "If: {value}");
    }
    assert_eq!(&s.get("/f").await.body[..], b"f");
}

// ------------------------------------------------------------------------------------------
// Enforcement

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_needs_the_token() {
    let s = TestServer::start().await;
    s.put("/f", "f").await;
    s.put("/src", "s").await;
    s.mkcol("/c/").await;
    let t = s.lock_ok("/f", "exclusive", Some("0")).await;
    let tc = s.lock_ok("/c/", "exclusive", Some("0")).await;
    let pp = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>"#;

    // Without the token: 423 naming the lock root, nothing changed.
    assert_423(&s.put("/f", "new").await, &["/f"], "PUT");
    assert_423(&s.delete("/f").await, &["/f"], "DELETE");
    assert_423(&s.proppatch("/f", pp).await, &["/f"], "PROPPATCH");
    assert_423(
        &s.mkcol("/c/sub/").await,
        &["/c/"],
        "MKCOL in a locked collection",
    );
    assert_423(
        &s.copy_move("COPY", "/src", "/f", &[]).await,
        &["/f"],
        "COPY onto",
    );
    assert_423(
        &s.copy_move("MOVE", "/src", "/f", &[]).await,
        &["/f"],
        "MOVE onto",
    );
    assert_423(
        &s.copy_move("MOVE", "/f", "/moved", &[]).await,
        &["/f"],
        "MOVE from",
    );
    let r = s
        .lock("/f", Some("0"), None, &lockinfo("exclusive", None), &[])
        .await;
    assert_eq!(r.status, 423, "LOCK");
    assert_eq!(&s.get("/f").await.body[..], b"f");
    assert_eq!(&s.get("/src").await.body[..], b"s");
    assert_eq!(s.z_prop("/f", "p").await, None);
    assert_eq!(s.get("/moved").await.status, 404);
    assert_eq!(s.get("/c/sub/").await.status, 404);

    // With the token: each succeeds.
    let tf = if_tok(&t);
    let r = s
        .req("PUT", "/f")
        .header("If", &tf)
        .body("new")
        .send()
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .req("PROPPATCH", "/f")
        .header("If", &tf)
        .body(pp)
        .send()
        .await;
    assert_eq!(r.ms().only().prop_status(&z("p")), Some(200));
    let r = s
        .req("MKCOL", "/c/sub/")
        .header("If", &format!("</c/> (<{tc}>)"))
        .send()
        .await;
    assert_eq!(r.status, 201);
    let r = s.copy_move("MOVE", "/f", "/moved", &[("If", &tf)]).await;
    assert_eq!(r.status, 201, "MOVE from");
    assert_eq!(&s.get("/moved").await.body[..], b"new");

    // COPY and MOVE onto a locked destination, with its token as a tagged list.
    s.put("/d1", "d1").await;
    s.put("/d2", "d2").await;
    let t1 = s.lock_ok("/d1", "exclusive", Some("0")).await;
    let t2 = s.lock_ok("/d2", "exclusive", Some("0")).await;
    let r = s
        .copy_move("COPY", "/src", "/d1", &[("If", &format!("</d1> (<{t1}>)"))])
        .await;
    assert_eq!(r.status, 204, "COPY onto with the token");
    assert_eq!(&s.get("/d1").await.body[..], b"s");
    let r = s
        .copy_move("MOVE", "/src", "/d2", &[("If", &format!("</d2> (<{t2}>)"))])
        .await;
    assert_eq!(r.status, 204, "MOVE onto with the token");
    assert_eq!(&s.get("/d2").await.body[..], b"s");
    assert_eq!(s.get("/src").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_token_unlocks_move_source_and_destination() {
    // LE-6: /a locked (t1), /L/ locked depth 0 (t2): MOVE /a → /L/a needs both.
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    s.mkcol("/L/").await;
    let t1 = s.lock_ok("/a", "exclusive", Some("0")).await;
    let t2 = s.lock_ok("/L/", "exclusive", Some("0")).await;
    let r = s
        .copy_move("MOVE", "/a", "/L/a", &[("If", &format!("</a> (<{t1}>)"))])
        .await;
    assert_423(&r, &["/L/"], "only the source token");
    let r = s
        .copy_move("MOVE", "/a", "/L/a", &[("If", &format!("</L/> (<{t2}>)"))])
        .await;
    assert_423(&r, &["/a"], "only the destination token");
    let r = s.copy_move("MOVE", "/a", "/L/a", &[]).await;
    assert_423(&r, &["/a", "/L/"], "no token");
    assert_eq!(&s.get("/a").await.body[..], b"a");

    let r = s
        .copy_move(
            "MOVE",
            "/a",
            "/L/a",
            &[("If", &format!("</a> (<{t1}>) </L/> (<{t2}>)"))],
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(&s.get("/L/a").await.body[..], b"a");
    // The moved lock root lost its lock; /L/ keeps its own.
    assert!(s.lockdiscovery("/L/a").await.is_empty());
    assert_eq!(s.unlock("/L/a", &t1).await.status, 409);
    assert_eq!(only_lock(&s, "/L/").await.token, t2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_zero_collection_lock_guards_membership() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/old", "old").await;
    s.put("/x", "x").await;
    let t = s.lock_ok("/c/", "exclusive", Some("0")).await;
    let pp = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>"#;

    assert_423(&s.put("/c/new", "n").await, &["/c/"], "PUT new member");
    assert_423(&s.delete("/c/old").await, &["/c/"], "DELETE member");
    assert_423(&s.mkcol("/c/sub/").await, &["/c/"], "MKCOL member");
    assert_423(
        &s.copy_move("MOVE", "/c/old", "/c/renamed", &[]).await,
        &["/c/"],
        "rename member",
    );
    assert_423(
        &s.copy_move("MOVE", "/c/old", "/out", &[]).await,
        &["/c/"],
        "move member out",
    );
    assert_423(
        &s.copy_move("MOVE", "/x", "/c/x", &[]).await,
        &["/c/"],
        "move member in",
    );
    assert_423(
        &s.copy_move("COPY", "/x", "/c/y", &[]).await,
        &["/c/"],
        "copy member in",
    );
    let r = s
        .lock(
            "/c/new2",
            Some("0"),
            None,
            &lockinfo("exclusive", None),
            &[],
        )
        .await;
    assert_423(&r, &["/c/"], "LOCK creating a member");
    assert_eq!(dir_names(&s.root().join("c")), ["old"]);

    // Content and properties of existing members stay writable (LE-5).
    assert_eq!(s.put("/c/old", "changed").await.status, 204);
    let r = s.proppatch("/c/old", pp).await;
    assert_eq!(r.ms().only().prop_status(&z("p")), Some(200));

    // With the collection's token (a tagged list: the token covers /c/, not the member).
    let tag = format!("</c/> (<{t}>)");
    let r = s
        .req("PUT", "/c/new")
        .header("If", &tag)
        .body("n")
        .send()
        .await;
    assert_eq!(r.status, 201);
    let r = s.req("DELETE", "/c/new").header("If", &tag).send().await;
    assert_eq!(r.status, 204);
    let r = s.copy_move("MOVE", "/x", "/c/x", &[("If", &tag)]).await;
    assert_eq!(r.status, 201);
    // An untagged list with that token is false for a member: 412.
    let r = s
        .req("PUT", "/c/other")
        .header("If", &if_tok(&t))
        .body("o")
        .send()
        .await;
    assert_eq!(r.status, 412);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_infinity_lock_protects_members() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.put("/c/x", "x").await;
    let t = s.lock_ok("/c/", "exclusive", None).await;
    let pp = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>"#;
    assert_423(&s.put("/c/x", "y").await, &["/c/"], "PUT member");
    assert_423(&s.proppatch("/c/x", pp).await, &["/c/"], "PROPPATCH member");
    let r = s
        .req("PUT", "/c/x")
        .header("If", &if_tok(&t))
        .body("y")
        .send()
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .req("PROPPATCH", "/c/x")
        .header("If", &if_tok(&t))
        .body(pp)
        .send()
        .await;
    assert_eq!(r.ms().only().prop_status(&z("p")), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_operations_need_member_tokens() {
    let s = TestServer::start().await;
    for tree in ["/t/", "/m/"] {
        s.mkcol(tree).await;
        s.mkcol(&format!("{tree}a/")).await;
        s.put(&format!("{tree}a/locked"), "l").await;
        s.put(&format!("{tree}free"), "f").await;
    }
    let tt = s.lock_ok("/t/a/locked", "exclusive", Some("0")).await;
    let tm = s.lock_ok("/m/a/locked", "exclusive", Some("0")).await;

    // DELETE of the tree without the member's token: refused, nothing deleted.
    let r = s.delete("/t/").await;
    if r.status == 207 {
        let ms = r.ms();
        assert_eq!(ms.get("/t/a/locked").status, Some(423));
    } else {
        assert_423(&r, &["/t/a/locked"], "DELETE tree");
    }
    assert_eq!(&s.get("/t/a/locked").await.body[..], b"l");
    let r = s
        .req("DELETE", "/t/")
        .header("If", &format!("</t/a/locked> (<{tt}>)"))
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.get("/t/").await.status, 404);
    assert_eq!(
        s.unlock("/m/a/locked", &tt).await.status,
        409,
        "the lock went with it"
    );

    // MOVE of the tree: the same.
    let r = s.copy_move("MOVE", "/m/", "/moved/", &[]).await;
    if r.status == 207 {
        assert_eq!(r.ms().get("/m/a/locked").status, Some(423));
    } else {
        assert_423(&r, &["/m/a/locked"], "MOVE tree");
    }
    assert_eq!(s.get("/moved/").await.status, 404);
    let r = s
        .copy_move(
            "MOVE",
            "/m/",
            "/moved/",
            &[("If", &format!("</m/a/locked> (<{tm}>)"))],
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(s.lockdiscovery("/moved/a/locked").await.is_empty());
    assert_eq!(s.put("/moved/a/locked", "free").await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_copy_from_locked_source_need_no_token() {
    let s = TestServer::start().await;
    s.put("/f", "content").await;
    s.lock_ok("/f", "exclusive", Some("0")).await;
    assert_eq!(s.get("/f").await.status, 200);
    assert_eq!(s.head("/f").await.status, 200);
    assert_eq!(s.propfind("/f", Some("0"), "").await.status, 207);
    assert_eq!(s.req("OPTIONS", "/f").send().await.status, 200);
    let r = s.copy_move("COPY", "/f", "/g", &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(&s.get("/g").await.body[..], b"content");
    assert!(
        s.lockdiscovery("/g").await.is_empty(),
        "locks are not copied"
    );
    assert_eq!(s.put("/g", "free").await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_or_deleted_lock_root_loses_its_lock() {
    let s = TestServer::start().await;
    s.put("/d", "d").await;
    let td = s.lock_ok("/d", "exclusive", Some("0")).await;
    let r = s
        .req("DELETE", "/d")
        .header("If", &if_tok(&td))
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        s.put("/d", "again").await.status,
        201,
        "no lock left behind"
    );
    assert!(s.lockdiscovery("/d").await.is_empty());
    assert_eq!(s.unlock("/d", &td).await.status, 409);

    s.mkcol("/c/").await;
    s.put("/c/x", "x").await;
    let tc = s.lock_ok("/c/", "exclusive", None).await;
    let r = s
        .copy_move("MOVE", "/c/", "/e/", &[("If", &if_tok(&tc))])
        .await;
    assert_eq!(r.status, 201);
    assert!(s.lockdiscovery("/e/").await.is_empty());
    assert!(s.lockdiscovery("/e/x").await.is_empty());
    assert_eq!(s.put("/e/x", "free").await.status, 204);
    assert_eq!(s.mkcol("/c/").await.status, 201);
    assert_eq!(s.put("/c/x", "free").await.status, 201);
    assert!(s.lockdiscovery("/c/").await.is_empty());
}

// ------------------------------------------------------------------------------------------
// Durability and concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_survive_restart_and_still_expire() {
    let s = TestServer::start().await;
    s.put("/long", "l").await;
    s.put("/short", "s").await;
    s.mkcol("/c/").await;
    let owner = r#"<D:href>mailto:a@b</D:href>"#;
    let r = s
        .lock(
            "/long",
            Some("0"),
            Some("Second-3600"),
            &lockinfo("exclusive", Some(owner)),
            &[],
        )
        .await;
    let tl = r.lock_token();
    let r = s
        .lock(
            "/short",
            Some("0"),
            Some("Second-1"),
            &lockinfo("exclusive", None),
            &[],
        )
        .await;
    let ts = r.lock_token();
    let tc = s.lock_ok("/c/", "shared", None).await;

    let dirs = s.stop().await;
    let s = TestServer::launch(dirs, DavConfig::default()).await;

    let l = only_lock(&s, "/long").await;
    assert_eq!(
        (l.token.as_str(), l.root.as_str(), l.depth.as_str()),
        (tl.as_str(), "/long", "0")
    );
    assert!(l.seconds().is_some_and(|n| n > 3500 && n <= 3600));
    assert!(l.owner.is_some());
    let c = only_lock(&s, "/c/").await;
    assert_eq!(
        (c.token.as_str(), c.scope.as_str(), c.depth.as_str()),
        (tc.as_str(), "shared", "infinity")
    );
    assert_423(&s.put("/long", "x").await, &["/long"], "after restart");
    assert_423(&s.put("/c/new", "x").await, &["/c/"], "after restart");
    let r = s
        .req("PUT", "/long")
        .header("If", &if_tok(&tl))
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 204);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        s.lockdiscovery("/short").await.is_empty(),
        "expired after restart"
    );
    assert_eq!(s.put("/short", "x").await.status, 204);
    assert_eq!(s.unlock("/short", &ts).await.status, 409);
    assert_eq!(s.unlock("/long", &tl).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn racing_exclusive_locks_one_winner() {
    let s = Arc::new(TestServer::start().await);
    s.put("/race", "x").await;
    for path in ["/race", "/race-unmapped"] {
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (s, barrier) = (s.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = s
                    .lock(path, Some("0"), None, &lockinfo("exclusive", None), &[])
                    .await;
                let token = (r.status < 300).then(|| r.lock_token());
                (r.status, token)
            }));
        }
        let mut ok = Vec::new();
        let mut statuses = Vec::new();
        for t in tasks {
            let (status, token) = t.await.unwrap();
            statuses.push(status);
            ok.extend(token);
        }
        let winners = statuses.iter().filter(|s| **s == 200 || **s == 201).count();
        let locked = statuses.iter().filter(|s| **s == 423).count();
        assert_eq!((winners, locked), (1, 49), "{path}: {statuses:?}");
        assert_eq!(only_lock(&s, path).await.token, ok[0]);
    }
}

/// Uploads into `/d/` one after another until `stop`, each body taking 400 ms to arrive, so
/// that with two of these staggered some upload is always in progress.
async fn slow_uploads(s: Arc<TestServer>, who: u32, stop: Arc<std::sync::atomic::AtomicBool>) {
    use tokio::io::AsyncWriteExt;
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let mut c = s.connect().await;
        let head = format!(
            "PUT /d/{who}-{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhalf."
        );
        let _ = c.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = c.write_all(b"half.").await;
        let r = RawResp::parse(&read_to_close(&mut c).await);
        if r.status == 423 {
            // Locked out, as it should be once the LOCK is granted: keep the pace.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A LOCK waits for uploads in progress below it; uploads that start meanwhile wait behind the
/// LOCK, so a steady stream of them does not keep it waiting for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_not_starved_by_a_stream_of_uploads() {
    let s = Arc::new(TestServer::start().await);
    assert_eq!(s.mkcol("/d").await.status, 201);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = tokio::spawn(slow_uploads(s.clone(), 1, stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = tokio::spawn(slow_uploads(s.clone(), 2, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let lock = {
        let s = s.clone();
        tokio::spawn(async move {
            s.lock(
                "/d",
                Some("infinity"),
                None,
                &lockinfo("exclusive", None),
                &[],
            )
            .await
        })
    };
    // The uploads go on for 4 s; the LOCK must not need them to stop.
    let r = tokio::time::timeout(Duration::from_secs(4), lock).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let r = r
        .expect("the LOCK was granted while uploads went on")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    a.await.unwrap();
    b.await.unwrap();
}

/// RFC 4918 §7.6: a lock on the destination URL stays when a COPY or MOVE (with its token)
/// replaces what was there, and covers the resource that arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_destination_keeps_its_lock_after_copy_and_move() {
    let s = TestServer::start().await;
    s.put("/a", "a").await;
    s.put("/b", "b").await;
    s.put("/dest", "old").await;
    let token = s.lock_ok("/dest", "exclusive", Some("0")).await;
    // The token is for the destination, so it is tagged with it (an untagged list would
    // apply to the source).
    let tagged = format!("</dest> (<{token}>)");
    for (method, from) in [("COPY", "/a"), ("MOVE", "/b")] {
        let r = s.copy_move(method, from, "/dest", &[("If", &tagged)]).await;
        assert_eq!(r.status, 204, "{method}");
        let locks = s.lockdiscovery("/dest").await;
        assert_eq!(locks.len(), 1, "{method}: the destination lost its lock");
        assert_eq!(locks[0].token, token);
        // Still enforced: a write without the token is refused.
        assert_eq!(s.put("/dest", "x").await.status, 423, "{method}");
    }
    assert_eq!(&s.get("/dest").await.body[..], b"b");
}

// ------------------------------------------------------------------------------------------
// With authentication a lock belongs to the user who took it (RFC 4918 §6.4, §9.11)

/// A server with users alice and bob (both may write everywhere), holding `/f`, `/g` and the
/// collection `/c/` with member `/c/x`.
async fn two_users() -> TestServer {
    let dirs = Dirs::fresh();
    for (p, c) in [("f", "F"), ("g", "G"), ("c/x", "X")] {
        write_file(&dirs.root, p, c.as_bytes());
    }
    TestServer::launch_with_auth(
        dirs,
        DavConfig::default(),
        auth_with_users(&["alice", "bob"]),
    )
    .await
}

/// LOCK as `who` (`None`: anonymous) that must be granted; returns the token.
async fn lock_as(
    s: &TestServer,
    who: Option<&str>,
    path: &str,
    scope: &str,
    depth: &str,
) -> String {
    let r = s
        .req("LOCK", path)
        .who(who)
        .header("Depth", depth)
        .header("Content-Type", "application/xml")
        .body(lockinfo(scope, None))
        .send()
        .await;
    assert!(
        r.status == 200 || r.status == 201,
        "LOCK {path} as {who:?}: {} {}",
        r.status,
        r.text()
    );
    r.lock_token()
}

/// A bodyless LOCK (refresh) as `who` naming `token`.
async fn refresh_as(s: &TestServer, who: &str, path: &str, token: &str) -> Resp {
    s.req("LOCK", path)
        .user(who)
        .header("If", &if_tok(token))
        .header("Timeout", "Second-100")
        .send()
        .await
}

/// The tokens of the locks on `path`, as alice sees them.
async fn tokens_on(s: &TestServer, path: &str) -> Vec<String> {
    let r = s
        .req("PROPFIND", path)
        .user("alice")
        .header("Depth", "0")
        .header("Content-Type", "application/xml")
        .body(prop_body(&[QName::dav("lockdiscovery")]))
        .send()
        .await;
    let ms = r.ms();
    let e = ms.only().dav("lockdiscovery").expect("lockdiscovery");
    activelocks(e).into_iter().map(|l| l.token).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_creator_may_unlock_or_refresh() {
    let s = two_users().await;
    let t = lock_as(&s, Some("alice"), "/f", "exclusive", "0").await;

    // Bob knows the token: UNLOCK and refresh are still refused, and the lock stays as it was.
    let r = s
        .req("UNLOCK", "/f")
        .user("bob")
        .header("Lock-Token", &format!("<{t}>"))
        .send()
        .await;
    assert_eq!(r.status, 403, "bob's UNLOCK: {}", r.text());
    let r = refresh_as(&s, "bob", "/f", &t).await;
    assert_eq!(r.status, 403, "bob's refresh: {}", r.text());
    assert_eq!(tokens_on(&s, "/f").await, std::slice::from_ref(&t));
    // The token-does-not-match answers are unchanged for him (409 before 403: a token that
    // names no lock here says nothing about whose it is).
    let r = s
        .req("UNLOCK", "/g")
        .user("bob")
        .header("Lock-Token", &format!("<{t}>"))
        .send()
        .await;
    assert_eq!(r.status, 409);
    // Without credentials: 401, as for any request.
    let r = s
        .req("UNLOCK", "/f")
        .header("Lock-Token", &format!("<{t}>"))
        .send()
        .await;
    assert_eq!(r.status, 401);

    // Alice may do both.
    let r = refresh_as(&s, "alice", "/f", &t).await;
    assert_eq!(r.status, 200, "alice's refresh: {}", r.text());
    let l = r.lock_body();
    assert_eq!(
        (l[0].token.as_str(), l[0].seconds()),
        (t.as_str(), Some(100))
    );
    let r = s
        .req("UNLOCK", "/f")
        .user("alice")
        .header("Lock-Token", &format!("<{t}>"))
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert!(tokens_on(&s, "/f").await.is_empty());

    // A member of alice's depth-infinity lock: the same rule.
    let tc = lock_as(&s, Some("alice"), "/c/", "exclusive", "infinity").await;
    let r = s
        .req("UNLOCK", "/c/x")
        .user("bob")
        .header("Lock-Token", &format!("<{tc}>"))
        .send()
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(refresh_as(&s, "bob", "/c/x", &tc).await.status, 403);
    assert_eq!(tokens_on(&s, "/c/").await, [tc]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_token_does_not_unlock_writes() {
    let s = two_users().await;
    let t = lock_as(&s, Some("alice"), "/f", "exclusive", "0").await;
    let tc = lock_as(&s, Some("alice"), "/c/", "exclusive", "infinity").await;
    let before = s.snapshot();

    // Every write bob tries with alice's tokens is 423, naming her lock.
    let writes = [
        ("PUT", "/f", if_tok(&t), None, "/f"),
        ("DELETE", "/f", if_tok(&t), None, "/f"),
        ("PROPPATCH", "/f", if_tok(&t), None, "/f"),
        ("MOVE", "/f", if_tok(&t), Some("/moved"), "/f"),
        ("PUT", "/c/new", if_tok(&tc), None, "/c/"),
        ("DELETE", "/c/", if_tok(&tc), None, "/c/"),
        ("MKCOL", "/c/sub", if_tok(&tc), None, "/c/"),
        // COPY's If is tagged with the destination the token is for.
        (
            "COPY",
            "/g",
            format!("<{}> {}", s.url("/c/x"), if_tok(&tc)),
            Some("/c/x"),
            "/c/",
        ),
    ];
    for (m, p, if_value, dest, root) in &writes {
        let mut r = s.req(m, p).user("bob").header("If", if_value);
        if let Some(d) = dest {
            r = r.header("Destination", d);
        }
        r = match *m {
            "PUT" => r.body("BOB"),
            "PROPPATCH" => r.header("Content-Type", "application/xml").body(format!(
                r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="{Z}"><D:set><D:prop><Z:p>bob</Z:p></D:prop></D:set></D:propertyupdate>"#
            )),
            _ => r,
        };
        assert_423(
            &r.send().await,
            &[root],
            &format!("bob {m} {p} with alice's token"),
        );
    }
    // In a batch too (the token in the operation's `if`).
    let batch = format!(
        r#"<b:batch xmlns:b="urn:davit:batch"><b:put href="f" if="(&lt;{t}&gt;)">BOB</b:put></b:batch>"#
    );
    let r = s
        .req("POST", "/")
        .user("bob")
        .header("Content-Type", "application/xml")
        .body(batch)
        .send()
        .await;
    assert_eq!(r.ms().get("/f").status, Some(423), "batch: {}", r.text());
    assert_eq!(s.snapshot(), before, "bob changed something");

    // Alice, with the same headers, writes.
    let r = s
        .req("PUT", "/f")
        .user("alice")
        .header("If", &if_tok(&t))
        .body("ALICE")
        .send()
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .req("PUT", "/c/new")
        .user("alice")
        .header("If", &if_tok(&tc))
        .body("NEW")
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(s.disk("f").as_deref(), Some("ALICE"));
    assert_eq!(s.disk("c/new").as_deref(), Some("NEW"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_lock_holders_write_with_their_own_token_only() {
    let s = two_users().await;
    let ta = lock_as(&s, Some("alice"), "/g", "shared", "0").await;
    let tb = lock_as(&s, Some("bob"), "/g", "shared", "0").await;
    let put = |who: &'static str, token: String| {
        let s = &s;
        async move {
            s.req("PUT", "/g")
                .user(who)
                .header("If", &if_tok(&token))
                .body(who)
                .send()
                .await
        }
    };
    assert_423(
        &put("bob", ta.clone()).await,
        &["/g"],
        "bob with alice's token",
    );
    assert_423(
        &put("alice", tb.clone()).await,
        &["/g"],
        "alice with bob's token",
    );
    assert_eq!(s.disk("g").as_deref(), Some("G"));
    assert_eq!(put("bob", tb.clone()).await.status, 204);
    assert_eq!(s.disk("g").as_deref(), Some("bob"));
    assert_eq!(put("alice", ta.clone()).await.status, 204);
    assert_eq!(s.disk("g").as_deref(), Some("alice"));
    // Each releases their own, not the other's.
    for (who, token, status) in [
        ("bob", &ta, 403),
        ("alice", &tb, 403),
        ("bob", &tb, 204),
        ("alice", &ta, 204),
    ] {
        let r = s
            .req("UNLOCK", "/g")
            .user(who)
            .header("Lock-Token", &format!("<{token}>"))
            .send()
            .await;
        assert_eq!(r.status, status, "{who} UNLOCK");
    }
    assert!(tokens_on(&s, "/g").await.is_empty());
}

/// The creator is stored with the lock: after a restart bob still cannot use alice's lock.
/// Restarted without `[auth]`, the server behaves as it always did: a token is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creator_survives_a_restart() {
    let s = two_users().await;
    let t = lock_as(&s, Some("alice"), "/f", "exclusive", "0").await;
    let tg = lock_as(&s, Some("alice"), "/g", "exclusive", "0").await;

    let s = TestServer::launch_with_auth(
        s.stop().await,
        DavConfig::default(),
        auth_with_users(&["alice", "bob"]),
    )
    .await;
    assert_eq!(tokens_on(&s, "/f").await, std::slice::from_ref(&t));
    let r = s
        .req("UNLOCK", "/f")
        .user("bob")
        .header("Lock-Token", &format!("<{t}>"))
        .send()
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .req("PUT", "/f")
        .user("bob")
        .header("If", &if_tok(&t))
        .body("BOB")
        .send()
        .await;
    assert_423(&r, &["/f"], "bob after restart");
    let r = s
        .req("PUT", "/f")
        .user("alice")
        .header("If", &if_tok(&t))
        .body("ALICE")
        .send()
        .await;
    assert_eq!(r.status, 204);

    let s = TestServer::launch(s.stop().await, DavConfig::default()).await;
    let r = s
        .req("PUT", "/g")
        .header("If", &if_tok(&tg))
        .body("ANYONE")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(refresh_plain(&s, "/f", &t).await, 200);
    assert_eq!(s.unlock("/f", &t).await.status, 204);
    assert_eq!(s.unlock("/g", &tg).await.status, 204);
}

async fn refresh_plain(s: &TestServer, path: &str, token: &str) -> u16 {
    s.lock(
        path,
        None,
        Some("Second-100"),
        "",
        &[("If", &if_tok(token))],
    )
    .await
    .status
}

/// A lock taken without credentials (where anonymous users may write) is bound to nobody: like
/// Apache mod_dav, whoever holds its token may use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_lock_is_usable_by_whoever_holds_the_token() {
    let mut auth = auth_with_users(&["alice", "bob"]);
    auth.anonymous = davit_server::auth::Access::ReadWrite;
    let s = TestServer::with_auth(auth).await;
    s.put("/f", "F").await;
    let t = lock_as(&s, None, "/f", "exclusive", "0").await;
    assert_423(
        &s.req("PUT", "/f").user("alice").body("A").send().await,
        &["/f"],
        "no token",
    );
    let r = s
        .req("PUT", "/f")
        .user("alice")
        .header("If", &if_tok(&t))
        .body("A")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(refresh_as(&s, "bob", "/f", &t).await.status, 200);
    let r = s
        .req("UNLOCK", "/f")
        .user("bob")
        .header("Lock-Token", &format!("<{t}>"))
        .send()
        .await;
    assert_eq!(r.status, 204);
}

/// Regression: webdavclient3 sends its lock's `If: (<token>)` with every request of its lock
/// context; a PROPFIND or HEAD of the (unlocked) parent collection got 412, so the upload that
/// follows was never made.
#[tokio::test]
async fn a_read_with_the_if_header_of_a_lock_elsewhere_is_served() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/dir/").await.status, 201);
    assert_eq!(s.put("/dir/f.txt", "old").await.status, 201);
    let token = s.lock_ok("/dir/f.txt", "exclusive", Some("0")).await;
    let iff = if_tok(&token);
    // The client's upload flow: look at the parent, then at the file, then write it.
    let r = s
        .req("PROPFIND", "/dir/")
        .header("Depth", "1")
        .header("If", &iff)
        .send()
        .await;
    assert_eq!(r.ms().responses.len(), 2);
    assert_eq!(
        s.req("HEAD", "/dir/")
            .header("If", &iff)
            .send()
            .await
            .status,
        200
    );
    assert_eq!(
        s.req("GET", "/dir/f.txt")
            .header("If", &iff)
            .send()
            .await
            .status,
        200
    );
    let r = s
        .req("PUT", "/dir/f.txt")
        .header("If", &iff)
        .body("new")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.disk("dir/f.txt").as_deref(), Some("new"));
    // A write keeps RFC 4918's evaluation: the lock does not cover /dir/other.txt, so the
    // untagged list is false.
    let r = s
        .req("PUT", "/dir/other.txt")
        .header("If", &iff)
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 412);
    // A read with a token that names no lock still fails, and so does a stale entity tag.
    let r = s
        .req("GET", "/dir/f.txt")
        .header("If", "(<urn:uuid:00000000-0000-0000-0000-000000000000>)")
        .send()
        .await;
    assert_eq!(r.status, 412);
    let r = s
        .req("GET", "/dir/f.txt")
        .header("If", "([\"stale\"])")
        .send()
        .await;
    assert_eq!(r.status, 412);
}

/// A LOCK of an unmapped URL that waits for a PUT creating it must not then "create" it
/// empty over the PUT's body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waiting_for_a_creating_put_keeps_its_body() {
    let s = TestServer::start().await;
    // A PUT of /racy that has passed its checks and is still receiving its body.
    let mut put = s.connect().await;
    let head = format!(
        "PUT /racy HTTP/1.1\r\nHost: {}\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello",
        s.host()
    );
    put.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lock = {
        let info = lockinfo("exclusive", None);
        let request = format!(
            "LOCK /racy HTTP/1.1\r\nHost: {}\r\nDepth: 0\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{info}",
            s.host(),
            info.len()
        );
        let addr = s.addr;
        tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
            c.write_all(request.as_bytes()).await.expect("write");
            read_to_close(&mut c).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!lock.is_finished(), "LOCK granted during the PUT it covers");
    put.write_all(b"world").await.expect("write");
    let answer = read_to_close(&mut put).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // The resource existed when the lock was granted: 200, not 201, and the body is kept.
    let locked = lock.await.expect("join");
    assert!(
        locked.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&locked)
    );
    assert_eq!(&s.get("/racy").await.body[..], b"helloworld");
}
