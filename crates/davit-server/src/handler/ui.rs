//! The web interface: the page a browser gets for a collection, its script and style, and the
//! checks that keep another site from acting through a logged-in browser.
//!
//! - The page is a static shell (`ui/index.html`); its script lists the collection with
//!   PROPFIND and changes things with PUT, MKCOL, MOVE, COPY and DELETE, so it can do nothing a
//!   WebDAV client could not. It is served only to a request whose `Accept` names `text/html`:
//!   WebDAV clients keep getting the plain index of `get.rs`.
//! - The script and the style are compiled into the binary and served under [`UI_PREFIX`],
//!   answered before any storage lookup. With the default state directory that prefix is
//!   inside `.davit`, which clients can never reach, so no file can be shadowed by it; with
//!   `--state-dir` elsewhere, GET and HEAD of exactly these asset paths are the interface's.
//! - The page and the assets carry a Content-Security-Policy allowing scripts, styles and
//!   requests from the server itself only (no inline script), `nosniff`, and no framing.
//! - [`foreign_origin`]: a request that may change something and whose `Origin` is not the
//!   server's own is refused, so a page of another site cannot use the browser's credentials
//!   to write (a cross-site form can POST a batch without any preflight). Requests without
//!   `Origin` (every WebDAV client, and browsers' own GET and HEAD) are not affected. CORS
//!   preflights are never granted: no `Access-Control-Allow-*` header is ever sent.

use super::Dav;
use crate::body::{self, Body};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::Storage;
use http::request::Parts;
use http::uri::Authority;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

/// Where the interface's assets are served: GET and HEAD of the paths below it are answered
/// from the binary.
pub(crate) const UI_PREFIX: &str = "/.davit/ui/";

/// The policy of the page and its assets: everything from the server itself, nothing inline,
/// no plugins, no framing, no form posts anywhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     media-src 'self'; frame-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the interface, compiled in.
struct Asset {
    /// Its name under [`UI_PREFIX`].
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../ui/app.css"),
    },
];

/// The page's shell: it names the collection nothing, the script reads it from the URL.
const PAGE: &[u8] = include_bytes!("../../ui/index.html");

/// FNV-1a of the bytes: a validator that changes with every build whose assets changed.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// True when the request's `Accept` names `text/html` with a q-value above zero (what
/// browsers send for a page; WebDAV clients do not).
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut params = range.split(';');
            let media = params.next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("text/html") {
                return false;
            }
            // `q=0` means "not acceptable"; anything unparsable counts as the default, 1.
            !params.any(|p| {
                let p = p.trim();
                p.len() > 2
                    && p[..2].eq_ignore_ascii_case("q=")
                    && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        })
}

/// True when `Origin` is present and names another origin than the one the request was sent
/// to (its `Host`, or the URI's authority in HTTP/2). `Origin: null` (a sandboxed or
/// privacy-redirected page) and a value that does not parse count as foreign. Only host and
/// port are compared, not the scheme, so a TLS-terminating proxy that keeps `Host` works;
/// a missing port is the scheme's default on the Origin side and matches a Host without one.
pub(crate) fn foreign_origin(parts: &Parts) -> bool {
    let mut values = parts.headers.get_all(header::ORIGIN).iter();
    let Some(origin) = values.next() else {
        return false;
    };
    if values.next().is_some() {
        return true;
    }
    let Some(host) = super::host_of(parts) else {
        return true;
    };
    !same_origin(origin.to_str().unwrap_or(""), &host)
}

fn same_origin(origin: &str, host: &str) -> bool {
    let (scheme, rest) = match origin.split_once("://") {
        Some(("http", rest)) => ("http", rest),
        Some(("https", rest)) => ("https", rest),
        _ => return false,
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let (Ok(o), Ok(h)) = (rest.parse::<Authority>(), host.parse::<Authority>()) else {
        return false;
    };
    // An Origin is scheme, host and port: anything more (a path, user info) is not one.
    if rest.contains(['/', '@']) || !o.host().eq_ignore_ascii_case(h.host()) {
        return false;
    }
    let origin_port = o.port_u16().unwrap_or(default_port);
    match h.port_u16() {
        Some(p) => p == origin_port,
        None => origin_port == default_port,
    }
}

/// The headers every interface response carries.
fn secure(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A fixed body with its type and length (none for HEAD).
fn fixed(
    status: StatusCode,
    content_type: &'static str,
    bytes: &'static [u8],
    with_body: bool,
) -> Response<Body> {
    let mut r = Response::new(if with_body && status == StatusCode::OK {
        body::full(bytes)
    } else {
        body::empty()
    });
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::OK {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    }
    r
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// An asset of the interface when `parts` is a GET or HEAD of one; `None` otherwise.
    pub(crate) fn ui_asset(&self, parts: &Parts) -> Option<Response<Body>> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return None;
        }
        let name = parts.uri.path().strip_prefix(UI_PREFIX)?;
        let asset = ASSETS.iter().find(|a| a.name == name)?;
        let etag = format!("\"{:016x}\"", fnv1a(asset.bytes));
        let matches = parts
            .headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        let status = if matches {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        };
        let mut r = fixed(
            status,
            asset.content_type,
            asset.bytes,
            parts.method == Method::GET,
        );
        if let Ok(v) = HeaderValue::try_from(etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        Some(secure(r))
    }

    /// The page for a collection a browser asked for.
    pub(crate) fn ui_page(&self, with_body: bool) -> Response<Body> {
        let mut r = fixed(StatusCode::OK, "text/html; charset=utf-8", PAGE, with_body);
        // The same URL answers WebDAV clients with the plain index.
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        secure(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn html_is_wanted_by_browsers_only() {
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(&accept(firefox)));
        assert!(wants_html(&accept("TEXT/HTML; q=0.5")));
        assert!(!wants_html(&accept("*/*")));
        assert!(!wants_html(&accept("text/xml, application/xml")));
        assert!(!wants_html(&accept("text/html;q=0")));
        assert!(!wants_html(&accept("text/htmlx")));
        assert!(!wants_html(&HeaderMap::new()));
    }

    #[test]
    fn origins_match_host_and_port() {
        assert!(same_origin("http://127.0.0.1:4918", "127.0.0.1:4918"));
        assert!(same_origin("http://Example.com", "example.com"));
        assert!(same_origin("http://example.com", "example.com:80"));
        assert!(same_origin("https://example.com", "example.com"));
        assert!(same_origin("https://example.com", "example.com:443"));
        assert!(same_origin("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_origin("http://example.com", "example.com:8080"));
        assert!(!same_origin("http://example.com:8080", "example.com"));
        assert!(!same_origin("http://evil.example", "example.com"));
        assert!(!same_origin("http://example.com.evil", "example.com"));
        assert!(!same_origin("null", "example.com"));
        assert!(!same_origin("ftp://example.com", "example.com"));
        assert!(!same_origin("http://a@example.com", "example.com"));
        assert!(!same_origin("http://example.com/x", "example.com"));
        assert!(!same_origin("", "example.com"));
    }

    #[test]
    fn assets_validators_differ() {
        assert_ne!(fnv1a(ASSETS[0].bytes), fnv1a(ASSETS[1].bytes));
    }
}
