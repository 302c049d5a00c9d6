//! RFC 5842 bindings (checklist BD-1..BD-10): resource ids, parent sets, BIND, UNBIND and
//! REBIND with their preconditions, and Depth-infinity walks over several bindings of one
//! collection (208 with `DAV: bind`, 508 for a loop without it), on the directory backend where
//! hard links and symlinks inside the root are bindings too.

use crate::common::*;
use davit_proto::xml::QName;
use davit_server::DavConfig;
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;

fn rid() -> QName {
    QName::dav("resource-id")
}

/// The `DAV:resource-id` href of a resource.
async fn id_of(s: &TestServer, path: &str) -> String {
    let r = s.props_of(path, &[rid()]).await;
    let (status, e) = r
        .prop(&rid())
        .unwrap_or_else(|| panic!("no resource-id on {path}"));
    assert_eq!(status, 200, "resource-id of {path}");
    let hrefs: Vec<_> = e.elements().filter(|c| c.name.is_dav("href")).collect();
    assert_eq!(hrefs.len(), 1, "one href in resource-id of {path}");
    let id = hrefs[0].text();
    assert!(id.starts_with("urn:uuid:") && id.len() == 45, "{id}");
    id
}

/// The (parent href, segment) pairs of `DAV:parent-set`.
async fn parents_of(s: &TestServer, path: &str) -> Vec<(String, String)> {
    let name = QName::dav("parent-set");
    let r = s.props_of(path, std::slice::from_ref(&name)).await;
    let (status, e) = r
        .prop(&name)
        .unwrap_or_else(|| panic!("no parent-set on {path}"));
    assert_eq!(status, 200, "parent-set of {path}");
    let mut out: Vec<(String, String)> = e
        .elements()
        .map(|p| {
            assert!(p.name.is_dav("parent"), "{:?}", p.name);
            let child = |local: &str| {
                p.elements()
                    .find(|c| c.name.is_dav(local))
                    .map(|c| c.text())
                    .unwrap_or_else(|| panic!("parent without {local}"))
            };
            (child("href"), child("segment"))
        })
        .collect();
    out.sort();
    out
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn bind(s: &TestServer, method: &str, collection: &str, body: &str) -> Resp {
    s.req(method, collection)
        .header("Content-Type", "application/xml")
        .body(body.to_owned())
        .send()
        .await
}

fn bind_body(segment: &str, href: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><D:bind xmlns:D="DAV:"><D:segment>{segment}</D:segment><D:href>{href}</D:href></D:bind>"#
    )
}

fn unbind_body(segment: &str) -> String {
    format!(r#"<D:unbind xmlns:D="DAV:"><D:segment>{segment}</D:segment></D:unbind>"#)
}

fn rebind_body(segment: &str, href: &str) -> String {
    format!(
        r#"<D:rebind xmlns:D="DAV:"><D:segment>{segment}</D:segment><D:href>{href}</D:href></D:rebind>"#
    )
}

fn condition(r: &Resp, status: u16, name: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.dav_error(), vec![QName::dav(name)], "{}", r.text());
}

/// A Depth: infinity PROPFIND for resourcetype: each href with its status (200 for a
/// listed resource, else the response's own status).
async fn walk(s: &TestServer, path: &str, knows_bind: bool) -> Resp {
    let mut r = s
        .req("PROPFIND", path)
        .header("Depth", "infinity")
        .header("Content-Type", "application/xml");
    if knows_bind {
        r = r.header("DAV", "1, 3, bind");
    }
    r.body(prop_body(&[QName::dav("resourcetype")]))
        .send()
        .await
}

fn statuses(r: &Resp) -> BTreeMap<String, u16> {
    assert_eq!(r.status, 207, "{}", r.text());
    let mut out = BTreeMap::new();
    for resp in r.ms().responses {
        let status = resp.status.unwrap_or(200);
        assert!(
            out.insert(resp.href.clone(), status).is_none(),
            "{} listed twice",
            resp.href
        );
    }
    out
}

fn map(items: &[(&str, u16)]) -> BTreeMap<String, u16> {
    items.iter().map(|(h, s)| ((*h).to_owned(), *s)).collect()
}

#[tokio::test]
async fn resource_id_survives_move_and_restart_and_copy_or_a_new_put_makes_a_new_one() {
    let s = TestServer::start().await;
    assert_eq!(s.put("/a", "x").await.status, 201);
    assert_eq!(s.mkcol("/d/").await.status, 201);
    let a = id_of(&s, "/a").await;
    let d = id_of(&s, "/d/").await;
    assert_ne!(a, d);
    assert_eq!(s.copy_move("MOVE", "/a", "/b", &[]).await.status, 201);
    assert_eq!(id_of(&s, "/b").await, a, "MOVE keeps the id");
    assert_eq!(s.copy_move("MOVE", "/d/", "/e/", &[]).await.status, 201);
    assert_eq!(id_of(&s, "/e/").await, d);
    assert_eq!(s.copy_move("COPY", "/b", "/c", &[]).await.status, 201);
    let c = id_of(&s, "/c").await;
    assert_ne!(c, a, "COPY makes a new resource");
    // A new resource at a URL whose old one was deleted never gets the old id.
    assert_eq!(s.delete("/c").await.status, 204);
    assert_eq!(s.put("/c", "y").await.status, 201);
    assert_ne!(id_of(&s, "/c").await, c);
    let r = s
        .proppatch(
            "/b",
            r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:resource-id><D:href>urn:uuid:00000000-0000-0000-0000-000000000000</D:href></D:resource-id></D:prop></D:set></D:propertyupdate>"#,
        )
        .await;
    assert_eq!(
        r.ms().only().prop_status(&rid()),
        Some(403),
        "resource-id is protected"
    );
    let dirs = s.stop().await;
    let s = TestServer::launch(dirs, DavConfig::default()).await;
    assert_eq!(id_of(&s, "/b").await, a, "the id survives a restart");
    assert_eq!(id_of(&s, "/e/").await, d);
}

#[tokio::test]
async fn bind_of_a_file_and_a_collection_serves_the_same_resource_until_unbind() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/a/").await.status, 201);
    assert_eq!(s.mkcol("/b/").await.status, 201);
    assert_eq!(s.put("/a/f", "same bytes").await.status, 201);
    assert_eq!(s.put("/a/g", "in a").await.status, 201);
    let r = bind(&s, "BIND", "/b/", &bind_body("s", "/a/f")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (via_a, via_b) = (s.get("/a/f").await, s.get("/b/s").await);
    assert_eq!(via_b.status, 200);
    assert_eq!(via_b.body, via_a.body);
    assert_eq!(via_b.header("etag"), via_a.header("etag"));
    assert_eq!(id_of(&s, "/b/s").await, id_of(&s, "/a/f").await);
    assert_eq!(
        parents_of(&s, "/a/f").await,
        pairs(&[("/a/", "f"), ("/b/", "s")])
    );
    assert_eq!(parents_of(&s, "/a/g").await, pairs(&[("/a/", "g")]));
    // A write through one binding shows through the other.
    assert_eq!(s.put("/b/s", "new bytes").await.status, 204);
    assert_eq!(s.get("/a/f").await.body, &b"new bytes"[..]);
    assert_eq!(id_of(&s, "/b/s").await, id_of(&s, "/a/f").await);
    // BIND of a collection, with an absolute URI as the href.
    let href = s.url("/a/");
    let r = bind(&s, "BIND", "/b/", &bind_body("alias", &href)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.get("/b/alias/g").await.body, &b"in a"[..]);
    assert_eq!(id_of(&s, "/b/alias/").await, id_of(&s, "/a/").await);
    assert_eq!(
        parents_of(&s, "/a/").await,
        pairs(&[("/", "a"), ("/b/", "alias")])
    );
    // UNBIND removes that binding only.
    let r = bind(&s, "UNBIND", "/b/", &unbind_body("alias")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.get("/b/alias/g").await.status, 404);
    assert_eq!(s.get("/a/g").await.status, 200);
    // DELETE of one binding of a file leaves the other (BD-8).
    let r = bind(&s, "BIND", "/b/", &bind_body("t", "/a/g")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.delete("/a/g").await.status, 204);
    assert_eq!(s.get("/b/t").await.body, &b"in a"[..]);
    // Overwrite: T replaces an existing binding: 200.
    let r = bind(&s, "BIND", "/b/", &bind_body("t", "/a/f")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(id_of(&s, "/b/t").await, id_of(&s, "/a/f").await);
}

#[tokio::test]
async fn bind_unbind_and_rebind_preconditions() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/b/").await.status, 201);
    assert_eq!(s.put("/f", "x").await.status, 201);
    assert_eq!(s.put("/b/taken", "x").await.status, 201);
    let before = s.snapshot();
    condition(
        &bind(&s, "BIND", "/f", &bind_body("s", "/b/taken")).await,
        403,
        "bind-into-collection",
    );
    condition(
        &bind(&s, "BIND", "/b/", &bind_body("s", "/nope")).await,
        409,
        "bind-source-exists",
    );
    condition(
        &bind(
            &s,
            "BIND",
            "/b/",
            &bind_body("s", "http://elsewhere.invalid/f"),
        )
        .await,
        403,
        "cross-server-binding",
    );
    let r = s
        .req("BIND", "/b/")
        .header("Overwrite", "F")
        .header("Content-Type", "application/xml")
        .body(bind_body("taken", "/f"))
        .send()
        .await;
    condition(&r, 412, "can-overwrite");
    condition(
        &bind(&s, "UNBIND", "/b/", &unbind_body("nope")).await,
        409,
        "unbind-source-exists",
    );
    condition(
        &bind(&s, "UNBIND", "/f", &unbind_body("x")).await,
        403,
        "unbind-from-collection",
    );
    condition(
        &bind(&s, "REBIND", "/b/", &rebind_body("n", "/nope")).await,
        409,
        "rebind-source-exists",
    );
    for bad in [
        "",
        "not xml",
        r#"<D:bind xmlns:D="DAV:"><D:segment>a/b</D:segment><D:href>/f</D:href></D:bind>"#,
        r#"<D:unbind xmlns:D="DAV:"><D:segment>s</D:segment></D:unbind>"#,
    ] {
        let r = bind(&s, "BIND", "/b/", bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(
        bind(&s, "BIND", "/nope/", &bind_body("s", "/f"))
            .await
            .status,
        404
    );
    assert_eq!(s.snapshot(), before, "refused requests changed nothing");
    let r = s.req("OPTIONS", "/").send().await;
    let dav = r.header("dav").unwrap_or_default().to_owned();
    assert_eq!(
        dav.split(',').map(str::trim).collect::<Vec<_>>(),
        ["1", "2", "3", "bind", "extended-mkcol"]
    );
}

#[tokio::test]
async fn rebind_moves_one_binding_with_its_id_and_properties() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/a/").await.status, 201);
    assert_eq!(s.mkcol("/b/").await.status, 201);
    assert_eq!(s.put("/a/f", "x").await.status, 201);
    s.set_prop("/a/f", "p", "v").await;
    let id = id_of(&s, "/a/f").await;
    let r = bind(&s, "REBIND", "/b/", &rebind_body("n", "/a/f")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.get("/a/f").await.status, 404);
    assert_eq!(id_of(&s, "/b/n").await, id);
    assert_eq!(s.z_prop("/b/n", "p").await.as_deref(), Some("v"));
    // A collection bound by a symlink keeps reaching its collection from its new place.
    assert_eq!(s.mkcol("/a/c/").await.status, 201);
    assert_eq!(s.put("/a/c/m", "m").await.status, 201);
    assert_eq!(
        bind(&s, "BIND", "/a/", &bind_body("link", "/a/c/"))
            .await
            .status,
        201
    );
    let r = bind(&s, "REBIND", "/b/", &rebind_body("moved", "/a/link/")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.get("/b/moved/m").await.body, &b"m"[..]);
    assert_eq!(id_of(&s, "/b/moved/").await, id_of(&s, "/a/c/").await);
    // Onto an existing binding: 200.
    assert_eq!(s.put("/b/old", "o").await.status, 201);
    let r = bind(&s, "REBIND", "/b/", &rebind_body("old", "/b/n")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(id_of(&s, "/b/old").await, id);
}

/// The issue's tree: `a/b/loop -> ../..` and `a/f.txt`, with the state directory inside the
/// root (the default).
async fn loop_tree() -> TestServer {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("a/b")).expect("mkdir");
    std::fs::write(root.path().join("a/f.txt"), "f").expect("write");
    symlink("../..", root.path().join("a/b/loop")).expect("symlink");
    let dirs = Dirs {
        root: root.path().to_path_buf(),
        state: None,
        guards: vec![root],
    };
    TestServer::launch(dirs, DavConfig::default()).await
}

#[tokio::test]
async fn a_symlink_loop_answers_208_with_dav_bind_and_508_without() {
    let s = loop_tree().await;
    let with = statuses(&walk(&s, "/", true).await);
    assert_eq!(
        with,
        map(&[
            ("/", 200),
            ("/a/", 200),
            ("/a/b/", 200),
            ("/a/b/loop/", 208),
            ("/a/f.txt", 200)
        ])
    );
    let r = walk(&s, "/", false).await;
    assert_eq!(r.status, 508, "{}", r.text());
    // From below the loop's target the walk goes round once before it closes.
    let below = statuses(&walk(&s, "/a/", true).await);
    assert_eq!(
        below,
        map(&[
            ("/a/", 200),
            ("/a/b/", 200),
            ("/a/b/loop/", 200),
            ("/a/b/loop/a/", 208),
            ("/a/f.txt", 200)
        ])
    );
    // The state directory stays hidden through the loop.
    let listed = statuses(&s.propfind("/a/b/loop/", Some("1"), "").await);
    assert_eq!(
        listed.keys().cloned().collect::<Vec<_>>(),
        ["/a/b/loop/", "/a/b/loop/a/"]
    );
    assert_eq!(s.get("/a/b/loop/.davit/").await.status, 404);
}

#[tokio::test]
async fn a_second_binding_of_a_collection_is_208_for_clients_that_know_bind() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/x/").await.status, 201);
    assert_eq!(s.put("/x/m", "m").await.status, 201);
    assert_eq!(s.mkcol("/y/").await.status, 201);
    let r = bind(&s, "BIND", "/y/", &bind_body("x2", "/x/")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let with = statuses(&walk(&s, "/", true).await);
    assert_eq!(with.values().filter(|s| **s == 208).count(), 1, "{with:?}");
    let reported_twice = with.contains_key("/x/m") && with.contains_key("/y/x2/m");
    assert!(
        !reported_twice,
        "members listed under both bindings: {with:?}"
    );
    // Without `DAV: bind` two bindings that make no loop are both listed in full.
    let without = statuses(&walk(&s, "/", false).await);
    assert_eq!(
        without,
        map(&[
            ("/", 200),
            ("/x/", 200),
            ("/x/m", 200),
            ("/y/", 200),
            ("/y/x2/", 200),
            ("/y/x2/m", 200)
        ])
    );
    // A loop made with BIND is found the same way.
    let r = bind(&s, "BIND", "/x/", &bind_body("loop", "/x/")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let with = statuses(&walk(&s, "/x/", true).await);
    assert_eq!(with, map(&[("/x/", 200), ("/x/loop/", 208), ("/x/m", 200)]));
    assert_eq!(walk(&s, "/x/", false).await.status, 508);
}

#[tokio::test]
async fn copy_of_a_tree_with_bindings_keeps_them_and_ends() {
    let s = TestServer::start().await;
    assert_eq!(s.mkcol("/c/").await.status, 201);
    assert_eq!(s.mkcol("/c/d/").await.status, 201);
    assert_eq!(s.put("/c/d/f", "f").await.status, 201);
    assert_eq!(
        bind(&s, "BIND", "/c/d/", &bind_body("loop", "/c/"))
            .await
            .status,
        201
    );
    assert_eq!(
        bind(&s, "BIND", "/c/", &bind_body("g", "/c/d/f"))
            .await
            .status,
        201
    );
    let r = s.copy_move("COPY", "/c/", "/k/", &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // The copy is a new tree with the same binding structure.
    assert_eq!(s.get("/k/d/f").await.body, &b"f"[..]);
    assert_eq!(id_of(&s, "/k/d/loop/").await, id_of(&s, "/k/").await);
    assert_ne!(id_of(&s, "/k/").await, id_of(&s, "/c/").await);
    assert_eq!(id_of(&s, "/k/g").await, id_of(&s, "/k/d/f").await);
    assert_ne!(id_of(&s, "/k/g").await, id_of(&s, "/c/g").await);
    let copied = statuses(&walk(&s, "/k/", true).await);
    assert_eq!(
        copied,
        map(&[
            ("/k/", 200),
            ("/k/d/", 200),
            ("/k/d/f", 200),
            ("/k/d/loop/", 208),
            ("/k/g", 200)
        ])
    );
    // DELETE removes bindings, never what a symlink reaches elsewhere.
    assert_eq!(s.delete("/k/").await.status, 204);
    assert_eq!(s.get("/c/d/f").await.status, 200);
}

#[tokio::test]
async fn move_keeps_the_bindings_that_cross_the_moved_tree() {
    let s = TestServer::start().await;
    for c in ["/a/", "/a/c/", "/b/", "/o/", "/y/"] {
        assert_eq!(s.mkcol(c).await.status, 201);
    }
    assert_eq!(s.put("/a/c/m", "m").await.status, 201);
    assert_eq!(s.put("/o/x", "x").await.status, 201);
    // A binding elsewhere of a collection inside the tree that moves...
    assert_eq!(
        bind(&s, "BIND", "/b/", &bind_body("alias", "/a/c/"))
            .await
            .status,
        201
    );
    // ...and one inside it of a collection outside.
    assert_eq!(
        bind(&s, "BIND", "/a/", &bind_body("out", "/o/"))
            .await
            .status,
        201
    );
    let c_id = id_of(&s, "/a/c/").await;
    let o_id = id_of(&s, "/o/").await;
    let r = s.copy_move("MOVE", "/a/", "/y/deeper/", &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.get("/b/alias/m").await.body, &b"m"[..]);
    assert_eq!(id_of(&s, "/b/alias/").await, c_id);
    assert_eq!(id_of(&s, "/y/deeper/c/").await, c_id);
    assert_eq!(s.get("/y/deeper/out/x").await.body, &b"x"[..]);
    assert_eq!(id_of(&s, "/y/deeper/out/").await, o_id);
    assert_eq!(
        parents_of(&s, "/y/deeper/c/").await,
        pairs(&[("/b/", "alias"), ("/y/deeper/", "c")])
    );
}

#[tokio::test]
async fn delete_removes_one_binding_and_the_collection_lives_on_through_the_others() {
    let s = TestServer::start().await;
    for c in ["/a/", "/a/c/", "/b/", "/x/", "/y/"] {
        assert_eq!(s.mkcol(c).await.status, 201);
    }
    assert_eq!(s.put("/a/c/m", "m").await.status, 201);
    assert_eq!(s.put("/a/gone", "g").await.status, 201);
    assert_eq!(s.put("/x/n", "n").await.status, 201);
    assert_eq!(
        bind(&s, "BIND", "/b/", &bind_body("alias", "/a/c/"))
            .await
            .status,
        201
    );
    assert_eq!(
        bind(&s, "BIND", "/y/", &bind_body("x2", "/x/"))
            .await
            .status,
        201
    );
    let (c_id, x_id) = (id_of(&s, "/a/c/").await, id_of(&s, "/x/").await);
    // A part of the deleted tree is bound elsewhere: it stays there; the rest goes.
    assert_eq!(s.delete("/a/").await.status, 204);
    assert_eq!(s.get("/a/c/m").await.status, 404);
    assert_eq!(s.get("/a/gone").await.status, 404);
    assert_eq!(s.get("/b/alias/m").await.body, &b"m"[..]);
    assert_eq!(id_of(&s, "/b/alias/").await, c_id);
    // The deleted collection itself is bound elsewhere: it lives on there.
    assert_eq!(s.delete("/x/").await.status, 204);
    assert_eq!(s.get("/x/n").await.status, 404);
    assert_eq!(s.get("/y/x2/n").await.body, &b"n"[..]);
    assert_eq!(id_of(&s, "/y/x2/").await, x_id);
    assert_eq!(parents_of(&s, "/y/x2/").await, pairs(&[("/y/", "x2")]));
}
