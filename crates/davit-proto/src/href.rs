//! Request paths and hrefs: percent-decoding into a validated [`DavPath`], encoding back into
//! hrefs, and the `Destination` header.
//!
//! A [`DavPath`] is the single internal name of a resource. It is built only by [`DavPath::parse`]
//! or by joining a validated segment, so no segment can be `.`, `..`, empty, or hold `/`, `\` or
//! NUL: a path can never climb above the root it is later joined to.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;

/// Bytes left as they are in an encoded segment: RFC 3986 unreserved characters plus the
/// sub-delimiters that need no escaping in a path and in XML. `+`, `&`, `'`, `%`, `#`, `?` and
/// everything non-ASCII are escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Why a request path or href was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not percent-decodable as UTF-8, or not a path at all.
    #[error("malformed path")]
    Malformed,
    /// A segment that could reach outside the served root or that no filesystem can hold:
    /// `..`, `.`, an encoded `/`, a backslash or NUL.
    #[error("forbidden path segment")]
    Forbidden,
}

/// Why a `Destination` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not an absolute URI or absolute path.
    #[error("malformed Destination header")]
    Malformed,
    /// The path inside is not acceptable.
    #[error(transparent)]
    Path(#[from] PathError),
    /// An absolute URI naming another server (answered 502).
    #[error("Destination names another server")]
    OtherServer,
}

/// A validated, decoded resource path: `/` or `/seg/seg…` without a trailing slash.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DavPath {
    decoded: String,
}

impl DavPath {
    /// The root collection.
    pub fn root() -> DavPath {
        DavPath {
            decoded: "/".to_owned(),
        }
    }

    /// Parses a request-target path (no query, no fragment), percent-decoding each segment.
    /// Empty segments (`//`) are dropped; the trailing slash is not kept (see
    /// [`has_trailing_slash`]).
    pub fn parse(raw: &str) -> Result<DavPath, PathError> {
        if !raw.starts_with('/') {
            return Err(PathError::Malformed);
        }
        // A raw '#' or '?' here means the caller passed a fragment or query: refuse rather than
        // map to the prefix (a DELETE of "/c/#frag" must not delete "/c/").
        if raw
            .bytes()
            .any(|b| b == b'#' || b == b'?' || b <= b' ' || b == 0x7f)
        {
            return Err(PathError::Malformed);
        }
        let mut path = DavPath::root();
        for raw_seg in raw.split('/').filter(|s| !s.is_empty()) {
            let seg = percent_decode_str(raw_seg)
                .decode_utf8()
                .map_err(|_| PathError::Malformed)?;
            path = path.join(&seg)?;
        }
        Ok(path)
    }

    /// Appends one decoded segment, refusing anything that is not a plain name.
    pub fn join(&self, segment: &str) -> Result<DavPath, PathError> {
        check_segment(segment)?;
        let mut decoded = String::with_capacity(self.decoded.len() + 1 + segment.len());
        decoded.push_str(&self.decoded);
        if !self.is_root() {
            decoded.push('/');
        }
        decoded.push_str(segment);
        Ok(DavPath { decoded })
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.decoded == "/"
    }

    /// The decoded path, `/` or `/a/b` (the key under which metadata is stored).
    pub fn as_str(&self) -> &str {
        &self.decoded
    }

    /// The decoded segments, root first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.decoded.split('/').filter(|s| !s.is_empty())
    }

    /// The last segment, or `None` for the root.
    pub fn name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.decoded.rsplit('/').next()
        }
    }

    /// The parent collection, or `None` for the root.
    pub fn parent(&self) -> Option<DavPath> {
        if self.is_root() {
            return None;
        }
        let cut = self.decoded.rfind('/').unwrap_or(0);
        let decoded = if cut == 0 {
            "/".to_owned()
        } else {
            self.decoded[..cut].to_owned()
        };
        Some(DavPath { decoded })
    }

    /// True when `self` is `ancestor` or lies below it.
    pub fn starts_with(&self, ancestor: &DavPath) -> bool {
        if ancestor.is_root() {
            return true;
        }
        match self.decoded.strip_prefix(ancestor.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Rebases `self` from under `from` to under `to` (used by COPY and MOVE of trees).
    pub fn rebase(&self, from: &DavPath, to: &DavPath) -> Option<DavPath> {
        if !self.starts_with(from) {
            return None;
        }
        let rest = if from.is_root() {
            &self.decoded[..]
        } else {
            &self.decoded[from.decoded.len()..]
        };
        if rest.is_empty() || rest == "/" {
            return Some(to.clone());
        }
        let decoded = if to.is_root() {
            rest.to_owned()
        } else {
            format!("{}{}", to.decoded, rest)
        };
        Some(DavPath { decoded })
    }

    /// The href for this path: each segment percent-encoded, and a trailing `/` for collections.
    pub fn href(&self, collection: bool) -> String {
        let mut out = String::with_capacity(self.decoded.len() + 8);
        self.write_href(collection, &mut out);
        out
    }

    /// Appends the href to `out` (avoids an allocation per entry in long listings).
    pub fn write_href(&self, collection: bool, out: &mut String) {
        for seg in self.segments() {
            out.push('/');
            // A name that needs no escaping comes back borrowed and is copied whole.
            let encoded: std::borrow::Cow<'_, str> = utf8_percent_encode(seg, SEGMENT).into();
            out.push_str(&encoded);
        }
        if collection || self.is_root() {
            out.push('/');
        }
    }
}

impl fmt::Debug for DavPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.decoded, f)
    }
}

impl fmt::Display for DavPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.decoded)
    }
}

/// Percent-encodes one name as it appears in an href.
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// True when a raw request path ends with `/` (a collection was addressed).
pub fn has_trailing_slash(raw: &str) -> bool {
    raw.len() > 1 && raw.ends_with('/')
}

fn check_segment(seg: &str) -> Result<(), PathError> {
    if seg.is_empty() {
        return Err(PathError::Malformed);
    }
    if seg == "." || seg == ".." || seg.contains(['/', '\\', '\0']) {
        return Err(PathError::Forbidden);
    }
    Ok(())
}

/// Parses a `Destination` header (RFC 4918 §10.3): an absolute path, or an absolute URI whose
/// authority must equal `host` (the request's Host). The query and fragment are ignored.
pub fn parse_destination(value: &str, host: Option<&str>) -> Result<DavPath, DestinationError> {
    let value = value.trim();
    let path = if value.starts_with('/') {
        value
    } else {
        let (scheme, rest) = value.split_once("://").ok_or(DestinationError::Malformed)?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(DestinationError::Malformed);
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(DestinationError::Malformed);
        }
        if !same_authority(authority, host, scheme) {
            return Err(DestinationError::OtherServer);
        }
        path
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    Ok(DavPath::parse(path)?)
}

fn same_authority(authority: &str, host: Option<&str>, scheme: &str) -> bool {
    let Some(host) = host else {
        // Without a Host header there is nothing to compare against: accept.
        return true;
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    let norm = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        // An explicit default port names the same server as none.
        match a
            .strip_suffix(default_port)
            .and_then(|h| h.strip_suffix(':'))
        {
            Some(h) => h.to_owned(),
            None => a,
        }
    };
    norm(authority) == norm(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p = DavPath::parse("/a//b%20c/").unwrap();
        assert_eq!(p.as_str(), "/a/b c");
        assert_eq!(p.href(true), "/a/b%20c/");
        assert_eq!(DavPath::parse("/").unwrap(), DavPath::root());
        assert_eq!(DavPath::root().href(false), "/");
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "/..",
            "/a/../b",
            "/%2e%2e/x",
            "/a/%2E",
            "/a%2fb",
            "/a%5cb",
            "/a%00b",
        ] {
            assert_eq!(DavPath::parse(bad), Err(PathError::Forbidden), "{bad}");
        }
        for bad in ["a", "/a#b", "/a?b", "/%ff", "/a b", ""] {
            assert_eq!(DavPath::parse(bad), Err(PathError::Malformed), "{bad}");
        }
    }

    #[test]
    fn href_round_trips_hostile_names() {
        for name in [
            "a b", "100%", "#x", "q?", "a+b", "x&y", "<t>", "ü😀", "it's", "file\n1",
        ] {
            let p = DavPath::root().join(name).unwrap();
            let href = p.href(false);
            assert!(
                !href.contains([' ', '#', '?', '&', '<', '+', '\n']),
                "{href}"
            );
            assert_eq!(DavPath::parse(&href).unwrap(), p, "{name}");
        }
    }

    #[test]
    fn parent_rebase_and_prefix() {
        let p = DavPath::parse("/a/b/c").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/a/b");
        assert_eq!(
            DavPath::parse("/a").unwrap().parent().unwrap(),
            DavPath::root()
        );
        assert!(DavPath::root().parent().is_none());
        let a = DavPath::parse("/a").unwrap();
        assert!(p.starts_with(&a));
        assert!(!DavPath::parse("/ab").unwrap().starts_with(&a));
        let to = DavPath::parse("/x%20y").unwrap();
        assert_eq!(p.rebase(&a, &to).unwrap().as_str(), "/x y/b/c");
        assert_eq!(a.rebase(&a, &to).unwrap(), to);
        assert_eq!(p.name(), Some("c"));
    }

    #[test]
    fn destination_forms() {
        let host = Some("127.0.0.1:4918");
        assert_eq!(parse_destination("/x%20y", host).unwrap().as_str(), "/x y");
        assert_eq!(
            parse_destination("http://127.0.0.1:4918/a/b?q#f", host)
                .unwrap()
                .as_str(),
            "/a/b"
        );
        assert_eq!(
            parse_destination("http://localhost/a", Some("localhost:80"))
                .unwrap()
                .as_str(),
            "/a"
        );
        assert_eq!(
            parse_destination("http://other.invalid/x", host),
            Err(DestinationError::OtherServer)
        );
        assert_eq!(
            parse_destination("x", host),
            Err(DestinationError::Malformed)
        );
        assert!(matches!(
            parse_destination("/../etc", host),
            Err(DestinationError::Path(_))
        ));
    }
}
