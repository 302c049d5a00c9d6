//! Hostile and malformed input: size and nesting limits, garbage on the wire, truncated bodies.

use crate::common::*;
use davit_server::DavConfig;
use tokio::io::AsyncWriteExt;

fn small_limits() -> DavConfig {
    DavConfig {
        max_xml_body: 1024,
        max_xml_depth: 16,
        max_xml_elements: 100,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_body_over_the_limit_is_413() {
    let s = TestServer::with_config(small_limits()).await;
    s.put("/f", "x").await;
    let padding = " ".repeat(2000);
    let propfind = format!(r#"<D:propfind xmlns:D="DAV:"><D:allprop/>{padding}</D:propfind>"#);
    assert_eq!(s.propfind("/f", Some("0"), &propfind).await.status, 413);
    let value = "v".repeat(2000);
    let patch = format!(
        r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:big xmlns:Z="urn:z">{value}</Z:big></D:prop></D:set></D:propertyupdate>"#
    );
    assert_eq!(s.proppatch("/f", &patch).await.status, 413);
    assert_eq!(s.z_prop("/f", "big").await, None);
    // Chunked, without a Content-Length to refuse up front.
    let body = propfind.as_bytes();
    let mut req = format!(
        "PROPFIND /f HTTP/1.1\r\nHost: {}\r\nDepth: 0\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.host()
    )
    .into_bytes();
    for chunk in body.chunks(300) {
        req.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend(chunk);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    assert_eq!(s.raw_resp(&req).await.status, 413);
    // Under the limit is fine.
    assert_eq!(s.propfind("/f", Some("0"), "").await.status, 207);
    // MKCOL bodies are bounded too.
    let r = s
        .req("MKCOL", "/m/")
        .header("Content-Type", "application/xml")
        .body(padding.clone() + &padding)
        .send()
        .await;
    assert!((400..500).contains(&r.status), "{}", r.status);
    assert_eq!(s.get("/m/").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_and_element_floods_are_refused() {
    let s = TestServer::with_config(small_limits()).await;
    s.put("/f", "x").await;
    let deep = format!("{}{}", "<Z:n>".repeat(40), "</Z:n>".repeat(40));
    let patch = format!(
        r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:deep>{deep}</Z:deep></D:prop></D:set></D:propertyupdate>"#
    );
    let r = s.proppatch("/f", &patch).await;
    assert!(
        (400..500).contains(&r.status),
        "deep nesting gave {}",
        r.status
    );
    assert_eq!(s.z_prop("/f", "deep").await, None);
    let flood = "<Z:e/>".repeat(150);
    let patch = format!(
        r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:flood>{flood}</Z:flood></D:prop></D:set></D:propertyupdate>"#
    );
    let r = s.proppatch("/f", &patch).await;
    assert!(
        (400..500).contains(&r.status),
        "element flood gave {}",
        r.status
    );
    assert_eq!(s.z_prop("/f", "flood").await, None);
    let deep_pf = format!(
        r#"<D:propfind xmlns:D="DAV:">{}<D:allprop/>{}</D:propfind>"#,
        "<D:x>".repeat(40),
        "</D:x>".repeat(40)
    );
    let r = s.propfind("/f", Some("0"), &deep_pf).await;
    assert!(
        (400..500).contains(&r.status),
        "deep propfind gave {}",
        r.status
    );

    // With the default limits a pathological nesting depth is refused as well.
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let deep = format!("{}{}", "<a>".repeat(5000), "</a>".repeat(5000));
    let body = format!(r#"<D:propfind xmlns:D="DAV:"><D:prop>{deep}</D:prop></D:propfind>"#);
    let r = s.propfind("/f", Some("0"), &body).await;
    assert!(
        (400..500).contains(&r.status),
        "deep propfind gave {}",
        r.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_gets_400_and_the_server_keeps_serving() {
    let s = TestServer::start().await;
    s.put("/f", "still here").await;
    let garbage: &[&[u8]] = &[
        b"HELLO\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9.9\r\n\r\n",
        b"GET / FTP/1.1\r\n\r\n",
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"PUT /g HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ];
    for g in garbage {
        let bytes = s.raw(g).await;
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "{:?} got {text:?}",
            String::from_utf8_lossy(g)
        );
        assert_eq!(&s.get("/f").await.body[..], b"still here");
    }
    assert_eq!(
        s.get("/g").await.status,
        404,
        "the broken chunked PUT stored nothing"
    );
    // A request with headers far too large is refused, not buffered forever.
    let mut huge = format!("GET /f HTTP/1.1\r\nHost: {}\r\nX-Big: ", s.host()).into_bytes();
    huge.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    huge.extend(b"\r\n\r\n");
    let mut sock = s.connect().await;
    let _ = sock.write_all(&huge).await; // the server may close early
    let answer = read_to_close(&mut sock).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
        "{:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(100)])
    );
    assert_eq!(&s.get("/f").await.body[..], b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_xml_bodies_change_nothing() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    let body = r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">1</Z:a></D:prop></D:set></D:propertyupdate>"#;
    let mut sock = s.connect().await;
    let head = format!(
        "PROPPATCH /f HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        s.host(),
        body.len() + 50
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(body.as_bytes()).await.unwrap();
    sock.shutdown().await.unwrap();
    let answer = read_to_close(&mut sock).await;
    if !answer.is_empty() {
        let r = RawResp::parse(&answer);
        assert!((400..500).contains(&r.status), "{}", r.status);
    }
    assert_eq!(s.z_prop("/f", "a").await, None);
    // The same for PROPFIND: no hang, and the server is fine afterwards.
    let mut sock = s.connect().await;
    let head = format!(
        "PROPFIND /f HTTP/1.1\r\nHost: {}\r\nDepth: 0\r\nContent-Length: 500\r\n\r\n<D:propfind",
        s.host()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.shutdown().await.unwrap();
    let _ = read_to_close(&mut sock).await;
    assert_eq!(s.propfind("/f", Some("0"), "").await.status, 207);
}

/// A method, a path and the request headers.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_headers_are_400() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    s.mkcol("/c/").await;
    let cases: &[Case] = &[
        (
            "COPY",
            "/f",
            &[("Destination", "/g"), ("Overwrite", "maybe")],
        ),
        ("COPY", "/f", &[("Destination", "/g"), ("Depth", "2")]),
        ("COPY", "/f", &[("Destination", "relative/path")]),
        ("PROPFIND", "/c/", &[("Depth", "one")]),
        ("DELETE", "/c/", &[("Depth", "zero")]),
        ("GET", "/f", &[("If", "garbage (")]),
        ("PUT", "/f", &[("X-Expected-Entity-Length", "lots")]),
    ];
    for (method, path, headers) in cases {
        let mut r = s.req(method, path);
        for (k, v) in *headers {
            r = r.header(k, v);
        }
        let r = r.send().await;
        assert_eq!(r.status, 400, "{method} {path} {headers:?}");
    }
    assert_eq!(s.get("/g").await.status, 404);
    assert_eq!(&s.get("/f").await.body[..], b"x");
    assert_eq!(s.get("/c/").await.status, 200);
    // Non-ASCII bytes in a Destination header.
    let req = format!(
        "COPY /f HTTP/1.1\r\nHost: {}\r\nDestination: /\u{fc}ber\r\nConnection: close\r\n\r\n",
        s.host()
    );
    let r = s.raw_resp(req.as_bytes()).await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_without_host_is_400() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    for dest in ["http://", "http:///g"] {
        let r = s.copy_move("COPY", "/f", dest, &[]).await;
        assert_eq!(r.status, 400, "Destination {dest}");
    }
    assert_eq!(dir_names(s.root()), vec!["f"]);
}
