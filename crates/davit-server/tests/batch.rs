//! Integration tests of the batch endpoint (`POST` to a collection, `docs/batch.md`): every
//! operation in XML and in JSON, per-operation and request-level lock tokens, the three modes
//! (with an injected failure rolling an atomic batch back), malformed input and the limits.
//!
//! Answers are read structurally: XML with the project's own parser, JSON with serde_json, both
//! into the same [`Answer`] so that one scenario can be checked in every format.

#[allow(dead_code, unused_imports)]
#[path = "server/common.rs"]
mod common;

use common::{random_bytes, write_file, Resp, TestServer};
use davit_proto::batch::clark;
use davit_proto::xml::{escape_attr, escape_text, parse_document, Element, Limits, QName, DAV};
use davit_server::DavConfig;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// Building batches.

const Z: &str = "urn:z";

fn z(local: &str) -> QName {
    QName::new(Z, local)
}

/// What a `propfind` operation asks for.
#[derive(Clone)]
enum Find {
    Prop(Vec<QName>),
    PropName,
    AllProp,
}

/// One operation, rendered to XML or JSON.
#[derive(Clone)]
enum Kind {
    Put {
        content: Vec<u8>,
        content_type: Option<String>,
        base64: bool,
    },
    Delete,
    Mkcol {
        parents: Option<bool>,
    },
    Copy {
        destination: String,
        overwrite: Option<bool>,
        depth: Option<&'static str>,
    },
    Move {
        destination: String,
        overwrite: Option<bool>,
    },
    PropPatch {
        set: Vec<(QName, String)>,
        remove: Vec<QName>,
    },
    PropFind(Find),
}

#[derive(Clone)]
struct Op {
    href: String,
    if_header: Option<String>,
    kind: Kind,
}

impl Op {
    fn new(href: &str, kind: Kind) -> Op {
        Op {
            href: href.to_owned(),
            if_header: None,
            kind,
        }
    }

    fn with_if(mut self, if_header: &str) -> Op {
        self.if_header = Some(if_header.to_owned());
        self
    }
}

fn put(href: &str, content: &[u8]) -> Op {
    Op::new(
        href,
        Kind::Put {
            content: content.to_vec(),
            content_type: None,
            base64: false,
        },
    )
}

fn put_typed(href: &str, content: &[u8], content_type: &str, base64: bool) -> Op {
    Op::new(
        href,
        Kind::Put {
            content: content.to_vec(),
            content_type: Some(content_type.to_owned()),
            base64,
        },
    )
}

fn delete(href: &str) -> Op {
    Op::new(href, Kind::Delete)
}

fn mkcol(href: &str, parents: Option<bool>) -> Op {
    Op::new(href, Kind::Mkcol { parents })
}

fn copy(href: &str, dest: &str, overwrite: Option<bool>, depth: Option<&'static str>) -> Op {
    Op::new(
        href,
        Kind::Copy {
            destination: dest.to_owned(),
            overwrite,
            depth,
        },
    )
}

fn mv(href: &str, dest: &str, overwrite: Option<bool>) -> Op {
    Op::new(
        href,
        Kind::Move {
            destination: dest.to_owned(),
            overwrite,
        },
    )
}

fn proppatch(href: &str, set: &[(QName, &str)], remove: &[QName]) -> Op {
    Op::new(
        href,
        Kind::PropPatch {
            set: set
                .iter()
                .map(|(n, v)| (n.clone(), (*v).to_owned()))
                .collect(),
            remove: remove.to_vec(),
        },
    )
}

fn propfind(href: &str, find: Find) -> Op {
    Op::new(href, Kind::PropFind(find))
}

/// Standard base64 (the tests do not depend on a base64 crate).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escape_attr(value, out);
    out.push('"');
}

/// An element for property `name`, declaring its own namespace (prefix `p`).
fn prop_element(name: &QName, value: Option<&str>) -> String {
    let open = if name.ns == DAV {
        format!("D:{}", name.local)
    } else {
        format!("p:{}", name.local)
    };
    let decl = if name.ns == DAV {
        String::new()
    } else {
        let mut d = String::new();
        attr(&mut d, "xmlns:p", &name.ns);
        d
    };
    match value {
        None => format!("<{open}{decl}/>"),
        Some(v) => {
            let mut text = String::new();
            escape_text(v, &mut text);
            format!("<{open}{decl}>{text}</{open}>")
        }
    }
}

fn xml_batch(mode: Option<&str>, ops: &[Op]) -> String {
    let mut s = String::from(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    s.push_str(r#"<b:batch xmlns:b="urn:davit:batch" xmlns:D="DAV:""#);
    if let Some(m) = mode {
        attr(&mut s, "mode", m);
    }
    s.push_str(">\n");
    for op in ops {
        let name = match &op.kind {
            Kind::Put { .. } => "put",
            Kind::Delete => "delete",
            Kind::Mkcol { .. } => "mkcol",
            Kind::Copy { .. } => "copy",
            Kind::Move { .. } => "move",
            Kind::PropPatch { .. } => "proppatch",
            Kind::PropFind(_) => "propfind",
        };
        s.push_str("<b:");
        s.push_str(name);
        attr(&mut s, "href", &op.href);
        if let Some(i) = &op.if_header {
            attr(&mut s, "if", i);
        }
        let mut inner = String::new();
        match &op.kind {
            Kind::Put {
                content,
                content_type,
                base64: b64,
            } => {
                if let Some(ct) = content_type {
                    attr(&mut s, "content-type", ct);
                }
                if *b64 {
                    attr(&mut s, "encoding", "base64");
                    inner = base64(content);
                } else {
                    let text = std::str::from_utf8(content).expect("text content is UTF-8");
                    escape_text(text, &mut inner);
                }
            }
            Kind::Delete => {}
            Kind::Mkcol { parents } => {
                if let Some(p) = parents {
                    attr(&mut s, "parents", if *p { "true" } else { "false" });
                }
            }
            Kind::Copy {
                destination,
                overwrite,
                depth,
            } => {
                attr(&mut s, "destination", destination);
                if let Some(o) = overwrite {
                    attr(&mut s, "overwrite", if *o { "true" } else { "false" });
                }
                if let Some(d) = depth {
                    attr(&mut s, "depth", d);
                }
            }
            Kind::Move {
                destination,
                overwrite,
            } => {
                attr(&mut s, "destination", destination);
                if let Some(o) = overwrite {
                    attr(&mut s, "overwrite", if *o { "true" } else { "false" });
                }
            }
            Kind::PropPatch { set, remove } => {
                if !set.is_empty() {
                    inner.push_str("<D:set><D:prop>");
                    for (n, v) in set {
                        inner.push_str(&prop_element(n, Some(v)));
                    }
                    inner.push_str("</D:prop></D:set>");
                }
                if !remove.is_empty() {
                    inner.push_str("<D:remove><D:prop>");
                    for n in remove {
                        inner.push_str(&prop_element(n, None));
                    }
                    inner.push_str("</D:prop></D:remove>");
                }
            }
            Kind::PropFind(find) => match find {
                Find::Prop(names) => {
                    inner.push_str("<D:prop>");
                    for n in names {
                        inner.push_str(&prop_element(n, None));
                    }
                    inner.push_str("</D:prop>");
                }
                Find::PropName => inner.push_str("<D:propname/>"),
                Find::AllProp => inner.push_str("<D:allprop/>"),
            },
        }
        if inner.is_empty() {
            s.push_str("/>\n");
        } else {
            s.push('>');
            s.push_str(&inner);
            s.push_str("</b:");
            s.push_str(name);
            s.push_str(">\n");
        }
    }
    s.push_str("</b:batch>\n");
    s
}

fn json_batch(mode: Option<&str>, ops: &[Op]) -> String {
    let ops: Vec<Value> = ops
        .iter()
        .map(|op| {
            let mut v = match &op.kind {
                Kind::Put {
                    content,
                    content_type,
                    base64: b64,
                } => {
                    let mut v = if *b64 {
                        json!({"op": "put", "content_base64": base64(content)})
                    } else {
                        json!({"op": "put", "content": std::str::from_utf8(content).expect("UTF-8")})
                    };
                    if let Some(ct) = content_type {
                        v["content_type"] = ct.clone().into();
                    }
                    v
                }
                Kind::Delete => json!({"op": "delete"}),
                Kind::Mkcol { parents } => {
                    let mut v = json!({"op": "mkcol"});
                    if let Some(p) = parents {
                        v["parents"] = (*p).into();
                    }
                    v
                }
                Kind::Copy {
                    destination,
                    overwrite,
                    depth,
                } => {
                    let mut v = json!({"op": "copy", "destination": destination});
                    if let Some(o) = overwrite {
                        v["overwrite"] = (*o).into();
                    }
                    if let Some(d) = depth {
                        v["depth"] = (*d).into();
                    }
                    v
                }
                Kind::Move {
                    destination,
                    overwrite,
                } => {
                    let mut v = json!({"op": "move", "destination": destination});
                    if let Some(o) = overwrite {
                        v["overwrite"] = (*o).into();
                    }
                    v
                }
                Kind::PropPatch { set, remove } => {
                    let mut v = json!({"op": "proppatch"});
                    if !set.is_empty() {
                        let m: serde_json::Map<String, Value> = set
                            .iter()
                            .map(|(n, val)| (clark(n), Value::from(val.clone())))
                            .collect();
                        v["set"] = m.into();
                    }
                    if !remove.is_empty() {
                        v["remove"] = remove.iter().map(clark).collect::<Vec<_>>().into();
                    }
                    v
                }
                Kind::PropFind(find) => match find {
                    Find::Prop(names) => {
                        json!({"op": "propfind", "props": names.iter().map(clark).collect::<Vec<_>>()})
                    }
                    Find::PropName => json!({"op": "propfind", "propname": true}),
                    Find::AllProp => json!({"op": "propfind"}),
                },
            };
            v["href"] = op.href.clone().into();
            if let Some(i) = &op.if_header {
                v["if"] = i.clone().into();
            }
            v
        })
        .collect();
    let mut doc = json!({ "operations": ops });
    if let Some(m) = mode {
        doc["mode"] = m.into();
    }
    doc.to_string()
}

/// Request and answer formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fmt {
    Xml,
    Json,
}

fn render(fmt: Fmt, mode: Option<&str>, ops: &[Op]) -> (String, &'static str) {
    match fmt {
        Fmt::Xml => (xml_batch(mode, ops), "application/xml; charset=utf-8"),
        Fmt::Json => (json_batch(mode, ops), "application/json"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading answers.

/// One operation's answer, from XML or JSON.
#[derive(Debug, Clone)]
struct Answer {
    href: String,
    /// The status form (XML: absent for propstat answers; JSON: always present).
    status: Option<u16>,
    /// Conditions in Clark notation.
    error: Vec<String>,
    description: Option<String>,
    location: Option<String>,
    /// (status, property name in Clark notation → text value).
    propstats: Vec<(u16, BTreeMap<String, String>)>,
}

impl Answer {
    /// The operation's overall status: its status, or for propstat answers 200 when every
    /// group is 200 (PROPFIND: 200 and 404 groups), else the first other status.
    fn overall(&self) -> u16 {
        if let Some(s) = self.status {
            return s;
        }
        self.propstats
            .iter()
            .map(|(s, _)| *s)
            .find(|s| *s != 200 && *s != 404)
            .unwrap_or(200)
    }

    /// The status and value of property `name` (Clark notation).
    fn prop(&self, name: &str) -> Option<(u16, &str)> {
        self.propstats
            .iter()
            .find_map(|(s, m)| m.get(name).map(|v| (*s, v.as_str())))
    }

    fn prop_names(&self, status: u16) -> Vec<String> {
        self.propstats
            .iter()
            .filter(|(s, _)| *s == status)
            .flat_map(|(_, m)| m.keys().cloned())
            .collect()
    }
}

fn status_of_line(text: &str) -> u16 {
    let t = text.trim();
    t.strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {t:?}"))
}

fn dav_children<'a>(e: &'a Element, local: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
    e.elements().filter(move |c| c.name.is_dav(local))
}

/// Parses a batch 207 in XML, checking its structure.
fn parse_xml_answers(body: &[u8]) -> Vec<Answer> {
    let text = String::from_utf8_lossy(body);
    let root = parse_document(body, &Limits::default())
        .unwrap_or_else(|e| panic!("batch 207 does not parse ({e}): {text}"));
    assert!(root.name.is_dav("multistatus"), "root is {:?}", root.name);
    let mut out = Vec::new();
    for r in root.elements() {
        assert!(r.name.is_dav("response"), "unexpected {:?}: {text}", r.name);
        let hrefs: Vec<_> = dav_children(r, "href").collect();
        assert_eq!(hrefs.len(), 1, "one href per response: {text}");
        let statuses: Vec<_> = dav_children(r, "status").collect();
        assert!(statuses.len() <= 1, "at most one status: {text}");
        let propstats: Vec<(u16, BTreeMap<String, String>)> = dav_children(r, "propstat")
            .map(|ps| {
                let props: Vec<_> = dav_children(ps, "prop").collect();
                assert_eq!(props.len(), 1, "one prop per propstat: {text}");
                let st: Vec<_> = dav_children(ps, "status").collect();
                assert_eq!(st.len(), 1, "one status per propstat: {text}");
                let values = props[0]
                    .elements()
                    .map(|p| (clark(&p.name), p.text()))
                    .collect();
                (status_of_line(&st[0].text()), values)
            })
            .collect();
        assert!(
            statuses.len() == 1 || !propstats.is_empty(),
            "a status or propstats: {text}"
        );
        assert!(
            statuses.is_empty() || propstats.is_empty(),
            "not both a status and propstats: {text}"
        );
        let location = dav_children(r, "location").next().map(|l| {
            let h: Vec<_> = dav_children(l, "href").collect();
            assert_eq!(h.len(), 1, "one href in location: {text}");
            h[0].text()
        });
        out.push(Answer {
            href: hrefs[0].text(),
            status: statuses.first().map(|s| status_of_line(&s.text())),
            error: dav_children(r, "error")
                .flat_map(|e| e.elements().map(|c| clark(&c.name)))
                .collect(),
            description: dav_children(r, "responsedescription")
                .next()
                .map(Element::text),
            location,
            propstats,
        });
    }
    out
}

/// Parses a batch 207 in JSON.
fn parse_json_answers(body: &[u8]) -> Vec<Answer> {
    let text = String::from_utf8_lossy(body);
    let doc: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("batch JSON does not parse ({e}): {text}"));
    let list = doc["responses"]
        .as_array()
        .unwrap_or_else(|| panic!("no responses array: {text}"));
    list.iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
            let propstats = r
                .get("propstat")
                .map(|p| {
                    p.as_array()
                        .expect("propstat is an array")
                        .iter()
                        .map(|g| {
                            let status = g["status"].as_u64().expect("numeric status") as u16;
                            let props = g["props"]
                                .as_object()
                                .expect("props is an object")
                                .iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().expect("text value").to_owned())
                                })
                                .collect();
                            (status, props)
                        })
                        .collect()
                })
                .unwrap_or_default();
            Answer {
                href: s("href").expect("href"),
                status: Some(
                    r["status"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("numeric status in {r}"))
                        as u16,
                ),
                error: s("error")
                    .map(|e| vec![format!("{{DAV:}}{e}")])
                    .unwrap_or_default(),
                description: s("description"),
                location: s("location"),
                propstats,
            }
        })
        .collect()
}

/// A 207 batch answer in the format its Content-Type says, checked against `expect_json`.
fn answers(resp: &Resp, expect_json: bool) -> Vec<Answer> {
    assert_eq!(
        resp.status,
        207,
        "batch answered {}: {}",
        resp.status,
        resp.text()
    );
    let ctype = resp.header("content-type").unwrap_or("");
    if expect_json {
        assert!(
            ctype.starts_with("application/json"),
            "JSON answer expected, Content-Type {ctype:?}"
        );
        parse_json_answers(&resp.body)
    } else {
        assert!(
            ctype.starts_with("application/xml") || ctype.starts_with("text/xml"),
            "XML answer expected, Content-Type {ctype:?}"
        );
        parse_xml_answers(&resp.body)
    }
}

/// POSTs a raw body to `path`.
async fn post_raw(
    srv: &TestServer,
    path: &str,
    ctype: Option<&str>,
    body: String,
    headers: &[(&str, &str)],
) -> Resp {
    let mut r = srv.req("POST", path);
    if let Some(ct) = ctype {
        r = r.header("Content-Type", ct);
    }
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r.body(body).send().await
}

/// Sends a batch in `fmt_in`, asking for `fmt_out`, and reads the answers.
async fn run(
    srv: &TestServer,
    path: &str,
    fmt_in: Fmt,
    fmt_out: Fmt,
    mode: Option<&str>,
    ops: &[Op],
    headers: &[(&str, &str)],
) -> Vec<Answer> {
    let (body, ctype) = render(fmt_in, mode, ops);
    let mut h = headers.to_vec();
    if fmt_out == Fmt::Json {
        h.push(("Accept", "application/json"));
    }
    let resp = post_raw(srv, path, Some(ctype), body, &h).await;
    let a = answers(&resp, fmt_out == Fmt::Json);
    assert_eq!(
        a.len(),
        ops.len(),
        "one answer per operation: {}",
        resp.text()
    );
    a
}

/// Asserts the answers' overall statuses, with the whole list in the message.
fn assert_statuses(a: &[Answer], expected: &[u16]) {
    let got: Vec<u16> = a.iter().map(Answer::overall).collect();
    assert_eq!(got, expected, "statuses of {a:#?}");
}

async fn get_body(srv: &TestServer, path: &str) -> Option<Vec<u8>> {
    let r = srv.get(path).await;
    match r.status {
        200 => Some(r.body.to_vec()),
        404 => None,
        s => panic!("GET {path}: {s}"),
    }
}

fn dir_is_empty_or_absent(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut e) => e.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn assert_no_leftovers(srv: &TestServer) {
    let state = srv.state_dir();
    for sub in ["journal", "stash"] {
        let d = state.join(sub);
        assert!(
            dir_is_empty_or_absent(&d),
            "{} holds {:?}",
            d.display(),
            std::fs::read_dir(&d).map(|e| e.flatten().map(|x| x.file_name()).collect::<Vec<_>>())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Every operation, in every combination of request and answer format.

async fn every_operation(fmt_in: Fmt, fmt_out: Fmt) {
    let srv = TestServer::start().await;
    assert_eq!(srv.mkcol("/docs/").await.status, 201);
    assert_eq!(srv.put("/docs/old.txt", "old").await.status, 201);
    srv.set_prop("/docs/old.txt", "stale", "s").await;
    let png = [0x89u8, b'P', b'N', b'G', 0, 1, 2, 0xff, 0xfe, b'\n'];
    let ops = vec![
        /* 0 */ put_typed("a.txt", b"hello & <bye>", "text/plain", false),
        /* 1 */ put_typed("dot.png", &png, "image/png", true),
        /* 2 */ put("a.txt", b"hello again"),
        /* 3 */ put("/top.txt", b"top"),
        /* 4 */ mkcol("sub/", None),
        /* 5 */ mkcol("deep/x/y/", Some(true)),
        /* 6 */ mkcol("nope/z/", Some(false)),
        /* 7 */ put("deep/x/y/leaf.txt", b"leaf"),
        /* 8 */ copy("a.txt", "sub/a.txt", None, None),
        /* 9 */ copy("dot.png", "sub/a.txt", Some(false), None),
        /* 10 */ copy("dot.png", "sub/a.txt", Some(true), None),
        /* 11 */ copy("deep/", "shallow/", None, Some("0")),
        /* 12 */ copy("deep/", "/full/", Some(true), Some("infinity")),
        /* 13 */ mv("old.txt", "/moved.txt", None),
        /* 14 */ mv("/top.txt", "sub/top.txt", Some(false)),
        /* 15 */ delete("sub/a.txt"),
        /* 16 */ delete("missing.txt"),
        /* 17 */
        proppatch(
            "a.txt",
            &[(z("tag"), "red"), (z("color"), "blue")],
            &[z("stale")],
        ),
        /* 18 */ proppatch("/moved.txt", &[], &[z("stale")]),
        /* 19 */ proppatch("a.txt", &[(QName::dav("getetag"), "x")], &[]),
        /* 20 */
        propfind(
            "a.txt",
            Find::Prop(vec![
                QName::dav("getcontentlength"),
                z("tag"),
                z("color"),
                z("missing"),
            ]),
        ),
        /* 21 */ propfind("a.txt", Find::PropName),
        /* 22 */ propfind("dot.png", Find::AllProp),
        /* 23 */ propfind("missing.txt", Find::AllProp),
        /* 24 */ mkcol("sub/", None),
    ];
    let a = run(&srv, "/docs/", fmt_in, fmt_out, None, &ops, &[]).await;

    let hrefs: Vec<&str> = a.iter().map(|x| x.href.as_str()).collect();
    assert_eq!(
        hrefs,
        [
            "/docs/a.txt",
            "/docs/dot.png",
            "/docs/a.txt",
            "/top.txt",
            "/docs/sub/",
            "/docs/deep/x/y/",
            "/docs/nope/z/",
            "/docs/deep/x/y/leaf.txt",
            "/docs/a.txt",
            "/docs/dot.png",
            "/docs/dot.png",
            "/docs/deep/",
            "/docs/deep/",
            "/docs/old.txt",
            "/top.txt",
            "/docs/sub/a.txt",
            "/docs/missing.txt",
            "/docs/a.txt",
            "/moved.txt",
            "/docs/a.txt",
            "/docs/a.txt",
            "/docs/a.txt",
            "/docs/dot.png",
            "/docs/missing.txt",
            "/docs/sub/",
        ],
        "hrefs resolved and in request order"
    );
    assert_statuses(
        &a,
        &[
            201, 201, 204, 201, 201, 201, 409, 201, 201, 412, 204, 201, 201, 201, 201, 204, 404,
            200, 200, 403, 200, 200, 200, 404, 405,
        ],
    );

    // Locations: where something was created, copied or moved to.
    assert_eq!(a[0].location.as_deref(), Some("/docs/a.txt"));
    assert_eq!(a[3].location.as_deref(), Some("/top.txt"));
    assert_eq!(a[4].location.as_deref(), Some("/docs/sub/"));
    assert_eq!(a[5].location.as_deref(), Some("/docs/deep/x/y/"));
    assert_eq!(a[8].location.as_deref(), Some("/docs/sub/a.txt"));
    assert_eq!(a[12].location.as_deref(), Some("/full/"));
    assert_eq!(a[13].location.as_deref(), Some("/moved.txt"));
    assert_eq!(a[14].location.as_deref(), Some("/docs/sub/top.txt"));
    assert_eq!(a[6].location, None, "no location for a failure");
    assert!(a[6].description.is_some(), "failures carry a description");
    assert!(a[16].description.is_some(), "failures carry a description");

    // Content.
    assert_eq!(
        get_body(&srv, "/docs/a.txt").await.as_deref(),
        Some(&b"hello again"[..])
    );
    assert_eq!(
        get_body(&srv, "/docs/dot.png").await.as_deref(),
        Some(&png[..])
    );
    let r = srv.get("/docs/dot.png").await;
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(
        get_body(&srv, "/docs/sub/a.txt").await,
        None,
        "copied, overwritten, then deleted"
    );
    assert_eq!(get_body(&srv, "/top.txt").await, None, "moved away");
    assert_eq!(
        get_body(&srv, "/docs/sub/top.txt").await.as_deref(),
        Some(&b"top"[..])
    );
    assert_eq!(get_body(&srv, "/docs/old.txt").await, None, "moved away");
    assert_eq!(
        get_body(&srv, "/moved.txt").await.as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(
        get_body(&srv, "/full/x/y/leaf.txt").await.as_deref(),
        Some(&b"leaf"[..]),
        "depth infinity copies members"
    );
    assert!(srv.root().join("docs/shallow").is_dir());
    assert_eq!(
        common::dir_names(&srv.root().join("docs/shallow")),
        Vec::<String>::new(),
        "depth 0 copies the collection only"
    );
    assert!(!srv.root().join("docs/nope").exists());

    // Properties written by the batch, read back outside it.
    assert_eq!(
        srv.z_prop("/docs/a.txt", "tag").await.as_deref(),
        Some("red")
    );
    assert_eq!(
        srv.z_prop("/docs/a.txt", "color").await.as_deref(),
        Some("blue")
    );
    assert_eq!(srv.z_prop("/moved.txt", "stale").await, None, "removed");

    // The PROPPATCH answers carry their propstats.
    assert_eq!(a[17].prop("{urn:z}tag").map(|p| p.0), Some(200));
    assert_eq!(a[17].prop("{urn:z}stale").map(|p| p.0), Some(200));
    assert_eq!(a[19].prop("{DAV:}getetag").map(|p| p.0), Some(403));
    // The PROPFIND answers.
    assert_eq!(a[20].prop("{DAV:}getcontentlength"), Some((200, "11")));
    assert_eq!(a[20].prop("{urn:z}tag"), Some((200, "red")));
    assert_eq!(a[20].prop("{urn:z}color"), Some((200, "blue")));
    assert_eq!(a[20].prop("{urn:z}missing").map(|p| p.0), Some(404));
    let names = a[21].prop_names(200);
    for n in [
        "{DAV:}getetag",
        "{DAV:}getcontentlength",
        "{urn:z}tag",
        "{urn:z}color",
    ] {
        assert!(
            names.iter().any(|x| x == n),
            "propname lists {n}: {names:?}"
        );
    }
    assert!(
        a[21]
            .propstats
            .iter()
            .all(|(_, m)| m.values().all(String::is_empty)),
        "propname gives names only"
    );
    assert_eq!(a[22].prop("{DAV:}getcontentlength"), Some((200, "10")));
    assert_eq!(a[22].prop("{DAV:}getcontenttype"), Some((200, "image/png")));
    assert_eq!(a[22].prop("{urn:z}tag"), None);
    assert_no_leftovers(&srv);
}

#[tokio::test]
async fn every_operation_xml() {
    every_operation(Fmt::Xml, Fmt::Xml).await;
}

#[tokio::test]
async fn every_operation_json() {
    every_operation(Fmt::Json, Fmt::Json).await;
}

#[tokio::test]
async fn every_operation_xml_in_json_out() {
    every_operation(Fmt::Xml, Fmt::Json).await;
}

#[tokio::test]
async fn every_operation_json_in_xml_out() {
    every_operation(Fmt::Json, Fmt::Xml).await;
}

/// The examples of docs/batch.md, as written there (modulo the ellipsis in the lock token).
#[tokio::test]
async fn documented_examples_run() {
    let srv = TestServer::start().await;
    for d in ["/notes/", "/img/", "/tmp/", "/archive/"] {
        assert_eq!(srv.mkcol(d).await.status, 201);
    }
    assert_eq!(srv.put("/notes/old.txt", "old").await.status, 201);
    let xml = r#"<b:batch xmlns:b="urn:davit:batch" xmlns:D="DAV:" xmlns:z="urn:example:tags" mode="independent">
  <b:put href="notes/a.txt" content-type="text/plain">hello</b:put>
  <b:put href="img/dot.png" content-type="image/png" encoding="base64">iVBORw0KGgo=</b:put>
  <b:mkcol href="archive/2026/11/" parents="true"/>
  <b:copy href="notes/a.txt" destination="archive/2026/11/a.txt" overwrite="false" depth="infinity"/>
  <b:move href="notes/old.txt" destination="/archive/old.txt"/>
  <b:delete href="tmp/"/>
  <b:proppatch href="notes/a.txt">
    <D:set><D:prop><z:tag>red</z:tag></D:prop></D:set>
    <D:remove><D:prop><z:stale/></D:prop></D:remove>
  </b:proppatch>
  <b:propfind href="notes/a.txt"><D:prop><D:getetag/><z:tag/></D:prop></b:propfind>
</b:batch>"#;
    let r = post_raw(&srv, "/", Some("application/xml"), xml.into(), &[]).await;
    let a = answers(&r, false);
    assert_statuses(&a, &[201, 201, 201, 201, 201, 204, 200, 200]);
    assert_eq!(a[7].prop("{urn:example:tags}tag"), Some((200, "red")));
    assert_eq!(
        get_body(&srv, "/img/dot.png").await.as_deref(),
        Some(&[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'][..])
    );

    let json_doc = r#"{
  "mode": "stop-on-error",
  "operations": [
    {"op": "put", "href": "notes/b.txt", "content": "hello", "content_type": "text/plain"},
    {"op": "put", "href": "img/dot2.png", "content_base64": "iVBORw0KGgo="},
    {"op": "mkcol", "href": "archive/2027/11/", "parents": true},
    {"op": "copy", "href": "notes/b.txt", "destination": "archive/b.txt", "overwrite": false, "depth": "0"},
    {"op": "move", "href": "/archive/old.txt", "destination": "/notes/old.txt"},
    {"op": "proppatch", "href": "notes/b.txt", "set": {"{urn:example:tags}tag": "red"}, "remove": ["{urn:example:tags}stale"]},
    {"op": "propfind", "href": "notes/b.txt", "props": ["{DAV:}getetag", "{urn:example:tags}tag"]}
  ]
}"#;
    let r = post_raw(
        &srv,
        "/",
        Some("application/json"),
        json_doc.into(),
        &[("Accept", "application/json")],
    )
    .await;
    let a = answers(&r, true);
    assert_statuses(&a, &[201, 201, 201, 201, 201, 200, 200]);
    assert_eq!(a[6].prop("{urn:example:tags}tag"), Some((200, "red")));
    let etag = a[6].prop("{DAV:}getetag").expect("getetag").1.to_owned();
    assert_eq!(
        srv.head("/notes/b.txt").await.header("etag"),
        Some(etag.as_str())
    );
}

/// PUT `content-type` is part of the format, but davit derives getcontenttype from the file
/// name (a single PUT ignores Content-Type as well), so a type the name does not imply is lost.
#[tokio::test]
async fn put_content_type_is_kept() {
    let srv = TestServer::start().await;
    let ops = [put_typed("data.bin", b"# title\n", "text/markdown", false)];
    for fmt in [Fmt::Xml, Fmt::Json] {
        let a = run(&srv, "/", fmt, fmt, None, &ops, &[]).await;
        assert!(a[0].overall() < 300);
        let r = srv.get("/data.bin").await;
        assert_eq!(r.header("content-type"), Some("text/markdown"));
    }
}

// ---------------------------------------------------------------------------------------------
// Hrefs.

#[tokio::test]
async fn relative_and_absolute_hrefs() {
    let srv = TestServer::start().await;
    for d in ["/a/", "/a/b/", "/c/"] {
        assert_eq!(srv.mkcol(d).await.status, 201);
    }
    let ops = [
        put("rel.txt", b"1"),
        put("/abs.txt", b"2"),
        put("b/nested.txt", b"3"),
        put("/c/other.txt", b"4"),
        put("with%20space.txt", b"5"),
        copy("rel.txt", "/c/rel-copy.txt", None, None),
        mv("/abs.txt", "b/abs.txt", None),
    ];
    for (fmt, base) in [(Fmt::Xml, "/a/"), (Fmt::Json, "/a")] {
        // A collection URL without its trailing slash is still the base.
        let a = run(&srv, base, fmt, fmt, None, &ops, &[]).await;
        let hrefs: Vec<&str> = a.iter().map(|x| x.href.as_str()).collect();
        assert_eq!(
            hrefs,
            [
                "/a/rel.txt",
                "/abs.txt",
                "/a/b/nested.txt",
                "/c/other.txt",
                "/a/with%20space.txt",
                "/a/rel.txt",
                "/abs.txt"
            ],
            "{fmt:?} posted to {base}"
        );
        assert!(a.iter().all(|x| x.overall() < 300), "{a:#?}");
        assert_eq!(a[5].location.as_deref(), Some("/c/rel-copy.txt"));
        assert_eq!(a[6].location.as_deref(), Some("/a/b/abs.txt"));
        for (p, want) in [
            ("/a/rel.txt", "1"),
            ("/a/b/nested.txt", "3"),
            ("/c/other.txt", "4"),
            ("/c/rel-copy.txt", "1"),
            ("/a/b/abs.txt", "2"),
        ] {
            assert_eq!(
                get_body(&srv, p).await.as_deref(),
                Some(want.as_bytes()),
                "{p}"
            );
        }
        assert!(srv.root().join("a/with space.txt").is_file());
        assert_eq!(get_body(&srv, "/abs.txt").await, None);
    }
}

#[tokio::test]
async fn hostile_hrefs_are_refused_per_operation() {
    let srv = TestServer::start().await;
    assert_eq!(srv.mkcol("/a/").await.status, 201);
    let ops = [
        put("../escape.txt", b"x"),
        put("%2e%2e/escape2.txt", b"x"),
        put("ok.txt", b"ok"),
    ];
    let a = run(&srv, "/a/", Fmt::Xml, Fmt::Xml, None, &ops, &[]).await;
    for (i, raw) in ["/a/../escape.txt", "/a/%2e%2e/escape2.txt"]
        .iter()
        .enumerate()
    {
        // Refused like the equivalent single request.
        let single = srv.put(raw, "x").await.status;
        assert!((400..500).contains(&single), "single PUT {raw}: {single}");
        assert_eq!(a[i].overall(), single, "{a:#?}");
        assert!(a[i].description.is_some());
    }
    assert_eq!(a[2].overall(), 201);
    let parent = srv.root().parent().expect("root has a parent");
    assert!(!parent.join("escape.txt").exists());
    assert!(!parent.join("escape2.txt").exists());
    assert!(!srv.root().join("escape.txt").exists());
}

// ---------------------------------------------------------------------------------------------
// Locks: per-operation `if`, and the request's own If header.

#[tokio::test]
async fn per_operation_if_with_lock_token() {
    for fmt in [Fmt::Xml, Fmt::Json] {
        let srv = TestServer::start().await;
        assert_eq!(srv.put("/locked.txt", "v1").await.status, 201);
        assert_eq!(srv.put("/free.txt", "f").await.status, 201);
        let token = srv.lock_ok("/locked.txt", "exclusive", Some("0")).await;
        let with_token = format!("(<{token}>)");
        let ops = [
            put("locked.txt", b"no token"),
            put("free.txt", b"free"),
            put("locked.txt", b"v2").with_if(&with_token),
            proppatch("locked.txt", &[(z("tag"), "x")], &[]),
            proppatch("locked.txt", &[(z("tag"), "y")], &[]).with_if(&with_token),
            mv("locked.txt", "elsewhere.txt", None),
            delete("locked.txt").with_if("(<urn:uuid:00000000-0000-0000-0000-000000000000>)"),
            delete("locked.txt").with_if(&with_token),
        ];
        let a = run(&srv, "/", fmt, fmt, None, &ops, &[]).await;
        assert_statuses(&a, &[423, 204, 204, 423, 200, 423, 412, 204]);
        for i in [0, 5] {
            assert_eq!(
                a[i].error,
                ["{DAV:}lock-token-submitted"],
                "op {i} names the precondition: {a:#?}"
            );
        }
        // A PROPPATCH refused for a lock is a plain 423 too (no property was touched).
        assert_eq!(a[3].error, ["{DAV:}lock-token-submitted"], "{a:#?}");
        assert!(a[2].error.is_empty());
        assert_eq!(
            get_body(&srv, "/free.txt").await.as_deref(),
            Some(&b"free"[..])
        );
        assert_eq!(
            get_body(&srv, "/locked.txt").await,
            None,
            "deleted with the token"
        );
        assert_eq!(get_body(&srv, "/elsewhere.txt").await, None);
    }
}

#[tokio::test]
async fn request_if_header_applies_to_operations() {
    let srv = TestServer::start().await;
    assert_eq!(srv.mkcol("/d/").await.status, 201);
    assert_eq!(srv.put("/d/one.txt", "1").await.status, 201);
    assert_eq!(srv.put("/free.txt", "f").await.status, 201);
    let token = srv.lock_ok("/d/", "exclusive", Some("infinity")).await;
    let untagged = format!("(<{token}>)");

    // Without any token, every write under the lock is refused.
    let ops = [
        put("one.txt", b"2"),
        put("two.txt", b"2"),
        delete("one.txt"),
    ];
    let a = run(&srv, "/d/", Fmt::Xml, Fmt::Xml, None, &ops, &[]).await;
    assert_statuses(&a, &[423, 423, 423]);
    assert!(a.iter().all(|x| x.error == ["{DAV:}lock-token-submitted"]));

    // The request's If header submits the token to every operation.
    let a = run(
        &srv,
        "/d/",
        Fmt::Json,
        Fmt::Json,
        None,
        &ops,
        &[("If", &untagged)],
    )
    .await;
    assert_statuses(&a, &[204, 201, 204]);
    assert_eq!(
        get_body(&srv, "/d/two.txt").await.as_deref(),
        Some(&b"2"[..])
    );

    // A per-operation `if` replaces the request's header for that operation.
    let ops = [
        put("two.txt", b"3"),
        put("two.txt", b"4").with_if("(<urn:uuid:00000000-0000-0000-0000-000000000000>)"),
    ];
    let a = run(
        &srv,
        "/d/",
        Fmt::Xml,
        Fmt::Xml,
        None,
        &ops,
        &[("If", &untagged)],
    )
    .await;
    assert_statuses(&a, &[204, 412]);

    // A tagged list names the locked resource, so unrelated operations are unaffected.
    let tagged = format!("<{}> (<{token}>)", srv.url("/d/"));
    let ops = [put("/d/two.txt", b"5"), put("/free.txt", b"g")];
    let a = run(
        &srv,
        "/",
        Fmt::Xml,
        Fmt::Xml,
        None,
        &ops,
        &[("If", &tagged)],
    )
    .await;
    assert_statuses(&a, &[204, 204]);
    assert_eq!(
        get_body(&srv, "/d/two.txt").await.as_deref(),
        Some(&b"5"[..])
    );

    // An untagged token list applied to an unlocked resource does not hold: 412, like the
    // equivalent single PUT.
    let single = srv
        .req("PUT", "/free.txt")
        .header("If", &untagged)
        .body("h")
        .send()
        .await;
    let a = run(
        &srv,
        "/",
        Fmt::Xml,
        Fmt::Xml,
        None,
        &[put("/free.txt", b"h")],
        &[("If", &untagged)],
    )
    .await;
    assert_statuses(&a, &[single.status]);
}

#[tokio::test]
async fn per_operation_etag_condition() {
    let srv = TestServer::start().await;
    assert_eq!(srv.put("/e.txt", "v1").await.status, 201);
    let etag = srv
        .head("/e.txt")
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    let ops = [
        put("e.txt", b"v2").with_if("([\"not-the-etag\"])"),
        put("e.txt", b"v2, longer").with_if(&format!("([{etag}])")),
        put("e.txt", b"v3").with_if(&format!("([{etag}])")),
    ];
    let a = run(&srv, "/", Fmt::Xml, Fmt::Xml, None, &ops, &[]).await;
    assert_statuses(&a, &[412, 204, 412]);
    assert_eq!(
        get_body(&srv, "/e.txt").await.as_deref(),
        Some(&b"v2, longer"[..])
    );
}

// ---------------------------------------------------------------------------------------------
// Modes.

#[tokio::test]
async fn independent_tries_every_operation() {
    for (fmt, mode) in [(Fmt::Xml, None), (Fmt::Json, Some("independent"))] {
        let srv = TestServer::start().await;
        let ops = [
            put("a.txt", b"a"),
            put("missing/b.txt", b"b"),
            delete("nothing.txt"),
            put("c.txt", b"c"),
            mkcol("d/", None),
        ];
        let a = run(&srv, "/", fmt, fmt, mode, &ops, &[]).await;
        assert_statuses(&a, &[201, 409, 404, 201, 201]);
        assert_eq!(get_body(&srv, "/c.txt").await.as_deref(), Some(&b"c"[..]));
        assert!(srv.root().join("d").is_dir());
    }
}

/// Bodies of PUTs are staged ahead on another thread while earlier operations run; each
/// operation still sees exactly what the operations before it did: a collection moved away,
/// deleted and made again, a file created by the operation just before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_bodies_follow_the_batch_order() {
    let srv = TestServer::start().await;
    let mut ops = vec![
        mkcol("d/", None),
        put("d/a.txt", b"a"),
        mv("d/", "e/", None),
        put("d/b.txt", b"b"),
        put("e/c.txt", b"c"),
        delete("e/"),
        mkcol("e/", None),
        put("e/f.txt", b"f"),
        put("g.txt", b"g"),
        put("g.txt", b"g2"),
    ];
    let mut expected = vec![201, 201, 201, 409, 201, 204, 201, 201, 201, 204];
    // Enough new files after them that the stager is well ahead at some point.
    for i in 0..200 {
        ops.push(put(&format!("e/n{i:03}.txt"), format!("n{i}").as_bytes()));
        expected.push(201);
    }
    let a = run(&srv, "/", Fmt::Xml, Fmt::Xml, None, &ops, &[]).await;
    assert_statuses(&a, &expected);
    assert_eq!(get_body(&srv, "/d/b.txt").await, None);
    assert_eq!(get_body(&srv, "/e/a.txt").await, None);
    assert_eq!(get_body(&srv, "/e/c.txt").await, None);
    assert_eq!(get_body(&srv, "/e/f.txt").await.as_deref(), Some(&b"f"[..]));
    assert_eq!(get_body(&srv, "/g.txt").await.as_deref(), Some(&b"g2"[..]));
    for i in 0..200 {
        let want = format!("n{i}");
        assert_eq!(
            get_body(&srv, &format!("/e/n{i:03}.txt")).await.as_deref(),
            Some(want.as_bytes())
        );
    }
    let mut names = common::dir_names(&srv.root().join("e"));
    names.retain(|n| !n.starts_with('n'));
    assert_eq!(names, ["f.txt"]);
    assert!(!srv.root().join("d").exists());
}

/// After the failure that stops a `stop-on-error` batch, none of the later PUTs appears,
/// though their bodies may have been staged already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_on_error_leaves_no_staged_put_behind() {
    let srv = TestServer::start().await;
    let mut ops = vec![put("a.txt", b"a"), put("missing/b.txt", b"b")];
    let mut expected = vec![201, 409];
    for i in 0..100 {
        ops.push(put(&format!("later{i:03}.txt"), b"later"));
        expected.push(424);
    }
    let a = run(
        &srv,
        "/",
        Fmt::Xml,
        Fmt::Xml,
        Some("stop-on-error"),
        &ops,
        &[],
    )
    .await;
    assert_statuses(&a, &expected);
    let mut names = common::dir_names(srv.root());
    names.retain(|n| n != ".davit");
    assert_eq!(names, ["a.txt"]);
}

#[tokio::test]
async fn stop_on_error_answers_424_after_the_first_failure() {
    for fmt in [Fmt::Xml, Fmt::Json] {
        let srv = TestServer::start().await;
        let ops = [
            put("a.txt", b"a"),
            mkcol("d/", None),
            put("missing/b.txt", b"b"),
            put("c.txt", b"c"),
            delete("a.txt"),
            mkcol("e/", None),
        ];
        let a = run(&srv, "/", fmt, fmt, Some("stop-on-error"), &ops, &[]).await;
        assert_statuses(&a, &[201, 201, 409, 424, 424, 424]);
        let hrefs: Vec<&str> = a.iter().map(|x| x.href.as_str()).collect();
        assert_eq!(
            hrefs,
            ["/a.txt", "/d/", "/missing/b.txt", "/c.txt", "/a.txt", "/e/"]
        );
        assert!(a[3].description.is_some());
        // What ran stays; what followed the failure never ran.
        assert_eq!(get_body(&srv, "/a.txt").await.as_deref(), Some(&b"a"[..]));
        assert!(srv.root().join("d").is_dir());
        assert_eq!(get_body(&srv, "/c.txt").await, None);
        assert!(!srv.root().join("e").exists());
    }
}

#[tokio::test]
async fn stop_on_error_counts_a_failed_proppatch() {
    let srv = TestServer::start().await;
    assert_eq!(srv.put("/a.txt", "a").await.status, 201);
    let ops = [
        proppatch("a.txt", &[(QName::dav("getetag"), "x")], &[]),
        put("b.txt", b"b"),
    ];
    let a = run(
        &srv,
        "/",
        Fmt::Json,
        Fmt::Json,
        Some("stop-on-error"),
        &ops,
        &[],
    )
    .await;
    assert_statuses(&a, &[403, 424]);
    assert_eq!(get_body(&srv, "/b.txt").await, None);
}

#[tokio::test]
async fn atomic_commits_everything_on_success() {
    for fmt in [Fmt::Xml, Fmt::Json] {
        let srv = TestServer::start().await;
        write_file(srv.root(), "keep.txt", b"old keep");
        write_file(srv.root(), "gone.txt", b"old gone");
        write_file(srv.root(), "mv.txt", b"old mv");
        write_file(srv.root(), "tree/a/b.txt", b"b");
        srv.set_prop("/keep.txt", "tag", "before").await;
        srv.set_prop("/gone.txt", "tag", "gone").await;
        let ops = [
            put("new.txt", b"new"),
            put("keep.txt", b"new keep"),
            delete("gone.txt"),
            mv("mv.txt", "moved.txt", None),
            mkcol("made/deep/", Some(true)),
            copy("tree/", "made/tree/", None, None),
            delete("tree/"),
            proppatch("keep.txt", &[(z("tag"), "after"), (z("extra"), "e")], &[]),
            proppatch("new.txt", &[(z("fresh"), "f")], &[]),
        ];
        let a = run(&srv, "/", fmt, fmt, Some("atomic"), &ops, &[]).await;
        assert_statuses(&a, &[201, 204, 204, 201, 201, 201, 204, 200, 200]);
        assert_eq!(
            get_body(&srv, "/new.txt").await.as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(
            get_body(&srv, "/keep.txt").await.as_deref(),
            Some(&b"new keep"[..])
        );
        assert_eq!(get_body(&srv, "/gone.txt").await, None);
        assert_eq!(get_body(&srv, "/mv.txt").await, None);
        assert_eq!(
            get_body(&srv, "/moved.txt").await.as_deref(),
            Some(&b"old mv"[..])
        );
        assert!(srv.root().join("made/deep").is_dir());
        assert_eq!(
            get_body(&srv, "/made/tree/a/b.txt").await.as_deref(),
            Some(&b"b"[..])
        );
        assert!(!srv.root().join("tree").exists());
        assert_eq!(
            srv.z_prop("/keep.txt", "tag").await.as_deref(),
            Some("after")
        );
        assert_eq!(srv.z_prop("/keep.txt", "extra").await.as_deref(), Some("e"));
        assert_eq!(srv.z_prop("/new.txt", "fresh").await.as_deref(), Some("f"));
        assert_no_leftovers(&srv);
        // A resource created again where a deleted one was has no leftover properties.
        assert_eq!(srv.put("/gone.txt", "again").await.status, 201);
        assert_eq!(srv.z_prop("/gone.txt", "tag").await, None);
    }
}

/// Files and properties as a client sees them, to compare before and after.
async fn snapshot(srv: &TestServer, files: &[&str], props: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        out.push(format!("{f} = {:?}", get_body(srv, f).await));
    }
    for (path, name) in props {
        if get_body(srv, path).await.is_some() || path.ends_with('/') {
            out.push(format!(
                "{path} {name} = {:?}",
                srv.z_prop(path, name).await
            ));
        } else {
            out.push(format!("{path} {name} = <no resource>"));
        }
    }
    out
}

async fn atomic_rollback(fmt: Fmt) {
    let srv = TestServer::start().await;
    let big = random_bytes(200_000, 7);
    write_file(srv.root(), "keep.txt", b"old keep");
    write_file(srv.root(), "big.bin", &big);
    write_file(srv.root(), "gone.txt", b"old gone");
    write_file(srv.root(), "mv.txt", b"old mv");
    write_file(srv.root(), "target.txt", b"old target");
    write_file(srv.root(), "tree/a/b.txt", b"tree b");
    write_file(srv.root(), "tree/c.txt", b"tree c");
    write_file(srv.root(), "src.txt", b"copy source");
    srv.set_prop("/keep.txt", "tag", "before").await;
    srv.set_prop("/keep.txt", "doomed", "d").await;
    srv.set_prop("/gone.txt", "tag", "gone-tag").await;
    srv.set_prop("/mv.txt", "tag", "mv-tag").await;
    srv.set_prop("/tree/c.txt", "tag", "c-tag").await;
    srv.set_prop("/target.txt", "tag", "target-tag").await;
    let files = [
        "/keep.txt",
        "/big.bin",
        "/gone.txt",
        "/mv.txt",
        "/moved.txt",
        "/target.txt",
        "/tree/a/b.txt",
        "/tree/c.txt",
        "/src.txt",
        "/new.txt",
        "/made/new.txt",
        "/copied.txt",
        "/tree2/c.txt",
    ];
    let props = [
        ("/keep.txt", "tag"),
        ("/keep.txt", "doomed"),
        ("/keep.txt", "extra"),
        ("/gone.txt", "tag"),
        ("/mv.txt", "tag"),
        ("/tree/c.txt", "tag"),
        ("/target.txt", "tag"),
        ("/src.txt", "tag"),
    ];
    let before = snapshot(&srv, &files, &props).await;
    let root_names = common::dir_names(srv.root());

    let ops = [
        put("new.txt", b"created"),
        put("keep.txt", b"overwritten"),
        put_typed(
            "big.bin",
            b"\0\x01small now",
            "application/octet-stream",
            true,
        ),
        delete("gone.txt"),
        mv("mv.txt", "moved.txt", None),
        mv("src.txt", "target.txt", Some(true)),
        copy("keep.txt", "copied.txt", None, None),
        mkcol("made/deeper/", Some(true)),
        put("made/new.txt", b"in a new dir"),
        copy("tree/", "tree2/", None, None),
        delete("tree/"),
        proppatch(
            "keep.txt",
            &[(z("tag"), "after"), (z("extra"), "x")],
            &[z("doomed")],
        ),
        proppatch("new.txt", &[(z("fresh"), "f")], &[]),
        proppatch("moved.txt", &[(z("tag"), "moved-tag")], &[]),
        // The injected failure, last: a PUT into a missing parent.
        put("no/such/dir/x.txt", b"fails"),
    ];
    let a = run(&srv, "/", fmt, fmt, Some("atomic"), &ops, &[]).await;
    let mut expected = vec![424; ops.len()];
    *expected.last_mut().expect("ops") = 409;
    assert_statuses(&a, &expected);
    let hrefs: Vec<&str> = a.iter().map(|x| x.href.as_str()).collect();
    assert_eq!(hrefs[0], "/new.txt");
    assert_eq!(hrefs[14], "/no/such/dir/x.txt");
    assert!(a[..14].iter().all(|x| x.description.is_some()));
    assert!(a[..14].iter().all(|x| x.location.is_none()));

    let after = snapshot(&srv, &files, &props).await;
    assert_eq!(after, before, "the rolled-back batch left no trace");
    assert_eq!(
        std::fs::read(srv.root().join("big.bin")).expect("big.bin"),
        big,
        "byte for byte"
    );
    assert_eq!(
        common::dir_names(srv.root()),
        root_names,
        "no new names in the root"
    );
    assert_no_leftovers(&srv);

    // The server still works normally, including another atomic batch.
    let a = run(
        &srv,
        "/",
        fmt,
        fmt,
        Some("atomic"),
        &[put("new.txt", b"now"), delete("gone.txt")],
        &[],
    )
    .await;
    assert_statuses(&a, &[201, 204]);
    assert_eq!(
        get_body(&srv, "/new.txt").await.as_deref(),
        Some(&b"now"[..])
    );
    assert_no_leftovers(&srv);
}

#[tokio::test]
async fn atomic_rolls_back_after_injected_failure_xml() {
    atomic_rollback(Fmt::Xml).await;
}

#[tokio::test]
async fn atomic_rolls_back_after_injected_failure_json() {
    atomic_rollback(Fmt::Json).await;
}

#[tokio::test]
async fn atomic_failure_in_the_middle_leaves_later_operations_unrun() {
    let srv = TestServer::start().await;
    write_file(srv.root(), "x.txt", b"x");
    let ops = [
        put("a.txt", b"a"),
        delete("missing.txt"),
        put("b.txt", b"b"),
        delete("x.txt"),
    ];
    let a = run(&srv, "/", Fmt::Xml, Fmt::Xml, Some("atomic"), &ops, &[]).await;
    assert_statuses(&a, &[424, 404, 424, 424]);
    assert_eq!(get_body(&srv, "/a.txt").await, None);
    assert_eq!(get_body(&srv, "/b.txt").await, None);
    assert_eq!(get_body(&srv, "/x.txt").await.as_deref(), Some(&b"x"[..]));
    assert_no_leftovers(&srv);
}

#[tokio::test]
async fn atomic_lock_failure_rolls_back() {
    let srv = TestServer::start().await;
    write_file(srv.root(), "locked.txt", b"l");
    let token = srv.lock_ok("/locked.txt", "exclusive", Some("0")).await;
    let ops = [put("a.txt", b"a"), put("locked.txt", b"no token")];
    let a = run(&srv, "/", Fmt::Json, Fmt::Json, Some("atomic"), &ops, &[]).await;
    assert_statuses(&a, &[424, 423]);
    assert_eq!(a[1].error, ["{DAV:}lock-token-submitted"]);
    assert_eq!(get_body(&srv, "/a.txt").await, None);
    let ops = [
        put("a.txt", b"a"),
        put("locked.txt", b"with token").with_if(&format!("(<{token}>)")),
    ];
    let a = run(&srv, "/", Fmt::Json, Fmt::Json, Some("atomic"), &ops, &[]).await;
    assert_statuses(&a, &[201, 204]);
    assert_eq!(
        get_body(&srv, "/locked.txt").await.as_deref(),
        Some(&b"with token"[..])
    );
    assert_no_leftovers(&srv);
}

// ---------------------------------------------------------------------------------------------
// Malformed input.

#[tokio::test]
async fn malformed_operation_answers_400_in_place() {
    let srv = TestServer::start().await;
    let xml = r#"<b:batch xmlns:b="urn:davit:batch">
        <b:put href="a.txt">a</b:put>
        <b:frob href="q"/>
        <b:copy href="a.txt"/>
        <b:put href="b.txt" encoding="base64">***</b:put>
        <b:mkcol href="m/" parents="maybe"/>
        <b:delete/>
        <b:put href="c.txt">c</b:put>
    </b:batch>"#;
    let r = post_raw(&srv, "/", Some("text/xml"), xml.into(), &[]).await;
    let a = answers(&r, false);
    assert_statuses(&a, &[201, 400, 400, 400, 400, 400, 201]);
    assert_eq!(a[1].href, "/q");
    assert!(
        a[1].description
            .as_deref()
            .is_some_and(|d| d.contains("frob")),
        "{a:#?}"
    );
    assert!(a[2].description.is_some());
    assert_eq!(get_body(&srv, "/a.txt").await.as_deref(), Some(&b"a"[..]));
    assert_eq!(get_body(&srv, "/c.txt").await.as_deref(), Some(&b"c"[..]));
    assert_eq!(get_body(&srv, "/b.txt").await, None);

    let json_doc = r#"{"operations": [
        {"op": "put", "href": "d.txt", "content": "d"},
        {"op": "nope", "href": "z"},
        7,
        {"op": "put", "href": "e.txt", "content": "e", "content_base64": "ZQ=="},
        {"op": "proppatch", "href": "d.txt"},
        {"op": "propfind", "href": "d.txt", "props": ["{urn:z}"]},
        {"op": "delete", "href": "d.txt"}
    ]}"#;
    let r = post_raw(
        &srv,
        "/",
        Some("application/json; charset=utf-8"),
        json_doc.into(),
        &[("Accept", "application/json")],
    )
    .await;
    let a = answers(&r, true);
    assert_statuses(&a, &[201, 400, 400, 400, 400, 400, 204]);
    assert_eq!(a[1].href, "/z");
    assert_eq!(get_body(&srv, "/e.txt").await, None);
}

#[tokio::test]
async fn atomic_with_a_malformed_operation_runs_nothing() {
    for fmt in [Fmt::Xml, Fmt::Json] {
        let srv = TestServer::start().await;
        write_file(srv.root(), "x.txt", b"x");
        let (body, ctype) = match fmt {
            Fmt::Xml => (
                r#"<b:batch xmlns:b="urn:davit:batch" mode="atomic">
                    <b:put href="a.txt">a</b:put>
                    <b:delete href="x.txt"/>
                    <b:frob href="q"/>
                    <b:mkcol href="m/"/>
                </b:batch>"#,
                "application/xml",
            ),
            Fmt::Json => (
                r#"{"mode": "atomic", "operations": [
                    {"op": "put", "href": "a.txt", "content": "a"},
                    {"op": "delete", "href": "x.txt"},
                    {"op": "frob", "href": "q"},
                    {"op": "mkcol", "href": "m/"}
                ]}"#,
                "application/json",
            ),
        };
        let r = post_raw(&srv, "/", Some(ctype), body.into(), &[]).await;
        let a = answers(&r, false);
        assert_statuses(&a, &[424, 424, 400, 424]);
        assert_eq!(get_body(&srv, "/a.txt").await, None);
        assert_eq!(get_body(&srv, "/x.txt").await.as_deref(), Some(&b"x"[..]));
        assert!(!srv.root().join("m").exists());
        assert_no_leftovers(&srv);
    }
}

#[tokio::test]
async fn malformed_documents_answer_400_as_a_whole() {
    let srv = TestServer::start().await;
    let cases: &[(&str, &str)] = &[
        (
            "application/xml",
            "<b:batch xmlns:b='urn:davit:batch'><b:put href='a'>",
        ),
        ("application/xml", "not xml at all"),
        ("application/xml", ""),
        (
            "application/xml",
            "<batch><put href='a.txt'>a</put></batch>",
        ),
        ("application/xml", "<b:other xmlns:b='urn:davit:batch'/>"),
        (
            "application/xml",
            "<b:batch xmlns:b='urn:davit:batch' mode='sometimes'/>",
        ),
        ("application/json", "{"),
        ("application/json", "[]"),
        ("application/json", "{\"operations\": {}}"),
        ("application/json", "{\"mode\": \"x\", \"operations\": []}"),
        ("application/json", "{\"mode\": 1, \"operations\": []}"),
        ("application/json", ""),
    ];
    for (ctype, body) in cases {
        let r = post_raw(&srv, "/", Some(ctype), (*body).into(), &[]).await;
        assert_eq!(r.status, 400, "{ctype} {body:?}: {}", r.text());
    }
    assert_eq!(common::dir_names(srv.root()), Vec::<String>::new());
}

#[tokio::test]
async fn a_content_type_that_says_something_else_is_415() {
    let srv = TestServer::start().await;
    let body = xml_batch(None, &[put("a.txt", b"a")]);
    // Without a type, or form-encoded, the document is recognised by its content (below).
    for ctype in [
        Some("text/plain"),
        Some("application/octet-stream"),
        Some("image/png"),
    ] {
        let r = post_raw(&srv, "/", ctype, body.clone(), &[]).await;
        assert_eq!(r.status, 415, "{ctype:?}: {}", r.text());
    }
    assert_eq!(get_body(&srv, "/a.txt").await, None);
}

#[tokio::test]
async fn post_to_a_file_is_405_and_to_nothing_404() {
    let srv = TestServer::start().await;
    assert_eq!(srv.put("/f.txt", "f").await.status, 201);
    let body = xml_batch(None, &[put("a.txt", b"a")]);
    let r = post_raw(&srv, "/f.txt", Some("application/xml"), body.clone(), &[]).await;
    assert_eq!(r.status, 405, "{}", r.text());
    let allow = r.header("allow").unwrap_or("");
    assert!(
        !allow.split(',').any(|m| m.trim() == "POST"),
        "a file does not allow POST: {allow:?}"
    );
    let r = post_raw(&srv, "/none/", Some("application/xml"), body, &[]).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(get_body(&srv, "/a.txt").await, None);
    assert_eq!(get_body(&srv, "/none/a.txt").await, None);
}

// ---------------------------------------------------------------------------------------------
// Limits.

#[tokio::test]
async fn over_batch_max_ops_is_413() {
    let config = DavConfig {
        batch_max_ops: 3,
        ..DavConfig::default()
    };
    let srv = TestServer::with_config(config).await;
    let three: Vec<Op> = (0..3).map(|i| put(&format!("f{i}.txt"), b"x")).collect();
    let four: Vec<Op> = (0..4).map(|i| put(&format!("g{i}.txt"), b"x")).collect();
    for fmt in [Fmt::Xml, Fmt::Json] {
        for mode in [None, Some("atomic")] {
            let (body, ctype) = render(fmt, mode, &four);
            let r = post_raw(&srv, "/", Some(ctype), body, &[]).await;
            assert_eq!(r.status, 413, "{fmt:?} {mode:?}: {}", r.text());
        }
        let a = run(&srv, "/", fmt, fmt, None, &three, &[]).await;
        assert_eq!(a.len(), 3);
    }
    assert!(
        !srv.root().join("g0.txt").exists(),
        "nothing of a refused batch runs"
    );
}

#[tokio::test]
async fn over_batch_max_body_is_413() {
    let config = DavConfig {
        batch_max_body: 2048,
        ..DavConfig::default()
    };
    let srv = TestServer::with_config(config).await;
    let big = "x".repeat(3000);
    for fmt in [Fmt::Xml, Fmt::Json] {
        let (body, ctype) = render(fmt, None, &[put("big.txt", big.as_bytes())]);
        let r = post_raw(&srv, "/", Some(ctype), body, &[]).await;
        assert_eq!(r.status, 413, "{fmt:?}: {}", r.text());
        // Also when the body is chunked (no Content-Length announcing it).
        let (body, ctype) = render(fmt, None, &[put("big.txt", big.as_bytes())]);
        let raw = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            srv.host(),
            body.len()
        );
        let r = srv.raw_resp(raw.as_bytes()).await;
        assert_eq!(r.status, 413, "{fmt:?} chunked");
        let (body, ctype) = render(fmt, None, &[put("small.txt", b"s")]);
        assert!(body.len() < 2048);
        let r = post_raw(&srv, "/", Some(ctype), body, &[]).await;
        assert_eq!(answers(&r, false).len(), 1);
    }
    assert!(!srv.root().join("big.txt").exists());
}

// ---------------------------------------------------------------------------------------------
// Order and scale.

#[tokio::test]
async fn responses_in_request_order_one_per_operation() {
    let srv = TestServer::start().await;
    assert_eq!(srv.mkcol("/m/").await.status, 201);
    // A mix of names in no sorted order, each written, read and deleted.
    let names: Vec<String> = (0..200)
        .map(|i| format!("f{:03}.txt", (i * 37) % 200))
        .collect();
    let mut ops = Vec::new();
    for n in &names {
        ops.push(put(n, n.as_bytes()));
    }
    for n in names.iter().rev() {
        ops.push(propfind(
            n,
            Find::Prop(vec![QName::dav("getcontentlength")]),
        ));
    }
    for n in names.iter().step_by(2) {
        ops.push(delete(n));
    }
    for fmt in [Fmt::Xml, Fmt::Json] {
        for mode in [None, Some("stop-on-error"), Some("atomic")] {
            let srv_path = "/m/";
            // Start from an empty collection each time.
            assert!(srv.delete("/m/").await.status < 300);
            assert_eq!(srv.mkcol("/m/").await.status, 201);
            let a = run(&srv, srv_path, fmt, fmt, mode, &ops, &[]).await;
            let expected: Vec<String> = ops.iter().map(|o| format!("/m/{}", o.href)).collect();
            let got: Vec<String> = a.iter().map(|x| x.href.clone()).collect();
            assert_eq!(got, expected, "{fmt:?} {mode:?}");
            assert!(a[..200].iter().all(|x| x.overall() == 201));
            assert!(a[200..400].iter().all(|x| x.overall() == 200));
            assert!(a[400..].iter().all(|x| x.overall() == 204));
            assert_eq!(a[200].prop("{DAV:}getcontentlength"), Some((200, "8")));
            assert_eq!(common::dir_names(&srv.root().join("m")).len(), 100);
        }
    }
    assert_no_leftovers(&srv);
}

#[tokio::test]
async fn a_batch_cannot_contain_post() {
    // There is no post operation; an unknown element in the batch namespace is malformed,
    // and elements of other namespaces are ignored.
    let srv = TestServer::start().await;
    let xml = r#"<b:batch xmlns:b="urn:davit:batch" xmlns:o="urn:other">
        <b:post href="./"/>
        <o:put href="ignored.txt">i</o:put>
        <b:put href="a.txt">a</b:put>
    </b:batch>"#;
    let r = post_raw(&srv, "/", Some("application/xml"), xml.into(), &[]).await;
    let a = answers(&r, false);
    assert_statuses(&a, &[400, 201]);
    assert_eq!(get_body(&srv, "/ignored.txt").await, None);
}

// ---------------------------------------------------------------------------------------------
// A client that goes away in the middle of an atomic batch.

fn journal_records(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .map(|t| t.lines().count())
                .unwrap_or(0)
        })
        .sum()
}

/// Starts an atomic batch of `n` small PUTs (then an overwrite of `keep.txt`) on a raw
/// connection and closes the connection once the journal holds some records.
async fn abandon_atomic_batch(srv: &TestServer, n: usize) {
    use tokio::io::AsyncWriteExt;
    let mut ops: Vec<Op> = (0..n)
        .map(|i| put(&format!("f{i:04}.txt"), format!("file {i}").as_bytes()))
        .collect();
    ops.push(put("keep.txt", b"new keep"));
    let body = xml_batch(Some("atomic"), &ops);
    let mut s = srv.connect().await;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        srv.host(),
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(body.as_bytes()).await.expect("body");
    let journal = srv.state_dir().join("journal");
    let mut seen = 0;
    for _ in 0..1000 {
        seen = journal_records(&journal);
        if seen >= 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen >= 20, "the batch started journaling");
    drop(s); // the client goes away
}

/// The batch must settle (commit or roll back) even when nobody waits for its answer: a
/// half-applied batch must not stay visible, and its journal must not linger until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_batch_settles_when_the_client_disconnects() {
    let srv = TestServer::start().await;
    write_file(srv.root(), "keep.txt", b"old keep");
    // Small enough to settle quickly on a loaded 2-core machine in a debug build.
    let n = 1000;
    abandon_atomic_batch(&srv, n).await;
    let journal = srv.state_dir().join("journal");
    // Give the server time to settle the batch either way.
    let mut settled = false;
    for _ in 0..300 {
        if dir_is_empty_or_absent(&journal) {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let files = common::dir_names(srv.root());
    let created = files.iter().filter(|f| f.starts_with('f')).count();
    let keep = std::fs::read(srv.root().join("keep.txt")).expect("keep.txt");
    assert!(
        settled,
        "30 s after the client left, the journal still holds {} records; {created} of {n} \
         files of the batch are visible and keep.txt is {:?}",
        journal_records(&journal),
        String::from_utf8_lossy(&keep)
    );
    if keep == b"new keep" {
        assert_eq!(created, n, "committed: every file is there");
    } else {
        assert_eq!(keep, b"old keep");
        assert_eq!(created, 0, "rolled back: no file is there");
    }
    assert_no_leftovers(&srv);
}

/// Consequence of the bug above: the abandoned journal is replayed at the next start and
/// undoes writes that other clients made in the meantime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_writes_survive_a_restart_after_an_abandoned_batch() {
    let srv = TestServer::start().await;
    write_file(srv.root(), "keep.txt", b"old keep");
    abandon_atomic_batch(&srv, 1000).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // Another client writes one of the files the abandoned batch had created.
    let r = srv.put("/f0000.txt", "written later").await;
    assert!(r.status < 300, "PUT answered {}", r.status);
    let dirs = srv.stop().await;
    let srv = TestServer::launch(dirs, DavConfig::default()).await;
    assert_eq!(
        get_body(&srv, "/f0000.txt").await.as_deref(),
        Some(&b"written later"[..]),
        "a write acknowledged after the batch was abandoned survives a restart"
    );
}

/// In independent mode the answer streams: the first response arrives while later operations
/// have not run yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_answers_stream_as_operations_complete() {
    use tokio::io::AsyncWriteExt;
    let srv = TestServer::start().await;
    let n = 1500;
    let ops: Vec<Op> = (0..n)
        .map(|i| put(&format!("s{i:04}.txt"), format!("file {i}").as_bytes()))
        .collect();
    let body = xml_batch(None, &ops);
    let mut s = srv.connect().await;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        srv.host(),
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(body.as_bytes()).await.expect("body");
    let first = common::read_until(&mut s, b"</D:response>").await;
    let done_at_first = common::dir_names(srv.root()).len();
    assert!(
        common::find(&first, b"HTTP/1.1 207").is_some(),
        "{}",
        String::from_utf8_lossy(&first)
    );
    assert!(
        done_at_first < n,
        "the first response came only after all {n} operations had run"
    );
    let mut rest = first;
    let read = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => rest.extend_from_slice(&buf[..k]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the whole answer arrived in time");
    let r = common::RawResp::parse(&rest);
    assert_eq!(r.status, 207);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let decoded = dechunk(&r.body);
    let a = parse_xml_answers(&decoded);
    assert_eq!(a.len(), n);
    assert!(a.iter().all(|x| x.overall() == 201));
    assert_eq!(common::dir_names(srv.root()).len(), n);
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = common::find(rest, b"\r\n").expect("chunk size line");
        let size_text = std::str::from_utf8(&rest[..eol]).expect("ASCII chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        rest = &rest[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_memory_are_bounded_and_the_next_one_waits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // 300 MiB documents allowed: only one fits the 512 MiB all batches may take together.
    let srv = TestServer::with_config(DavConfig {
        batch_max_body: 300 << 20,
        ..Default::default()
    })
    .await;
    let doc = br#"{"operations":[{"op":"mkcol","href":"a/"}]}"#;
    let head = |len: usize| {
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    // The first batch's document is half sent.
    let mut first = srv.connect().await;
    first.write_all(head(doc.len()).as_bytes()).await.unwrap();
    first.write_all(&doc[..10]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = tokio::spawn({
        let mut c = srv.connect().await;
        async move {
            c.write_all(head(doc.len()).as_bytes()).await.unwrap();
            c.write_all(doc).await.unwrap();
            let mut out = Vec::new();
            c.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).into_owned()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "two batches in memory over the bound"
    );
    first.write_all(&doc[10..]).await.unwrap();
    let mut out = Vec::new();
    first.read_to_end(&mut out).await.unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 207"));
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("the second batch ran once the first was done")
        .unwrap();
    assert!(second.starts_with("HTTP/1.1 207"), "{second}");
}

// ---------------------------------------------------------------------------------------------
// The batch examples of 207 tutorials: `curl -d @batch-data.xml URL/batch-operation` (sent as
// application/x-www-form-urlencoded), PHP's CURLOPT_POSTFIELDS (the same), Python's
// `requests.post(url, data=f)` (no Content-Type at all).

const TUTORIAL_XML: &str = r#"<?xml version="1.0"?>
<b:batch xmlns:b="urn:davit:batch"><b:mkcol href="docs/"/><b:put href="docs/a.txt">alpha</b:put><b:delete href="missing.txt"/></b:batch>"#;

/// The status of each response, in order.
fn statuses(r: &Resp) -> Vec<Option<u16>> {
    r.ms().responses.iter().map(|x| x.status).collect()
}

/// Regression: a batch POSTed the way the tutorials do got 415 (form-encoded or no
/// Content-Type) or 404 (the dedicated path).
#[tokio::test]
async fn tutorial_batches_without_a_batch_content_type_get_207_at_the_batch_endpoint() {
    for ctype in [Some("application/x-www-form-urlencoded"), None] {
        let s = TestServer::start().await;
        let mut req = s.req("POST", "/batch-operation").body(TUTORIAL_XML);
        if let Some(t) = ctype {
            req = req.header("Content-Type", t);
        }
        let r = req.send().await;
        assert_eq!(
            statuses(&r),
            vec![Some(201), Some(201), Some(404)],
            "{ctype:?}"
        );
        assert_eq!(s.disk("docs/a.txt").as_deref(), Some("alpha"));
        assert!(!s.root().join("batch-operation").exists());
    }
}

#[tokio::test]
async fn a_json_batch_without_content_type_is_recognised_by_its_operations() {
    let s = TestServer::start().await;
    let doc = r#"{"operations":[{"op":"put","href":"j.txt","content":"json"}]}"#;
    let r = s.req("POST", "/batch-operation").body(doc).send().await;
    assert_eq!(statuses(&r), vec![Some(201)]);
    assert_eq!(s.disk("j.txt").as_deref(), Some("json"));
    // Posted to a collection, without a type, relative to that collection.
    assert_eq!(s.mkcol("/c/").await.status, 201);
    let r = s
        .req("POST", "/c/")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(doc)
        .send()
        .await;
    assert_eq!(statuses(&r), vec![Some(201)]);
    assert_eq!(s.disk("c/j.txt").as_deref(), Some("json"));
}

#[tokio::test]
async fn a_body_that_is_no_batch_without_a_batch_content_type_gets_415() {
    let s = TestServer::start().await;
    for body in [
        "name=value&x=1",
        r#"<a xmlns="urn:other"/>"#,
        r#"{"ops":[]}"#,
        "",
    ] {
        let r = s
            .req("POST", "/batch-operation")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        assert_eq!(r.status, 415, "{body:?}: {}", r.text());
    }
    let r = s
        .req("POST", "/batch-operation")
        .header("Content-Type", "image/png")
        .body(TUTORIAL_XML)
        .send()
        .await;
    assert_eq!(r.status, 415);
    assert!(s.snapshot().is_empty(), "{:?}", s.snapshot());
}

#[tokio::test]
async fn a_resource_at_the_batch_endpoint_path_wins() {
    let s = TestServer::start().await;
    assert_eq!(s.put("/batch-operation", "a file").await.status, 201);
    let r = s
        .req("POST", "/batch-operation")
        .body(TUTORIAL_XML)
        .send()
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(s.delete("/batch-operation").await.status, 204);
    assert_eq!(s.mkcol("/batch-operation/").await.status, 201);
    let r = s
        .req("POST", "/batch-operation")
        .body(TUTORIAL_XML)
        .send()
        .await;
    assert_eq!(statuses(&r), vec![Some(201), Some(201), Some(404)]);
    assert_eq!(
        s.disk("batch-operation/docs/a.txt").as_deref(),
        Some("alpha")
    );
}

#[tokio::test]
async fn the_batch_endpoint_can_be_moved_or_turned_off() {
    let moved = DavConfig {
        batch_endpoint: "/api/batch".into(),
        ..DavConfig::default()
    };
    let s = TestServer::with_config(moved).await;
    assert_eq!(
        s.req("POST", "/batch-operation")
            .body(TUTORIAL_XML)
            .send()
            .await
            .status,
        404
    );
    let r = s.req("POST", "/api/batch").body(TUTORIAL_XML).send().await;
    assert_eq!(statuses(&r), vec![Some(201), Some(201), Some(404)]);
    let off = DavConfig {
        batch_endpoint: String::new(),
        ..DavConfig::default()
    };
    let s = TestServer::with_config(off).await;
    assert_eq!(
        s.req("POST", "/batch-operation")
            .body(TUTORIAL_XML)
            .send()
            .await
            .status,
        404
    );
}
