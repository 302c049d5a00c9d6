//! `GET /collection/?zip`: the whole collection as a ZIP archive with an exact
//! `Content-Length`, read back here from its central directory (as unzip tools do) with every
//! byte and CRC checked; only what the user may read goes in.

use crate::common::*;
use davit_server::auth::{Access, RuleConfig};
use std::collections::BTreeMap;

fn u16_at(b: &[u8], i: usize) -> usize {
    usize::from(u16::from_le_bytes([b[i], b[i + 1]]))
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The members of an archive by name, with their content (collections: `None`), read through
/// the central directory and each local header, CRCs checked.
fn unzip(z: &[u8]) -> BTreeMap<String, Option<Vec<u8>>> {
    let eocd = z.len() - 22;
    assert_eq!(u32_at(z, eocd), 0x0605_4b50, "end of central directory");
    let count = u16_at(z, eocd + 10);
    let mut p = u32_at(z, eocd + 16) as usize;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        assert_eq!(u32_at(z, p), 0x0201_4b50, "central record");
        let flags = u16_at(z, p + 8);
        assert_eq!(flags & 0x0800, 0x0800, "UTF-8 names");
        assert_eq!(u16_at(z, p + 10), 0, "stored");
        let crc = u32_at(z, p + 16);
        let size = u32_at(z, p + 24) as usize;
        let name_len = u16_at(z, p + 28);
        let extra_len = u16_at(z, p + 30);
        let comment_len = u16_at(z, p + 32);
        let offset = u32_at(z, p + 42) as usize;
        let name = String::from_utf8(z[p + 46..p + 46 + name_len].to_vec()).expect("utf-8");
        assert_eq!(u32_at(z, offset), 0x0403_4b50, "local header of {name}");
        let local_name = &z[offset + 30..offset + 30 + u16_at(z, offset + 26)];
        assert_eq!(local_name, name.as_bytes());
        let data = offset + 30 + u16_at(z, offset + 26) + u16_at(z, offset + 28);
        let content = z[data..data + size].to_vec();
        assert_eq!(crc, crc32fast::hash(&content), "CRC of {name}");
        if name.ends_with('/') {
            assert_eq!(size, 0);
            out.insert(name, None);
        } else {
            // The data descriptor repeats the CRC and sizes.
            assert_eq!(u32_at(z, data + size), 0x0807_4b50, "descriptor of {name}");
            assert_eq!(u32_at(z, data + size + 4), crc);
            assert_eq!(u32_at(z, data + size + 8) as usize, size);
            out.insert(name, Some(content));
        }
        p += 46 + name_len + extra_len + comment_len;
    }
    assert_eq!(
        p, eocd,
        "the central directory ends where the end record starts"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_downloads_as_a_zip_with_every_byte() {
    let s = TestServer::start().await;
    s.mkcol("/docs/").await;
    s.mkcol("/docs/sub/").await;
    s.mkcol("/docs/empty/").await;
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    s.put("/docs/a%20%C3%BC.txt", "hello").await;
    s.put("/docs/sub/big.bin", big.clone()).await;
    s.put("/docs/zero", "").await;
    s.put("/outside.txt", "not in it").await;
    let r = s.get("/docs/?zip").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/zip"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"docs.zip\"; filename*=UTF-8''docs.zip")
    );
    let members = unzip(&r.body);
    let expected: BTreeMap<String, Option<Vec<u8>>> = [
        ("docs/", None),
        ("docs/a ü.txt", Some(b"hello".to_vec())),
        ("docs/empty/", None),
        ("docs/sub/", None),
        ("docs/sub/big.bin", Some(big)),
        ("docs/zero", Some(Vec::new())),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c))
    .collect();
    assert_eq!(members, expected);

    // HEAD promises the same length without reading a file.
    let h = s.head("/docs/?zip").await;
    assert_eq!(h.status, 200);
    assert_eq!(
        h.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    // Without the query the collection answers as before; a file ignores it.
    assert_eq!(
        s.get("/docs/").await.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let f = s.get("/docs/zero?zip").await;
    assert_eq!((f.status, f.body.len()), (200, 0));
    assert_eq!(s.get("/missing/?zip").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_holds_only_what_the_user_may_read() {
    let mut auth = auth_with_users(&["alice"]);
    auth.rules.push(RuleConfig {
        path: "/share/secret".into(),
        users: vec!["*".into()],
        access: Access::None,
    });
    let s = TestServer::with_auth(auth).await;
    // Made on disk: the rule keeps alice from making the secret folder herself.
    for d in ["share/secret", "share/open"] {
        std::fs::create_dir_all(s.root().join(d)).expect("mkdir");
    }
    std::fs::write(s.root().join("share/secret/key"), "k").expect("write");
    std::fs::write(s.root().join("share/open/f"), "f").expect("write");
    let r = s.req("GET", "/share/?zip").user("alice").send().await;
    assert_eq!(r.status, 200);
    let names: Vec<String> = unzip(&r.body).into_keys().collect();
    assert_eq!(names, ["share/", "share/open/", "share/open/f"]);
    // And not at all without credentials.
    assert_eq!(s.get("/share/?zip").await.status, 401);
}
