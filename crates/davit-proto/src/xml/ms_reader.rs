//! A streaming reader for `207 Multi-Status` bodies (RFC 4918 §13, §14.16).
//!
//! [`MultistatusReader`] pulls from any [`BufRead`] and yields one [`Response`] at a time, as
//! soon as its closing tag has been read: only the response being read is held in memory, so a
//! listing of a million resources costs what one resource costs. It is sans-I/O in the sense
//! that it never opens anything itself; the client feeds it an HTTP body.
//!
//! It reads exactly what servers send, not just what davit sends: both response forms (one
//! `status` for the whole resource, or `propstat` groups each with its own status), `error`
//! conditions, `responsedescription`, `location`, status lines of any HTTP version, and `DAV:`
//! under any prefix or as the default namespace. Anything malformed is an [`XmlError`], never a
//! panic: the body comes from the network.

use super::tree::{check_chars, read_error, ref_char};
use super::{Element, Node, QName, XmlError};
use crate::status::parse_status_line;
use quick_xml::events::{BytesStart, Event};
use quick_xml::NsReader;
use std::io::BufRead;
use std::time::SystemTime;

/// Bounds on what one `response` may cost. The document as a whole is unbounded (it is read
/// response by response), but a single hostile response must not be.
#[derive(Clone, Copy, Debug)]
pub struct ReaderLimits {
    /// Maximum element nesting, counted from the document root.
    pub max_depth: usize,
    /// Maximum number of elements inside one `response` (or any other child of `multistatus`).
    pub max_elements: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_depth: 64,
            max_elements: 100_000,
        }
    }
}

/// One `propstat` group: properties that share a status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropStat {
    /// The status code of the group (`HTTP/1.1 404 Not Found` gives 404).
    pub status: u16,
    /// The property elements inside `prop`, names resolved, values as trees.
    pub props: Vec<Element>,
    /// Names of the conditions inside the group's `error` element, if any.
    pub error: Vec<QName>,
    /// The group's `responsedescription`.
    pub description: Option<String>,
}

/// One `response` of a Multi-Status body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The first `href`, exactly as written (still percent-encoded, maybe relative).
    pub href: String,
    /// Further `href`s that share the status (the `href*, status` form).
    pub extra_hrefs: Vec<String>,
    /// The status of the whole resource, when the response uses that form.
    pub status: Option<u16>,
    /// The `propstat` groups, when the response uses that form.
    pub propstats: Vec<PropStat>,
    /// Names of the conditions in the response's `error` element (e.g.
    /// `{DAV:}lock-token-submitted`).
    pub error: Vec<QName>,
    /// The `responsedescription`.
    pub description: Option<String>,
    /// The `href` inside `location` (a redirect for this resource).
    pub location: Option<String>,
}

/// The live properties a client usually wants, read into Rust types.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveProps {
    /// `getcontentlength`.
    pub size: Option<u64>,
    /// `getetag`, quotes included.
    pub etag: Option<String>,
    /// `getlastmodified`.
    pub modified: Option<SystemTime>,
    /// `getcontenttype`.
    pub content_type: Option<String>,
    /// `resourcetype` contains `collection`.
    pub is_collection: bool,
    /// `creationdate` as written (RFC 3339).
    pub created: Option<String>,
    /// `displayname`.
    pub display_name: Option<String>,
    /// `resource-id` (RFC 5842): the href naming the resource whichever URL reaches it.
    pub resource_id: Option<String>,
    /// `parent-set` (RFC 5842): each binding as (parent collection href, segment).
    pub parents: Option<Vec<(String, String)>>,
    /// `quota-used-bytes` (RFC 4331).
    pub quota_used: Option<u64>,
    /// `quota-available-bytes` (RFC 4331).
    pub quota_available: Option<u64>,
    /// `current-user-privilege-set` (RFC 3744 §5.4): the privilege names (`{ns}name` outside
    /// `DAV:`), in the server's order.
    pub privileges: Option<Vec<String>>,
}

impl Response {
    /// Properties reported with a 2xx status.
    pub fn found_props(&self) -> impl Iterator<Item = &Element> {
        self.propstats
            .iter()
            .filter(|p| (200..300).contains(&p.status))
            .flat_map(|p| p.props.iter())
    }

    /// The property `name` when it was reported with a 2xx status.
    pub fn prop(&self, name: &QName) -> Option<&Element> {
        self.found_props().find(|e| &e.name == name)
    }

    /// The typed live properties found in the 2xx groups.
    pub fn live(&self) -> LiveProps {
        let text = |local: &str| {
            self.prop(&QName::dav(local))
                .map(|e| e.text().trim().to_owned())
        };
        LiveProps {
            size: text("getcontentlength").and_then(|s| s.parse().ok()),
            etag: text("getetag").filter(|s| !s.is_empty()),
            modified: text("getlastmodified").and_then(|s| crate::date::parse_http_date(&s)),
            content_type: text("getcontenttype").filter(|s| !s.is_empty()),
            is_collection: self
                .prop(&QName::dav("resourcetype"))
                .is_some_and(|rt| rt.elements().any(|e| e.name.is_dav("collection"))),
            created: text("creationdate").filter(|s| !s.is_empty()),
            display_name: self
                .prop(&QName::dav("displayname"))
                .map(|e| e.text())
                .filter(|s| !s.is_empty()),
            resource_id: self
                .prop(&QName::dav("resource-id"))
                .and_then(|e| e.elements().find(|h| h.name.is_dav("href")))
                .map(|h| h.text().trim().to_owned()),
            parents: self.prop(&QName::dav("parent-set")).map(|e| {
                e.elements()
                    .filter(|p| p.name.is_dav("parent"))
                    .map(|p| {
                        let child = |local: &str| {
                            p.elements()
                                .find(|c| c.name.is_dav(local))
                                .map(|c| c.text().trim().to_owned())
                                .unwrap_or_default()
                        };
                        (child("href"), child("segment"))
                    })
                    .collect()
            }),
            quota_used: text("quota-used-bytes").and_then(|s| s.parse().ok()),
            quota_available: text("quota-available-bytes").and_then(|s| s.parse().ok()),
            privileges: self
                .prop(&QName::dav("current-user-privilege-set"))
                .map(|e| {
                    e.elements()
                        .filter(|p| p.name.is_dav("privilege"))
                        .filter_map(|p| p.elements().next())
                        .map(|n| {
                            if n.name.ns == super::DAV {
                                n.name.local.clone()
                            } else {
                                format!("{{{}}}{}", n.name.ns, n.name.local)
                            }
                        })
                        .collect()
                }),
        }
    }

    /// The status of the resource itself: its own `status` when the response has one, else
    /// 200. In the `propstat` form the resource was found and the group statuses belong to
    /// properties (a 404 group only says a property is absent), so they are not folded in.
    pub fn effective_status(&self) -> u16 {
        self.status.unwrap_or(200)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the root element.
    Prolog,
    /// Inside `multistatus`, between its children.
    Body,
    /// After the end of `multistatus`, or after an error.
    Done,
}

/// Pulls [`Response`]s out of a Multi-Status body one at a time.
///
/// ```
/// use davit_proto::xml::MultistatusReader;
/// let body = br#"<multistatus xmlns="DAV:"><response><href>/a</href>
///   <status>HTTP/1.1 423 Locked</status></response></multistatus>"#;
/// let mut r = MultistatusReader::new(&body[..]);
/// let first = r.next_response().unwrap().unwrap();
/// assert_eq!((first.href.as_str(), first.status), ("/a", Some(423)));
/// assert!(r.next_response().unwrap().is_none());
/// ```
pub struct MultistatusReader<R> {
    reader: NsReader<R>,
    buf: Vec<u8>,
    limits: ReaderLimits,
    state: State,
    description: Option<String>,
    sync_token: Option<String>,
}

impl<R: BufRead> MultistatusReader<R> {
    /// A reader with default [`ReaderLimits`].
    pub fn new(input: R) -> Self {
        Self::with_limits(input, ReaderLimits::default())
    }

    /// A reader with explicit limits.
    pub fn with_limits(input: R, limits: ReaderLimits) -> Self {
        let mut reader = NsReader::from_reader(input);
        // Mismatched end tags are a syntax error, not something to guess around.
        reader.config_mut().check_end_names = true;
        MultistatusReader {
            reader,
            buf: Vec::with_capacity(8 * 1024),
            limits,
            state: State::Prolog,
            description: None,
            sync_token: None,
        }
    }

    /// The document-level `responsedescription`, once it has been read (it comes after the
    /// responses, so it is known only when [`next_response`](Self::next_response) returned
    /// `None`).
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `sync-token` of a sync-collection answer (RFC 6578), once it has been read (it
    /// comes after the responses).
    pub fn sync_token(&self) -> Option<&str> {
        self.sync_token.as_deref()
    }

    /// The next response, `Ok(None)` at the end of the document. After an error the reader
    /// is finished and returns `Ok(None)`.
    pub fn next_response(&mut self) -> Result<Option<Response>, XmlError> {
        let result = self.advance();
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    fn advance(&mut self) -> Result<Option<Response>, XmlError> {
        loop {
            if self.state == State::Done {
                return Ok(None);
            }
            self.buf.clear();
            let event = self
                .reader
                .read_event_into(&mut self.buf)
                .map_err(read_error)?;
            match event {
                Event::Start(ref s) | Event::Empty(ref s) if self.state == State::Prolog => {
                    let el = start_element(&self.reader, s, None)?;
                    if !el.name.is_dav("multistatus") {
                        return Err(XmlError::Invalid("the body is not a DAV:multistatus"));
                    }
                    // `<multistatus/>` is a valid, empty answer.
                    self.state = if matches!(event, Event::Empty(_)) {
                        State::Done
                    } else {
                        State::Body
                    };
                }
                Event::Start(s) => {
                    let el = start_element(&self.reader, &s, None)?;
                    let tree = self.read_subtree(el)?;
                    if let Some(r) = self.interpret(tree)? {
                        return Ok(Some(r));
                    }
                }
                Event::Empty(s) => {
                    let el = start_element(&self.reader, &s, None)?;
                    if el.name.is_dav("response") {
                        return Err(XmlError::Invalid("a response without href"));
                    }
                }
                Event::End(_) => {
                    // Only the end of `multistatus` can come here: subtrees consume their own.
                    self.state = State::Done;
                }
                Event::Text(t) => {
                    let s = t.xml10_content();
                    if !is_blank(&s) {
                        return Err(XmlError::Syntax("text outside the responses".into()));
                    }
                }
                Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(XmlError::Syntax("text outside the responses".into()));
                }
                Event::DocType(_) => return Err(XmlError::Dtd),
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
                Event::Eof => {
                    return Err(XmlError::Syntax(
                        if self.state == State::Prolog {
                            "no root element"
                        } else {
                            "unexpected end of document"
                        }
                        .into(),
                    ))
                }
            }
        }
    }

    /// Turns a child of `multistatus` into a response, or records it (`responsedescription`)
    /// or skips it (extensions such as `sync-token`).
    fn interpret(&mut self, el: Element) -> Result<Option<Response>, XmlError> {
        if el.name.is_dav("response") {
            return response_from(el).map(Some);
        }
        if el.name.is_dav("responsedescription") {
            self.description = Some(el.text());
        } else if el.name.is_dav("sync-token") {
            self.sync_token = Some(el.text().trim().to_owned());
        }
        Ok(None)
    }

    /// Reads the rest of an element whose start tag was just read, into a tree.
    fn read_subtree(&mut self, root: Element) -> Result<Element, XmlError> {
        // Depth 1 is `multistatus`, so the subtree root sits at depth 2.
        let base_depth = 2;
        let mut stack = vec![root];
        let mut count = 1usize;
        loop {
            self.buf.clear();
            let event = self
                .reader
                .read_event_into(&mut self.buf)
                .map_err(read_error)?;
            match event {
                Event::Start(ref s) | Event::Empty(ref s) => {
                    count += 1;
                    if count > self.limits.max_elements
                        || stack.len() + base_depth > self.limits.max_depth
                    {
                        return Err(XmlError::TooLarge);
                    }
                    let lang = stack.last().and_then(|p| p.lang.clone());
                    let el = start_element(&self.reader, s, lang)?;
                    if matches!(event, Event::Start(_)) {
                        stack.push(el);
                    } else if let Some(parent) = stack.last_mut() {
                        parent.children.push(Node::Element(el));
                    }
                }
                Event::End(_) => {
                    let Some(el) = stack.pop() else {
                        return Err(XmlError::Syntax("unmatched end tag".into()));
                    };
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(el)),
                        None => return Ok(el),
                    }
                }
                Event::Text(t) => {
                    let s = t.xml10_content();
                    check_chars(&s)?;
                    push_text(&mut stack, &s);
                }
                Event::CData(c) => {
                    let s = c.xml10_content();
                    check_chars(&s)?;
                    push_text(&mut stack, &s);
                }
                Event::GeneralRef(r) => {
                    let ch = ref_char(&r)?;
                    push_text(&mut stack, ch.encode_utf8(&mut [0; 4]));
                }
                Event::DocType(_) => return Err(XmlError::Dtd),
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
                Event::Eof => {
                    return Err(XmlError::Syntax("unexpected end of document".into()));
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for MultistatusReader<R> {
    type Item = Result<Response, XmlError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_response().transpose()
    }
}

fn is_blank(s: &str) -> bool {
    s.chars().all(|c| c.is_whitespace() || c == '\u{feff}')
}

fn push_text(stack: &mut [Element], s: &str) {
    if let Some(el) = stack.last_mut() {
        if let Some(Node::Text(prev)) = el.children.last_mut() {
            prev.push_str(s);
        } else if !s.is_empty() {
            el.children.push(Node::Text(s.to_owned()));
        }
    }
}

fn start_element<R>(
    reader: &NsReader<R>,
    s: &BytesStart<'_>,
    parent_lang: Option<String>,
) -> Result<Element, XmlError> {
    super::tree::read_start(reader, s, parent_lang)
}

fn status_of(el: &Element) -> Result<u16, XmlError> {
    parse_status_line(&el.text()).ok_or(XmlError::Invalid(
        "a status that is not an HTTP status line",
    ))
}

fn error_names(el: &Element) -> Vec<QName> {
    el.elements().map(|c| c.name.clone()).collect()
}

fn response_from(el: Element) -> Result<Response, XmlError> {
    let mut hrefs = Vec::new();
    let mut status = None;
    let mut propstats = Vec::new();
    let mut error = Vec::new();
    let mut description = None;
    let mut location = None;
    for child in el.elements() {
        if child.name.ns != super::DAV {
            // Extensions are allowed anywhere (RFC 4918 §17); ignore them.
            continue;
        }
        match child.name.local.as_str() {
            "href" => hrefs.push(child.text().trim().to_owned()),
            "status" => status = Some(status_of(child)?),
            "propstat" => propstats.push(propstat_from(child)?),
            "error" => error = error_names(child),
            "responsedescription" => description = Some(child.text()),
            "location" => {
                location = child
                    .elements()
                    .find(|h| h.name.is_dav("href"))
                    .map(|h| h.text().trim().to_owned());
            }
            _ => {}
        }
    }
    let mut hrefs = hrefs.into_iter();
    let Some(href) = hrefs.next() else {
        return Err(XmlError::Invalid("a response without href"));
    };
    if status.is_none() && propstats.is_empty() {
        return Err(XmlError::Invalid(
            "a response with neither status nor propstat",
        ));
    }
    Ok(Response {
        href,
        extra_hrefs: hrefs.collect(),
        status,
        propstats,
        error,
        description,
        location,
    })
}

fn propstat_from(el: &Element) -> Result<PropStat, XmlError> {
    let mut status = None;
    let mut props = Vec::new();
    let mut error = Vec::new();
    let mut description = None;
    for child in el.elements() {
        if child.name.ns != super::DAV {
            continue;
        }
        match child.name.local.as_str() {
            "prop" => props.extend(child.elements().cloned()),
            "status" => status = Some(status_of(child)?),
            "error" => error = error_names(child),
            "responsedescription" => description = Some(child.text()),
            _ => {}
        }
    }
    let Some(status) = status else {
        return Err(XmlError::Invalid("a propstat without status"));
    };
    Ok(PropStat {
        status,
        props,
        error,
        description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::MultistatusWriter;

    fn read_all(body: &[u8]) -> Result<Vec<Response>, XmlError> {
        MultistatusReader::new(body).collect()
    }

    #[test]
    fn the_sync_token_after_the_responses_is_kept() {
        let mut w = MultistatusWriter::new();
        w.status_response("/c/gone", 404, None, None);
        let body = w.finish_with_sync_token("urn:davit:sync:ab:7");
        let mut r = MultistatusReader::new(body.as_bytes());
        assert_eq!(r.next_response().unwrap().unwrap().status, Some(404));
        assert_eq!(r.sync_token(), None, "not read yet");
        assert!(r.next_response().unwrap().is_none());
        assert_eq!(r.sync_token(), Some("urn:davit:sync:ab:7"));
    }

    #[test]
    fn both_forms_any_prefix_any_version() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<multistatus xmlns="DAV:" xmlns:z="urn:z">
  <response>
    <href>http://h/a%20b/</href>
    <propstat><prop><resourcetype><collection/></resourcetype><z:color>red</z:color>
      <getlastmodified>Sun, 22 Nov 2026 04:04:00 GMT</getlastmodified></prop>
      <status>HTTP/2 200 OK</status></propstat>
    <propstat><prop><getcontentlength/></prop><status>HTTP/1.0 404 Not Found</status></propstat>
  </response>
  <response><href>/x</href><href>/y</href><status>HTTP/1.1 423 Locked</status>
    <error><lock-token-submitted><href>/x</href></lock-token-submitted></error>
    <responsedescription>locked</responsedescription>
    <location><href>/moved</href></location></response>
  <responsedescription>done</responsedescription>
</multistatus>"#;
        let mut r = MultistatusReader::new(body.as_bytes());
        let a = r.next_response().unwrap().unwrap();
        assert_eq!(a.href, "http://h/a%20b/");
        assert_eq!(a.propstats.len(), 2);
        assert_eq!(a.propstats[1].status, 404);
        let live = a.live();
        assert!(live.is_collection);
        assert!(live.modified.is_some());
        assert_eq!(live.size, None);
        assert_eq!(a.prop(&QName::new("urn:z", "color")).unwrap().text(), "red");
        assert_eq!(a.effective_status(), 200);
        let b = r.next_response().unwrap().unwrap();
        assert_eq!(b.extra_hrefs, vec!["/y".to_owned()]);
        assert_eq!(b.status, Some(423));
        assert_eq!(b.error, vec![QName::dav("lock-token-submitted")]);
        assert_eq!(b.description.as_deref(), Some("locked"));
        assert_eq!(b.location.as_deref(), Some("/moved"));
        assert!(r.next_response().unwrap().is_none());
        assert_eq!(r.description(), Some("done"));
        assert!(r.next_response().unwrap().is_none());
    }

    #[test]
    fn odd_prefixes_and_empty_documents() {
        let body = r#"<lp1:multistatus xmlns:lp1="DAV:"><lp1:response xmlns:g0="DAV:"><g0:href>/</g0:href><lp1:status>HTTP/1.1 200 OK</lp1:status></lp1:response></lp1:multistatus>"#;
        let rs = read_all(body.as_bytes()).unwrap();
        assert_eq!(rs[0].status, Some(200));
        assert!(read_all(br#"<D:multistatus xmlns:D="DAV:"/>"#)
            .unwrap()
            .is_empty());
        assert!(read_all(b"<multistatus xmlns='DAV:'></multistatus>")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_multistatus() {
        for bad in [
            &b""[..],
            b"<multistatus/>",
            b"<D:multistatus xmlns:D='DAV:'><D:response><D:href>/</D:href></D:response></D:multistatus>",
            b"<D:multistatus xmlns:D='DAV:'><D:response><D:status>HTTP/1.1 200 OK</D:status></D:response></D:multistatus>",
            b"<D:multistatus xmlns:D='DAV:'><D:response><D:href>/</D:href><D:status>200</D:status></D:response></D:multistatus>",
            b"<D:multistatus xmlns:D='DAV:'><D:response><D:href>/</D:href>",
            b"<!DOCTYPE x><D:multistatus xmlns:D='DAV:'/>",
            b"<D:multistatus xmlns:D='DAV:'><x:response/></D:multistatus>",
        ] {
            assert!(read_all(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!(
            "<D:multistatus xmlns:D='DAV:'><D:response>{}{}</D:response></D:multistatus>",
            "<a>".repeat(100),
            "</a>".repeat(100)
        );
        assert_eq!(read_all(deep.as_bytes()), Err(XmlError::TooLarge));
    }

    /// What `MultistatusWriter` writes, the reader reads back as the same values.
    #[test]
    fn round_trips_the_writer() {
        let color = QName::new("urn:z", "color");
        let mut w = MultistatusWriter::new();
        w.status_response(
            "/a%20b/",
            423,
            Some("lock-token-submitted"),
            Some("locked & <gone>"),
        );
        w.start_response("/f");
        w.start_propstat();
        w.prop_text(&QName::dav("getetag"), "\"x&y\"");
        w.prop_text(&QName::dav("getcontentlength"), "13");
        w.prop_xml(&QName::dav("resourcetype"), "");
        w.prop_text(&color, "r\u{e9}d");
        w.prop_fragment(r#"<q:p xmlns:q="urn:q" xml:lang="de">t<q:i a="1"/></q:p>"#);
        w.end_propstat(200, None);
        w.start_propstat();
        w.prop_empty(&QName::new("urn:m", "missing"));
        w.end_propstat(404, None);
        w.start_propstat();
        w.prop_empty(&QName::dav("getlastmodified"));
        w.end_propstat(403, Some("cannot-modify-protected-property"));
        w.end_response(Some("partly"));
        let mut doc = w.take();
        doc.push_str(&w.finish());

        let rs = read_all(doc.as_bytes()).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(
            rs[0],
            Response {
                href: "/a%20b/".into(),
                extra_hrefs: vec![],
                status: Some(423),
                propstats: vec![],
                error: vec![QName::dav("lock-token-submitted")],
                description: Some("locked & <gone>".into()),
                location: None,
            }
        );
        let f = &rs[1];
        assert_eq!(f.href, "/f");
        assert_eq!(f.description.as_deref(), Some("partly"));
        let statuses: Vec<u16> = f.propstats.iter().map(|p| p.status).collect();
        assert_eq!(statuses, [200, 404, 403]);
        assert_eq!(
            f.propstats[2].error,
            vec![QName::dav("cannot-modify-protected-property")]
        );
        let live = f.live();
        assert_eq!(live.etag.as_deref(), Some("\"x&y\""));
        assert_eq!(live.size, Some(13));
        assert!(!live.is_collection);
        assert_eq!(f.prop(&color).unwrap().text(), "r\u{e9}d");
        let frag = f.prop(&QName::new("urn:q", "p")).unwrap().to_fragment();
        assert_eq!(
            frag,
            r#"<q:p xmlns:q="urn:q" xml:lang="de">t<q:i a="1"/></q:p>"#
        );
        assert_eq!(f.propstats[1].props[0].name, QName::new("urn:m", "missing"));
    }

    /// Stable-CI stand-in for the fuzz target: thousands of mutated documents, none may panic,
    /// and every one must finish (errors end the iteration).
    #[test]
    fn never_panics_on_mutated_input() {
        let seeds: [&[u8]; 3] = [
            br#"<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/a</D:href><D:propstat><D:prop><D:getcontentlength>1</D:getcontentlength><z:x xmlns:z="u">&amp;&#65;<![CDATA[c]]></z:x></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:responsedescription>d</D:responsedescription></D:multistatus>"#,
            br#"<multistatus xmlns="DAV:"><response><href>/b</href><status>HTTP/1.1 423 Locked</status><error><lock-token-submitted/></error><location><href>/c</href></location></response></multistatus>"#,
            b"\xef\xbb\xbf<a:multistatus xmlns:a='DAV:' xml:lang='en'><a:response><a:href>x</a:href><a:status>HTTP/2 507 x</a:status></a:response></a:multistatus>",
        ];
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let tokens: [&[u8]; 8] = [
            b"<",
            b">",
            b"/",
            b"&",
            b"\"",
            b"<![CDATA[",
            b"xmlns:q='DAV:'",
            b"\xff",
        ];
        for i in 0..4000 {
            let seed = seeds[i % seeds.len()];
            let mut doc = seed.to_vec();
            for _ in 0..(next() % 6 + 1) {
                if doc.is_empty() {
                    break;
                }
                let at = (next() as usize) % doc.len();
                match next() % 5 {
                    0 => doc[at] = next() as u8,
                    1 => {
                        doc.remove(at);
                    }
                    2 => doc.truncate(at),
                    3 => {
                        let t = tokens[(next() as usize) % tokens.len()];
                        doc.splice(at..at, t.iter().copied());
                    }
                    _ => {
                        let end = (at + (next() as usize) % 16).min(doc.len());
                        let chunk = doc[at..end].to_vec();
                        doc.splice(at..at, chunk);
                    }
                }
            }
            let mut n = 0;
            for r in MultistatusReader::new(&doc[..]) {
                if let Ok(r) = r {
                    let _ = (r.live(), r.effective_status());
                }
                n += 1;
                assert!(n < 10_000, "the reader does not finish");
            }
        }
    }
}
