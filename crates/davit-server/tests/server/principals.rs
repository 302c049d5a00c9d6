//! RFC 5397 `DAV:current-user-principal` and RFC 3744 §5.4 `DAV:current-user-privilege-set`
//! computed from the access rules, and the principal resources davit answers for its users.

use crate::common::*;
use davit_proto::xml::QName;
use davit_server::auth::{Access, RuleConfig};
use davit_server::DavConfig;

fn cup() -> QName {
    QName::dav("current-user-principal")
}

fn cups() -> QName {
    QName::dav("current-user-privilege-set")
}

/// A PROPFIND Depth 0 as `who`, parsed.
async fn props_as(s: &TestServer, who: Option<&str>, path: &str, names: &[QName]) -> MsResponse {
    let r = s
        .req("PROPFIND", path)
        .who(who)
        .header("Depth", "0")
        .header("Content-Type", "application/xml")
        .body(prop_body(names))
        .send()
        .await;
    let ms = r.ms();
    assert_eq!(ms.responses.len(), 1, "{}", r.text());
    ms.responses.into_iter().next().expect("one response")
}

/// The privilege names of `current-user-privilege-set`, sorted.
fn privileges(r: &MsResponse) -> Vec<String> {
    let set = r.dav("current-user-privilege-set").expect("privilege set");
    let mut out: Vec<String> = set
        .elements()
        .map(|p| {
            assert!(p.name.is_dav("privilege"), "{:?}", p.name);
            let inner: Vec<_> = p.elements().collect();
            assert_eq!(inner.len(), 1, "one privilege per element");
            inner[0].name.local.clone()
        })
        .collect();
    out.sort();
    out
}

fn names(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

const READ: &[&str] = &["read", "read-current-user-privilege-set"];
const WRITE_FILE: &[&str] = &[
    "read",
    "read-current-user-privilege-set",
    "unlock",
    "write",
    "write-content",
    "write-properties",
];

async fn site() -> TestServer {
    let mut auth = auth_with_users(&["alice", "bob"]);
    auth.anonymous = Access::Read;
    auth.rules = vec![
        RuleConfig {
            path: "/".into(),
            users: vec!["*".into()],
            access: Access::Read,
        },
        RuleConfig {
            path: "/shared".into(),
            users: vec!["alice".into()],
            access: Access::ReadWrite,
        },
    ];
    let s = TestServer::with_auth(auth).await;
    std::fs::create_dir(s.root().join("shared")).expect("mkdir");
    std::fs::write(s.root().join("shared/f.txt"), "x").expect("write");
    s
}

#[tokio::test]
async fn privilege_sets_follow_the_access_rules_per_user() {
    let s = site().await;
    let alice = props_as(&s, Some("alice"), "/shared/f.txt", &[cups()]).await;
    assert_eq!(privileges(&alice), names(WRITE_FILE));
    let alice_dir = props_as(&s, Some("alice"), "/shared/", &[cups()]).await;
    let mut dir = WRITE_FILE.to_vec();
    dir.extend(["bind", "unbind"]);
    assert_eq!(privileges(&alice_dir), names(&dir));
    let bob = props_as(&s, Some("bob"), "/shared/f.txt", &[cups()]).await;
    assert_eq!(privileges(&bob), names(READ), "bob may only read");
    let anon = props_as(&s, None, "/shared/", &[cups()]).await;
    assert_eq!(privileges(&anon), names(READ));
    // What the set says holds: bob's PUT is refused, alice's accepted.
    let r = s
        .req("PUT", "/shared/f.txt")
        .user("bob")
        .body("b")
        .send()
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .req("PUT", "/shared/f.txt")
        .user("alice")
        .body("a")
        .send()
        .await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn current_user_principal_names_the_asker_and_answers_propfind() {
    let s = site().await;
    let r = props_as(&s, Some("alice"), "/", &[cup()]).await;
    let href = r.dav("current-user-principal").expect("cup");
    let hrefs: Vec<_> = href
        .elements()
        .map(|e| (e.name.clone(), e.text()))
        .collect();
    assert_eq!(
        hrefs,
        vec![(QName::dav("href"), "/principals/alice/".to_owned())]
    );
    let anon = props_as(&s, None, "/", &[cup()]).await;
    let inner: Vec<_> = anon
        .dav("current-user-principal")
        .expect("cup")
        .elements()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(inner, vec![QName::dav("unauthenticated")]);
    // The principal resource itself.
    let p = props_as(
        &s,
        Some("alice"),
        "/principals/alice/",
        &[
            QName::dav("resourcetype"),
            QName::dav("displayname"),
            QName::dav("principal-URL"),
            QName::dav("getetag"),
        ],
    )
    .await;
    let rt: Vec<_> = p
        .dav("resourcetype")
        .expect("resourcetype")
        .elements()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(rt, vec![QName::dav("principal")]);
    assert_eq!(p.dav_text("displayname").as_deref(), Some("alice"));
    assert_eq!(p.prop_status(&QName::dav("getetag")), Some(404));
    // Another user's principal, anonymous access, writes.
    let r = s
        .req("PROPFIND", "/principals/alice/")
        .user("bob")
        .header("Depth", "0")
        .send()
        .await;
    assert_eq!(r.status, 403);
    let r = s
        .req("PROPFIND", "/principals/alice/")
        .header("Depth", "0")
        .send()
        .await;
    assert_eq!(r.status, 401);
    let r = s
        .req("PUT", "/principals/alice/")
        .user("alice")
        .body("x")
        .send()
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("OPTIONS, GET, HEAD, PROPFIND"));
    // The collection lists only the asker's principal.
    let r = s
        .req("PROPFIND", "/principals/")
        .user("bob")
        .header("Depth", "1")
        .send()
        .await;
    let hrefs: Vec<_> = r.ms().responses.into_iter().map(|r| r.href).collect();
    assert_eq!(hrefs, ["/principals/", "/principals/bob/"]);
}

#[tokio::test]
async fn without_authentication_everyone_is_unauthenticated_with_every_privilege() {
    let s = TestServer::with_config(DavConfig::default()).await;
    assert_eq!(s.put("/f", "x").await.status, 201);
    let r = props_as(&s, None, "/f", &[cup(), cups()]).await;
    assert_eq!(privileges(&r), names(WRITE_FILE));
    let inner: Vec<_> = r
        .dav("current-user-principal")
        .expect("cup")
        .elements()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(inner, vec![QName::dav("unauthenticated")]);
    // No principal resources without users: /principals/ is an ordinary (absent) path.
    assert_eq!(s.get("/principals/").await.status, 404);
}
