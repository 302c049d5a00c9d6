//! GET and HEAD: bytes, validators, content types, ranges, conditionals, collection index.

use crate::common::*;
use std::time::{Duration, SystemTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_returns_exactly_the_put_bytes() {
    let s = TestServer::start().await;
    let big = random_bytes(1024 * 1024, 0x5eed);
    let cases: [(&str, Vec<u8>); 4] = [
        ("/empty", Vec::new()),
        ("/one", b"\0".to_vec()),
        ("/bin", (0..=255u8).collect()),
        ("/big", big),
    ];
    for (path, bytes) in &cases {
        assert_eq!(s.put(path, bytes.clone()).await.status, 201, "PUT {path}");
        let r = s.get(path).await;
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(
            r.header("content-length"),
            Some(bytes.len().to_string().as_str())
        );
        assert!(
            r.body[..] == bytes[..],
            "GET {path} returned different bytes"
        );
        // On disk too, byte for byte.
        assert_eq!(std::fs::read(s.root().join(&path[1..])).unwrap(), *bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_has_get_headers_and_no_body() {
    let s = TestServer::start().await;
    s.put("/f.txt", random_bytes(5000, 1)).await;
    s.mkcol("/c/").await;
    s.put("/c/x", "x").await;
    for path in ["/f.txt", "/c/"] {
        let g = s.get(path).await;
        let h = s.head(path).await;
        assert_eq!(g.status, 200);
        assert_eq!(h.status, g.status, "HEAD {path}");
        assert!(h.body.is_empty(), "HEAD {path} has a body");
        for name in [
            "content-length",
            "etag",
            "last-modified",
            "content-type",
            "accept-ranges",
        ] {
            assert_eq!(h.header(name), g.header(name), "{name} of {path}");
        }
    }
    let h = s.head("/f.txt").await;
    assert_eq!(h.header("content-length"), Some("5000"));
    assert_eq!(s.head("/nope").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_etag_and_last_modified() {
    let s = TestServer::start().await;
    s.put("/f", "one").await;
    let r = s.get("/f").await;
    let etag = r.header("etag").expect("ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "strong ETag {etag}"
    );
    let lm = r.header("last-modified").expect("Last-Modified");
    assert!(is_imf_fixdate(lm), "Last-Modified {lm}");
    let date = httpdate::parse_http_date(r.header("date").expect("Date")).unwrap();
    assert!(httpdate::parse_http_date(lm).unwrap() <= date);

    // Same body, same tag; different body, different tag.
    assert_eq!(s.get("/f").await.header("etag"), Some(etag.as_str()));
    s.put("/f", "two").await;
    let e2 = s.get("/f").await.header("etag").unwrap().to_owned();
    assert_ne!(e2, etag);
    // Across DELETE and re-creation with other content the old tag is not reused.
    s.delete("/f").await;
    s.put("/f", "three").await;
    let e3 = s.get("/f").await.header("etag").unwrap().to_owned();
    assert_ne!(e3, etag);
    assert_ne!(e3, e2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_modified_never_after_date() {
    let s = TestServer::start().await;
    s.put("/future", "x").await;
    let f = std::fs::File::options()
        .write(true)
        .open(s.root().join("future"))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(86_400))
        .unwrap();
    drop(f);
    let r = s.get("/future").await;
    let lm = httpdate::parse_http_date(r.header("last-modified").unwrap()).unwrap();
    let date = httpdate::parse_http_date(r.header("date").unwrap()).unwrap();
    assert!(lm <= date, "Last-Modified after Date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_before_1970_are_served_as_the_epoch() {
    // `touch -d 1960-01-01` is allowed; the date formatter once panicked on it (no response).
    let s = TestServer::start().await;
    s.put("/old", "x").await;
    let f = std::fs::File::options()
        .write(true)
        .open(s.root().join("old"))
        .unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH - Duration::from_secs(315_619_200))
        .unwrap();
    drop(f);
    let r = s.get("/old").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("last-modified"),
        Some("Thu, 01 Jan 1970 00:00:00 GMT")
    );
    let p = s
        .props_of(
            "/old",
            &[
                davit_proto::xml::QName::dav("getlastmodified"),
                davit_proto::xml::QName::dav("creationdate"),
            ],
        )
        .await;
    assert_eq!(
        p.dav_text("getlastmodified").as_deref(),
        Some("Thu, 01 Jan 1970 00:00:00 GMT")
    );
    // The birth time, not the modification time: set when the test wrote the file.
    assert!(p.dav_text("creationdate").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_by_extension() {
    let s = TestServer::start().await;
    let cases = [
        ("/a.txt", "text/plain"),
        ("/b.html", "text/html"),
        ("/c.png", "image/png"),
        ("/d.json", "application/json"),
        ("/e.unknownext", "application/octet-stream"),
        ("/noext", "application/octet-stream"),
    ];
    for (path, want) in cases {
        s.put(path, "data").await;
        let r = s.get(path).await;
        let ct = r.header("content-type").expect("Content-Type");
        assert!(ct.starts_with(want), "{path}: {ct}");
        let p = s
            .props_of(path, &[davit_proto::xml::QName::dav("getcontenttype")])
            .await;
        assert_eq!(p.dav_text("getcontenttype").as_deref(), Some(ct), "{path}");
    }
}

fn hundred() -> Vec<u8> {
    (0..100u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_ranges() {
    let s = TestServer::start().await;
    let data = hundred();
    s.put("/r", data.clone()).await;
    let cases = [
        ("bytes=0-9", 0usize, 9usize),
        ("bytes=90-", 90, 99),
        ("bytes=-5", 95, 99),
        ("bytes=95-200", 95, 99),
        ("bytes=10-10", 10, 10),
    ];
    for (range, a, b) in cases {
        let r = s.req("GET", "/r").header("Range", range).send().await;
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/100").as_str()),
            "{range}"
        );
        assert_eq!(r.body[..], data[a..=b], "{range}");
        assert_eq!(
            r.header("content-length"),
            Some((b - a + 1).to_string().as_str())
        );
    }
    assert_eq!(s.get("/r").await.header("accept-ranges"), Some("bytes"));
}

/// The parts of a multipart/byteranges body: (Content-Range, bytes).
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .expect("boundary parameter")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes()).expect("first boundary") + delim.len();
    loop {
        if body[pos..].starts_with(b"--") {
            break; // closing delimiter
        }
        let head_end = pos + find(&body[pos..], b"\r\n\r\n").expect("part head");
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        let cr = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-range"))
            .map(|(_, v)| v.trim().to_owned())
            .expect("part Content-Range");
        let (a, b) = cr
            .strip_prefix("bytes ")
            .and_then(|x| x.split('/').next())
            .and_then(|x| x.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            .expect("range in part");
        let start = head_end + 4;
        let data = body[start..=start + b - a].to_vec();
        parts.push((cr, data));
        let next = start + (b - a + 1);
        pos = next + find(&body[next..], delim.as_bytes()).expect("next boundary") + delim.len();
    }
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_ranges_are_multipart_byteranges() {
    let s = TestServer::start().await;
    let data = hundred();
    s.put("/r.txt", data.clone()).await;
    let r = s
        .req("GET", "/r.txt")
        .header("Range", "bytes=0-1,5-6,-3")
        .send()
        .await;
    assert_eq!(r.status, 206);
    assert!(
        r.header("content-range").is_none(),
        "no top-level Content-Range"
    );
    let ct = r.header("content-type").unwrap();
    assert!(ct.starts_with("multipart/byteranges"), "{ct}");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let parts = multipart_parts(ct, &r.body);
    assert_eq!(
        parts,
        vec![
            ("bytes 0-1/100".to_owned(), data[0..2].to_vec()),
            ("bytes 5-6/100".to_owned(), data[5..7].to_vec()),
            ("bytes 97-99/100".to_owned(), data[97..].to_vec()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfiable_and_ignored_ranges() {
    let s = TestServer::start().await;
    s.put("/r", hundred()).await;
    let r = s
        .req("GET", "/r")
        .header("Range", "bytes=500-600")
        .send()
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */100"));
    // Unknown unit: ignored.
    let r = s.req("GET", "/r").header("Range", "items=0-1").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 100);
    // Range on HEAD is ignored.
    let r = s
        .req("HEAD", "/r")
        .header("Range", "bytes=0-1")
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_gives_304() {
    let s = TestServer::start().await;
    s.put("/f", "hello").await;
    let etag = s.get("/f").await.header("etag").unwrap().to_owned();
    for inm in [etag.as_str(), "*", &format!("\"zzz\", {etag}")] {
        let r = s.req("GET", "/f").header("If-None-Match", inm).send().await;
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }
    let r = s
        .req("GET", "/f")
        .header("If-None-Match", "\"other\"")
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"hello");
    // If-None-Match + Range that matches: 304 wins.
    let r = s
        .req("GET", "/f")
        .header("If-None-Match", &etag)
        .header("Range", "bytes=0-1")
        .send()
        .await;
    assert_eq!(r.status, 304);
    // Other methods answer 412 and do nothing.
    let r = s
        .req("DELETE", "/f")
        .header("If-None-Match", &etag)
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(s.get("/f").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_stale_gives_412() {
    let s = TestServer::start().await;
    s.put("/f", "hello").await;
    let etag = s.get("/f").await.header("etag").unwrap().to_owned();
    let r = s
        .req("GET", "/f")
        .header("If-Match", "\"stale\"")
        .send()
        .await;
    assert_eq!(r.status, 412);
    let r = s.req("GET", "/f").header("If-Match", &etag).send().await;
    assert_eq!(r.status, 200);
    let r = s
        .req("GET", "/f")
        .header("If-Match", &format!("W/{etag}"))
        .send()
        .await;
    assert_eq!(r.status, 412, "a weak tag never matches If-Match");
    // Preconditions do not turn a 404 into a 412.
    let r = s
        .req("GET", "/nope")
        .header("If-None-Match", "*")
        .send()
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_modified_since() {
    let s = TestServer::start().await;
    s.put("/f", "hello").await;
    let lm = s
        .get("/f")
        .await
        .header("last-modified")
        .unwrap()
        .to_owned();
    let r = s
        .req("GET", "/f")
        .header("If-Modified-Since", &lm)
        .send()
        .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = s
        .req("HEAD", "/f")
        .header("If-Modified-Since", &lm)
        .send()
        .await;
    assert_eq!(r.status, 304);
    let old = "Mon, 01 Jan 1990 00:00:00 GMT";
    let r = s
        .req("GET", "/f")
        .header("If-Modified-Since", old)
        .send()
        .await;
    assert_eq!(r.status, 200);
    // Ignored when If-None-Match is present.
    let r = s
        .req("GET", "/f")
        .header("If-Modified-Since", &lm)
        .header("If-None-Match", "\"other\"")
        .send()
        .await;
    assert_eq!(r.status, 200);
    // Ignored when the date is invalid.
    let r = s
        .req("GET", "/f")
        .header("If-Modified-Since", "yesterday")
        .send()
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_unmodified_since() {
    let s = TestServer::start().await;
    s.put("/f", "hello").await;
    let lm = s
        .get("/f")
        .await
        .header("last-modified")
        .unwrap()
        .to_owned();
    let old = "Mon, 01 Jan 1990 00:00:00 GMT";
    let r = s
        .req("GET", "/f")
        .header("If-Unmodified-Since", old)
        .send()
        .await;
    assert_eq!(r.status, 412);
    let r = s
        .req("GET", "/f")
        .header("If-Unmodified-Since", &lm)
        .send()
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .req("PUT", "/f")
        .header("If-Unmodified-Since", old)
        .body("new")
        .send()
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(&s.get("/f").await.body[..], b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_range() {
    let s = TestServer::start().await;
    s.put("/r", hundred()).await;
    let etag = s.get("/r").await.header("etag").unwrap().to_owned();
    let r = s
        .req("GET", "/r")
        .header("Range", "bytes=0-9")
        .header("If-Range", "\"stale\"")
        .send()
        .await;
    assert_eq!(r.status, 200, "stale If-Range sends the whole body");
    assert_eq!(r.body.len(), 100);
    let r = s
        .req("GET", "/r")
        .header("Range", "bytes=0-9")
        .header("If-Range", &etag)
        .send()
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len(), 10);
    let r = s
        .req("GET", "/r")
        .header("Range", "bytes=0-9")
        .header("If-Range", "Mon, 01 Jan 1990 00:00:00 GMT")
        .send()
        .await;
    assert_eq!(r.status, 200, "an old If-Range date sends the whole body");
}

/// The `href="..."` attribute values of an HTML page, entity-decoded.
pub fn html_links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|h| {
            h.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_get_is_an_html_index() {
    let s = TestServer::start().await;
    s.mkcol("/c/").await;
    s.mkcol("/c/sub/").await;
    for name in HOSTILE {
        let href = format!("/c{}", href_of(name, false));
        assert_eq!(
            s.put(&href, name.as_bytes().to_vec()).await.status,
            201,
            "PUT {name}"
        );
    }
    let r = s.get("/c/").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let links = html_links(&r.text());
    assert!(links.contains(&"/".to_owned()), "parent link: {links:?}");
    assert!(links.contains(&"/c/sub/".to_owned()), "{links:?}");
    for name in HOSTILE {
        let href = format!("/c{}", href_of(name, false));
        assert!(links.contains(&href), "index lacks {href}: {links:?}");
        let g = s.get(&href).await;
        assert_eq!(g.status, 200, "GET {href}");
        assert_eq!(&g.body[..], name.as_bytes());
    }
    // The root collection too, without the slash form confusion.
    assert_eq!(s.get("/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_file_with_slash_are_404() {
    let s = TestServer::start().await;
    s.put("/f", "x").await;
    assert_eq!(s.get("/nope").await.status, 404);
    assert_eq!(s.get("/nope/deeper").await.status, 404);
    assert_eq!(s.get("/f/").await.status, 404);
    assert_eq!(s.get("/f/x").await.status, 404);
}
