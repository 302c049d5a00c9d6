//! RFC 4331 quotas: the two properties, and 507 `quota-not-exceeded` on every write that would
//! pass a limit, with nothing stored.

use crate::common::*;
use davit_proto::xml::QName;
use davit_server::quota::QuotaConfig;
use davit_server::DavConfig;

const LIMIT: u64 = 10_000;

fn quota_config(rescan_secs: u64) -> DavConfig {
    DavConfig {
        quota: vec![QuotaConfig {
            path: "/q".into(),
            bytes: LIMIT,
        }],
        quota_rescan_secs: rescan_secs,
        ..DavConfig::default()
    }
}

async fn quota_server() -> TestServer {
    let s = TestServer::with_config(quota_config(3600)).await;
    assert_eq!(s.mkcol("/q/").await.status, 201);
    s
}

fn quota_names() -> Vec<QName> {
    vec![
        QName::dav("quota-used-bytes"),
        QName::dav("quota-available-bytes"),
    ]
}

/// (used, available) as PROPFIND reports them.
async fn quota_of(s: &TestServer, path: &str) -> (u64, u64) {
    let r = s.props_of(path, &quota_names()).await;
    let num = |local: &str| -> u64 {
        r.dav_text(local)
            .unwrap_or_else(|| panic!("{local} missing on {path}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{local} on {path} is not a number: {e}"))
    };
    (num("quota-used-bytes"), num("quota-available-bytes"))
}

fn bytes(n: usize) -> Vec<u8> {
    vec![b'x'; n]
}

#[tokio::test]
async fn quota_properties_count_the_content_of_the_quota_root() {
    let s = quota_server().await;
    assert_eq!(quota_of(&s, "/q/").await, (0, LIMIT));
    assert_eq!(s.put("/q/a.txt", bytes(1000)).await.status, 201);
    assert_eq!(s.mkcol("/q/sub/").await.status, 201);
    assert_eq!(s.put("/q/sub/b.txt", bytes(500)).await.status, 201);
    // Every resource under the root reports the root's figures.
    assert_eq!(quota_of(&s, "/q/").await, (1500, LIMIT - 1500));
    assert_eq!(quota_of(&s, "/q/sub/b.txt").await, (1500, LIMIT - 1500));
    // Outside every quota root: the share's content, bounded by the disk's free space.
    assert_eq!(s.put("/outside.txt", bytes(300)).await.status, 201);
    let (used, available) = quota_of(&s, "/").await;
    assert_eq!(used, 1800);
    assert!(available > 0);
}

#[tokio::test]
async fn quota_properties_are_left_out_of_allprop_and_cannot_be_set() {
    let s = quota_server().await;
    let ms = s
        .propfind_ms(
            "/q/",
            Some("0"),
            r#"<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#,
        )
        .await;
    for name in quota_names() {
        assert_eq!(ms.responses[0].prop(&name).map(|p| p.0), None);
    }
    let r = s
        .proppatch(
            "/q/",
            r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:quota-used-bytes>1</D:quota-used-bytes></D:prop></D:set></D:propertyupdate>"#,
        )
        .await;
    let ms = r.ms();
    assert_eq!(
        ms.responses[0].prop_status(&QName::dav("quota-used-bytes")),
        Some(403)
    );
}

#[tokio::test]
async fn put_past_the_quota_gets_507_quota_not_exceeded_and_stores_nothing() {
    let s = quota_server().await;
    assert_eq!(s.put("/q/a.txt", bytes(6000)).await.status, 201);
    let before = s.snapshot();
    let r = s.put("/q/b.txt", bytes(5000)).await;
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.dav_error(), vec![QName::dav("quota-not-exceeded")]);
    assert_eq!(s.get("/q/b.txt").await.status, 404);
    assert_eq!(s.snapshot(), before);
    // What fits still does.
    assert_eq!(s.put("/q/b.txt", bytes(4000)).await.status, 201);
    assert_eq!(quota_of(&s, "/q/").await, (LIMIT, 0));
}

#[tokio::test]
async fn a_chunked_put_past_the_quota_is_refused_as_it_arrives_and_leaves_the_old_body() {
    let s = quota_server().await;
    assert_eq!(s.put("/q/a.txt", bytes(100)).await.status, 201);
    let chunk = "x".repeat(4096);
    let mut request = format!(
        "PUT /q/a.txt HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.host()
    );
    for _ in 0..3 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let r = s.raw_resp(request.as_bytes()).await;
    assert_eq!(r.status, 507);
    assert_eq!(s.get("/q/a.txt").await.body.len(), 100);
    assert_eq!(quota_of(&s, "/q/").await, (100, LIMIT - 100));
}

#[tokio::test]
async fn overwriting_counts_only_what_the_new_body_adds() {
    let s = quota_server().await;
    assert_eq!(s.put("/q/a.txt", bytes(9000)).await.status, 201);
    assert_eq!(s.put("/q/a.txt", bytes(9500)).await.status, 204);
    assert_eq!(s.put("/q/a.txt", bytes(10_001)).await.status, 507);
    assert_eq!(s.get("/q/a.txt").await.body.len(), 9500);
}

#[tokio::test]
async fn copy_and_move_into_a_full_quota_root_get_507_and_change_nothing() {
    let s = quota_server().await;
    assert_eq!(s.put("/q/a.txt", bytes(5000)).await.status, 201);
    assert_eq!(s.mkcol("/big/").await.status, 201);
    assert_eq!(s.put("/big/1", bytes(3000)).await.status, 201);
    assert_eq!(s.put("/big/2", bytes(3000)).await.status, 201);
    let before = s.snapshot();
    for method in ["COPY", "MOVE"] {
        let r = s
            .req(method, "/big/")
            .header("Destination", &s.url("/q/big/"))
            .send()
            .await;
        assert_eq!(r.status, 507, "{method}: {}", r.text());
        assert_eq!(r.dav_error(), vec![QName::dav("quota-not-exceeded")]);
        assert_eq!(s.snapshot(), before, "{method} changed something");
    }
    // A MOVE inside the quota root adds nothing to it.
    let r = s
        .req("MOVE", "/q/a.txt")
        .header("Destination", &s.url("/q/b.txt"))
        .send()
        .await;
    assert_eq!(r.status, 201);
    // Half the tree fits.
    assert_eq!(s.delete("/big/2").await.status, 204);
    let r = s
        .req("COPY", "/big/")
        .header("Destination", &s.url("/q/big/"))
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(quota_of(&s, "/q/").await, (8000, 2000));
}

#[tokio::test]
async fn delete_gives_the_space_back() {
    let s = quota_server().await;
    assert_eq!(s.put("/q/a.txt", bytes(8000)).await.status, 201);
    assert_eq!(s.put("/q/b.txt", bytes(8000)).await.status, 507);
    assert_eq!(s.delete("/q/a.txt").await.status, 204);
    assert_eq!(s.put("/q/b.txt", bytes(8000)).await.status, 201);
}

#[tokio::test]
async fn concurrent_uploads_cannot_pass_the_quota_together() {
    let s = quota_server().await;
    let puts = (0..10).map(|i| {
        let s = &s;
        async move { s.put(&format!("/q/{i}.bin"), bytes(2000)).await.status }
    });
    let statuses = futures_util::future::join_all(puts).await;
    assert_eq!(statuses.iter().filter(|&&st| st == 201).count(), 5);
    assert_eq!(statuses.iter().filter(|&&st| st == 507).count(), 5);
    assert_eq!(quota_of(&s, "/q/").await, (LIMIT, 0));
}

#[tokio::test]
async fn changes_made_by_other_programs_count_once_the_usage_is_measured_again() {
    let s = TestServer::with_config(quota_config(0)).await;
    assert_eq!(s.mkcol("/q/").await.status, 201);
    std::fs::write(s.root().join("q/external.bin"), bytes(7000)).expect("write");
    assert_eq!(quota_of(&s, "/q/").await, (7000, 3000));
    assert_eq!(s.put("/q/a.txt", bytes(4000)).await.status, 507);
}

#[tokio::test]
async fn an_atomic_batch_that_passes_the_quota_is_rolled_back_whole() {
    let s = quota_server().await;
    let doc = r#"<b:batch xmlns:b="urn:davit:batch" mode="atomic">
        <b:put href="/q/a.txt">aaaa</b:put>
        <b:put href="/q/b.txt" encoding="base64">QUJD</b:put>
        <b:copy href="/outside/" destination="/q/copy/"/>
    </b:batch>"#;
    assert_eq!(s.mkcol("/outside/").await.status, 201);
    assert_eq!(s.put("/outside/big", bytes(20_000)).await.status, 201);
    let r = s
        .req("POST", "/")
        .header("Content-Type", "application/xml")
        .body(doc)
        .send()
        .await;
    let ms = r.ms();
    assert_eq!(ms.responses.len(), 3);
    assert_eq!(ms.responses[2].status, Some(507));
    assert_eq!(s.get("/q/a.txt").await.status, 404);
    assert_eq!(s.get("/q/b.txt").await.status, 404);
    assert_eq!(quota_of(&s, "/q/").await, (0, LIMIT));
}

#[tokio::test]
async fn a_users_quota_applies_to_their_root() {
    let mut auth = auth_with_users(&["bob", "ann"]);
    auth.users[0].root = Some("/home/{user}".into());
    auth.users[0].quota_bytes = Some(1000);
    let s = TestServer::launch_with_auth(Dirs::fresh(), DavConfig::default(), auth).await;
    for dir in ["/home/", "/home/bob/"] {
        assert_eq!(s.req("MKCOL", dir).user("ann").send().await.status, 201);
    }
    let r = s
        .req("PUT", "/home/bob/a")
        .user("bob")
        .body(bytes(1500))
        .send()
        .await;
    assert_eq!(r.status, 507);
    let r = s
        .req("PUT", "/home/bob/a")
        .user("bob")
        .body(bytes(900))
        .send()
        .await;
    assert_eq!(r.status, 201);
    // Elsewhere, ann has no quota.
    let r = s
        .req("PUT", "/ann.bin")
        .user("ann")
        .body(bytes(1500))
        .send()
        .await;
    assert_eq!(r.status, 201);
}
