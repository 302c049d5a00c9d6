//! The streaming `multistatus` writer and the `DAV:error` body.
//!
//! Output always binds `DAV:` to the `D:` prefix and never declares a default namespace: some
//! Windows versions fail on default-namespace answers, and stored dead-property fragments rely
//! on the default namespace being empty where they are embedded.

use super::QName;
use crate::date::{write_http_date, write_rfc3339};
use crate::href::DavPath;
use crate::status::reason;
use std::time::SystemTime;

/// The Content-Type of every XML body davit sends.
pub const XML_CONTENT_TYPE: &str = "application/xml; charset=\"utf-8\"";

const HEADER: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

/// Escapes character data; characters XML 1.0 cannot carry become U+FFFD.
pub fn escape_text(s: &str, out: &mut String) {
    escape(s, out, false);
}

/// Escapes an attribute value (double-quoted).
pub fn escape_attr(s: &str, out: &mut String) {
    escape(s, out, true);
}

/// Copies runs that need nothing whole and looks closer only at bytes that may: markup
/// characters, control characters, and 0xEF, the lead byte of U+FFFE and U+FFFF (the only
/// non-ASCII scalar values XML 1.0 forbids). Listings escape every value they write, so this
/// is on the hot path.
/// The bytes [`escape`] must look at in text: markup, CR, other controls but tab and LF, and
/// 0xEF (the lead byte of U+FFFE and U+FFFF). A table, since every byte of every listed name
/// and value passes through here.
const TEXT_SPECIAL: [bool; 256] = special_bytes(false);
/// The same in attribute values, where `"`, tab and LF are escaped too.
const ATTR_SPECIAL: [bool; 256] = special_bytes(true);

const fn special_bytes(attr: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'&' | b'<' | b'>' | b'\r' | 0xEF => true,
            b'"' | b'\t' | b'\n' => attr,
            0..=0x1F => true,
            _ => false,
        };
        b += 1;
    }
    table
}

fn escape(s: &str, out: &mut String, attr: bool) {
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    let special = if attr { &ATTR_SPECIAL } else { &TEXT_SPECIAL };
    while i < bytes.len() {
        if !special[usize::from(bytes[i])] {
            i += 1;
            continue;
        }
        out.push_str(&s[run..i]);
        // `i` is a character boundary: ASCII, or 0xEF, which only ever starts a sequence.
        let Some(c) = s[i..].chars().next() else {
            break;
        };
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' => out.push_str("&quot;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' | '\n' => out.push(c),
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
        i += c.len_utf8();
        run = i;
    }
    out.push_str(&s[run..]);
}

/// A `DAV:error` body naming one precondition or postcondition, with optional hrefs inside it
/// (`lock-token-submitted`, `no-conflicting-lock`).
pub fn error_body(condition: &str, hrefs: &[String]) -> String {
    let mut out = String::from(HEADER);
    out.push_str("<D:error xmlns:D=\"DAV:\">");
    push_condition(&mut out, condition, hrefs);
    out.push_str("</D:error>\n");
    out
}

fn push_condition(out: &mut String, condition: &str, hrefs: &[String]) {
    out.push_str("<D:");
    out.push_str(condition);
    if hrefs.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        for h in hrefs {
            out.push_str("<D:href>");
            escape_text(h, out);
            out.push_str("</D:href>");
        }
        out.push_str("</D:");
        out.push_str(condition);
        out.push('>');
    }
}

/// Writes a `multistatus` document piece by piece into a buffer that the caller drains with
/// [`take`](Self::take) whenever it likes, so a long listing never sits in memory whole.
#[derive(Debug)]
pub struct MultistatusWriter {
    buf: String,
    /// Where the open `propstat` began, so an empty one can be taken back.
    propstat_at: usize,
    /// The document element's local name in `DAV:`.
    root: &'static str,
}

impl Default for MultistatusWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl MultistatusWriter {
    /// Starts a document (XML declaration and the opening `multistatus`).
    pub fn new() -> Self {
        Self::with_root("multistatus")
    }

    /// Starts an RFC 5689 `mkcol-response` instead: `propstat` elements straight inside the
    /// document element.
    pub fn mkcol_response() -> Self {
        Self::with_root("mkcol-response")
    }

    fn with_root(root: &'static str) -> Self {
        let mut buf = String::with_capacity(16 * 1024);
        buf.push_str(HEADER);
        buf.push_str("<D:");
        buf.push_str(root);
        buf.push_str(" xmlns:D=\"DAV:\">\n");
        MultistatusWriter {
            buf,
            propstat_at: 0,
            root,
        }
    }

    /// Bytes written and not yet taken.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes what has been written so far. The next buffer starts as large as this one was,
    /// so a long listing does not grow each chunk from nothing.
    pub fn take(&mut self) -> String {
        let capacity = self.buf.capacity();
        std::mem::replace(&mut self.buf, String::with_capacity(capacity))
    }

    /// Closes the document and returns the rest.
    pub fn finish(mut self) -> String {
        self.buf.push_str("</D:");
        self.buf.push_str(self.root);
        self.buf.push_str(">\n");
        self.buf
    }

    /// Closes a sync-collection answer (RFC 6578 §6.4): the `sync-token` after the responses,
    /// then the end of the document.
    pub fn finish_with_sync_token(mut self, token: &str) -> String {
        self.buf.push_str("<D:sync-token>");
        escape_text(token, &mut self.buf);
        self.buf.push_str("</D:sync-token>\n");
        self.finish()
    }

    /// A whole-resource response: href, status, and optionally an error condition and a
    /// description.
    pub fn status_response(
        &mut self,
        href: &str,
        status: u16,
        error: Option<&str>,
        description: Option<&str>,
    ) {
        self.start_response(href);
        self.status(status);
        if let Some(cond) = error {
            self.error(cond);
        }
        self.end_response(description);
    }

    /// Opens a `response` for `href` (already percent-encoded).
    pub fn start_response(&mut self, href: &str) {
        self.buf.push_str("<D:response><D:href>");
        escape_text(href, &mut self.buf);
        self.buf.push_str("</D:href>");
    }

    /// Opens a `response` for `path`, its href written in place (percent-encoded hrefs hold
    /// nothing XML must escape).
    pub fn start_response_at(&mut self, path: &DavPath, collection: bool) {
        self.buf.push_str("<D:response><D:href>");
        path.write_href(collection, &mut self.buf);
        self.buf.push_str("</D:href>");
    }

    /// Closes a `response`.
    pub fn end_response(&mut self, description: Option<&str>) {
        self.end_response_with(description, None);
    }

    /// Closes a `response` with a description and a `location` (where something was
    /// created), in the order the RFC 4918 DTD gives.
    pub fn end_response_with(&mut self, description: Option<&str>, location: Option<&str>) {
        if let Some(d) = description {
            self.buf.push_str("<D:responsedescription>");
            escape_text(d, &mut self.buf);
            self.buf.push_str("</D:responsedescription>");
        }
        if let Some(href) = location {
            self.buf.push_str("<D:location><D:href>");
            escape_text(href, &mut self.buf);
            self.buf.push_str("</D:href></D:location>");
        }
        self.buf.push_str("</D:response>\n");
    }

    /// A `status` element inside an open `response`.
    pub fn status(&mut self, status: u16) {
        self.buf.push_str("<D:status>");
        self.status_line(status);
        self.buf.push_str("</D:status>");
    }

    /// `HTTP/1.1 404 Not Found`, written in place.
    fn status_line(&mut self, status: u16) {
        use std::fmt::Write;
        let _ = write!(self.buf, "HTTP/1.1 {status} {}", reason(status));
    }

    /// An `error` element naming one condition, inside an open `response`.
    pub fn error(&mut self, condition: &str) {
        self.buf.push_str("<D:error>");
        push_condition(&mut self.buf, condition, &[]);
        self.buf.push_str("</D:error>");
    }

    /// Self-contained XML written as it is (propstat elements taken from another 207).
    pub fn raw(&mut self, xml: &str) {
        self.buf.push_str(xml);
    }

    /// Opens a `propstat` and its `prop`.
    pub fn start_propstat(&mut self) {
        self.propstat_at = self.buf.len();
        self.buf.push_str("<D:propstat><D:prop>");
    }

    /// Takes back the `propstat` just opened (when it turned out to have nothing to hold).
    pub fn cancel_propstat(&mut self) {
        self.buf.truncate(self.propstat_at);
    }

    /// Closes the `prop` and the `propstat` with its status and optional error condition.
    pub fn end_propstat(&mut self, status: u16, error: Option<&str>) {
        self.buf.push_str("</D:prop><D:status>");
        self.status_line(status);
        self.buf.push_str("</D:status>");
        if let Some(cond) = error {
            self.buf.push_str("<D:error>");
            push_condition(&mut self.buf, cond, &[]);
            self.buf.push_str("</D:error>");
        }
        self.buf.push_str("</D:propstat>");
    }

    /// A property with no value (`propname`, 404s, empty `resourcetype`).
    pub fn prop_empty(&mut self, name: &QName) {
        self.open(name);
        self.buf.push_str("/>");
    }

    /// A property whose value is text.
    pub fn prop_text(&mut self, name: &QName, value: &str) {
        let prefix = self.open(name);
        self.buf.push('>');
        escape_text(value, &mut self.buf);
        self.close(prefix, name);
    }

    /// A property whose value is a number.
    pub fn prop_number(&mut self, name: &QName, value: u64) {
        let prefix = self.open(name);
        self.buf.push('>');
        // By hand, like the dates: `write!` costs more than the rest of the element.
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[at..] {
            self.buf.push(char::from(d));
        }
        self.close(prefix, name);
    }

    /// A property whose value is an HTTP-date (`getlastmodified`).
    pub fn prop_http_date(&mut self, name: &QName, t: SystemTime) {
        let prefix = self.open(name);
        self.buf.push('>');
        write_http_date(t, &mut self.buf);
        self.close(prefix, name);
    }

    /// A property whose value is an RFC 3339 date (`creationdate`).
    pub fn prop_rfc3339(&mut self, name: &QName, t: SystemTime) {
        let prefix = self.open(name);
        self.buf.push('>');
        write_rfc3339(t, &mut self.buf);
        self.close(prefix, name);
    }

    /// A property whose value is XML already written with the `D:` prefix for `DAV:`.
    pub fn prop_xml(&mut self, name: &QName, inner: &str) {
        let prefix = self.open(name);
        self.buf.push('>');
        self.buf.push_str(inner);
        self.close(prefix, name);
    }

    /// A stored dead property: a self-contained element fragment, written as it is.
    pub fn prop_fragment(&mut self, fragment: &str) {
        self.buf.push_str(fragment);
    }

    fn open(&mut self, name: &QName) -> &'static str {
        self.buf.push('<');
        if name.ns == super::DAV {
            self.buf.push_str("D:");
            self.buf.push_str(&name.local);
            "D:"
        } else if name.ns.is_empty() {
            self.buf.push_str(&name.local);
            ""
        } else {
            self.buf.push_str("R:");
            self.buf.push_str(&name.local);
            self.buf.push_str(" xmlns:R=\"");
            escape_attr(&name.ns, &mut self.buf);
            self.buf.push('"');
            "R:"
        }
    }

    fn close(&mut self, prefix: &str, name: &QName) {
        self.buf.push_str("</");
        self.buf.push_str(prefix);
        self.buf.push_str(&name.local);
        self.buf.push('>');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{parse_document, Limits};

    #[test]
    fn writes_parseable_multistatus() {
        let mut w = MultistatusWriter::new();
        w.status_response("/a%20b/", 423, Some("lock-token-submitted"), Some("locked"));
        w.start_response("/f");
        w.start_propstat();
        w.prop_text(&QName::dav("getetag"), "\"x&y\"");
        w.prop_xml(&QName::dav("resourcetype"), "<D:collection/>");
        w.prop_fragment(r#"<z:p xmlns:z="urn:z">v</z:p>"#);
        w.end_propstat(200, None);
        w.start_propstat();
        w.prop_empty(&QName::new("urn:q", "missing"));
        w.prop_empty(&QName::new("", "bare"));
        w.end_propstat(404, None);
        w.end_response(None);
        let doc = w.finish();
        let root = parse_document(doc.as_bytes(), &Limits::default()).unwrap();
        assert!(root.name.is_dav("multistatus"));
        let responses: Vec<_> = root.elements().collect();
        assert_eq!(responses.len(), 2);
        let ps: Vec<_> = responses[1]
            .elements()
            .filter(|e| e.name.is_dav("propstat"))
            .collect();
        let missing = ps[1].elements().next().unwrap().elements().next().unwrap();
        assert_eq!(missing.name, QName::new("urn:q", "missing"));
        assert!(doc.contains("HTTP/1.1 423 Locked"));
    }

    #[test]
    fn numbers_written_whole() {
        for n in [0, 7, 10, 4096, u64::MAX] {
            let mut w = MultistatusWriter::new();
            w.start_response("/f");
            w.start_propstat();
            w.prop_number(&QName::dav("getcontentlength"), n);
            assert!(w.buf.contains(&format!(">{n}</D:getcontentlength>")), "{n}");
        }
    }

    #[test]
    fn escape_tables_match_the_rules() {
        for b in 0..=255u8 {
            let text = matches!(b, b'&' | b'<' | b'>' | b'\r' | 0xEF)
                || (b <= 0x1F && b != b'\t' && b != b'\n');
            let attr = text || matches!(b, b'"' | b'\t' | b'\n');
            assert_eq!(TEXT_SPECIAL[usize::from(b)], text, "text {b}");
            assert_eq!(ATTR_SPECIAL[usize::from(b)], attr, "attr {b}");
        }
    }

    #[test]
    fn escapes_invalid_chars() {
        let mut s = String::new();
        escape_text("a\u{1}<b>&", &mut s);
        assert_eq!(s, "a\u{FFFD}&lt;b&gt;&amp;");
        let mut s = String::new();
        escape_text("x\u{FFFE}é\u{FFFF}\u{FFFD}\u{EFFF}\r\t\n\"'", &mut s);
        assert_eq!(s, "x\u{FFFD}é\u{FFFD}\u{FFFD}\u{EFFF}&#13;\t\n\"'");
        let mut s = String::new();
        escape_attr("a\"b\t\n\r<\u{0}", &mut s);
        assert_eq!(s, "a&quot;b&#9;&#10;&#13;&lt;\u{FFFD}");
        let body = error_body("lock-token-submitted", &["/x".to_owned()]);
        assert!(parse_document(body.as_bytes(), &Limits::default()).is_ok());
    }
}
