//! Locking documents: `lockinfo` (RFC 4918 §14.11) in, `activelock` (§14.1) and
//! `supportedlock` (§15.10) out.

use super::{escape_text, parse_document, Limits, XmlError};

/// Exclusive or shared (§6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// Conflicts with every other lock.
    Exclusive,
    /// Coexists with other shared locks.
    Shared,
}

impl LockScope {
    /// The element's local name.
    pub fn as_str(self) -> &'static str {
        match self {
            LockScope::Exclusive => "exclusive",
            LockScope::Shared => "shared",
        }
    }
}

/// A LOCK request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// Requested scope (the only lock type is write).
    pub scope: LockScope,
    /// The `DAV:owner` element, kept whole as a self-contained fragment.
    pub owner: Option<String>,
}

/// Parses a `lockinfo` body. Missing `lockscope` or `locktype`, or anything but a write lock,
/// is an error.
pub fn parse_lockinfo(body: &[u8], limits: &Limits) -> Result<LockInfo, XmlError> {
    let root = parse_document(body, limits)?;
    if !root.name.is_dav("lockinfo") {
        return Err(XmlError::Invalid("the body is not a DAV:lockinfo"));
    }
    let mut scope = None;
    let mut write = false;
    let mut owner = None;
    for child in root.elements() {
        if child.name.is_dav("lockscope") {
            for s in child.elements() {
                if s.name.is_dav("exclusive") {
                    scope = Some(LockScope::Exclusive);
                } else if s.name.is_dav("shared") {
                    scope = Some(LockScope::Shared);
                } else {
                    return Err(XmlError::Invalid("unknown lock scope"));
                }
            }
        } else if child.name.is_dav("locktype") {
            for t in child.elements() {
                if t.name.is_dav("write") {
                    write = true;
                } else {
                    return Err(XmlError::Invalid("only write locks are supported"));
                }
            }
        } else if child.name.is_dav("owner") {
            owner = Some(child.to_fragment());
        }
    }
    let scope = scope.ok_or(XmlError::Invalid("lockinfo has no lockscope"))?;
    if !write {
        return Err(XmlError::Invalid("lockinfo has no write locktype"));
    }
    Ok(LockInfo { scope, owner })
}

/// An active lock as reported in `lockdiscovery`.
#[derive(Debug, Clone, Copy)]
pub struct ActiveLock<'a> {
    /// Scope.
    pub scope: LockScope,
    /// Depth infinity (otherwise 0).
    pub infinite_depth: bool,
    /// The owner element fragment, as given.
    pub owner: Option<&'a str>,
    /// Seconds left, or `None` for an infinite lock.
    pub seconds_left: Option<u64>,
    /// The lock token URI.
    pub token: &'a str,
    /// The href of the lock root.
    pub root_href: &'a str,
}

/// Appends `<D:activelock>…</D:activelock>` (the `D:` prefix must be bound to `DAV:`).
pub fn write_activelock(lock: &ActiveLock<'_>, out: &mut String) {
    out.push_str("<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:");
    out.push_str(lock.scope.as_str());
    out.push_str("/></D:lockscope><D:depth>");
    out.push_str(if lock.infinite_depth { "infinity" } else { "0" });
    out.push_str("</D:depth>");
    if let Some(owner) = lock.owner {
        out.push_str(owner);
    }
    out.push_str("<D:timeout>");
    match lock.seconds_left {
        Some(s) => {
            out.push_str("Second-");
            out.push_str(&s.to_string());
        }
        None => out.push_str("Infinite"),
    }
    out.push_str("</D:timeout><D:locktoken><D:href>");
    escape_text(lock.token, out);
    out.push_str("</D:href></D:locktoken><D:lockroot><D:href>");
    escape_text(lock.root_href, out);
    out.push_str("</D:href></D:lockroot></D:activelock>");
}

/// The value of `supportedlock`: exclusive and shared write locks.
pub const SUPPORTED_LOCK: &str = "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<LockInfo, XmlError> {
        parse_lockinfo(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn lockinfo_forms() {
        let li = parse(r#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>mailto:a@b</D:href><z:x xmlns:z="urn:z" a="1"/></D:owner></D:lockinfo>"#).unwrap();
        assert_eq!(li.scope, LockScope::Exclusive);
        let owner = li.owner.unwrap();
        assert!(owner.starts_with(r#"<D:owner xmlns:D="DAV:">"#), "{owner}");
        assert!(owner.contains(r#"<z:x xmlns:z="urn:z" a="1"/>"#));
        let li = parse(r#"<lockinfo xmlns="DAV:"><locktype><write/></locktype><lockscope><shared/></lockscope></lockinfo>"#).unwrap();
        assert_eq!(
            li,
            LockInfo {
                scope: LockScope::Shared,
                owner: None
            }
        );
    }

    #[test]
    fn lockinfo_errors() {
        assert!(
            parse(r#"<lockinfo xmlns="DAV:"><locktype><write/></locktype></lockinfo>"#).is_err()
        );
        assert!(
            parse(r#"<lockinfo xmlns="DAV:"><lockscope><shared/></lockscope></lockinfo>"#).is_err()
        );
        assert!(parse(r#"<lockinfo xmlns="DAV:"><lockscope><odd/></lockscope><locktype><write/></locktype></lockinfo>"#).is_err());
        assert!(parse(r#"<propfind xmlns="DAV:"/>"#).is_err());
    }

    #[test]
    fn activelock_parses_back() {
        let mut out = String::from(r#"<D:prop xmlns:D="DAV:"><D:lockdiscovery>"#);
        write_activelock(
            &ActiveLock {
                scope: LockScope::Shared,
                infinite_depth: true,
                owner: Some(r#"<D:owner xmlns:D="DAV:">me</D:owner>"#),
                seconds_left: Some(60),
                token: "urn:uuid:1",
                root_href: "/a%20b/",
            },
            &mut out,
        );
        out.push_str("</D:lockdiscovery></D:prop>");
        let root = parse_document(out.as_bytes(), &Limits::default()).unwrap();
        let active = root.elements().next().unwrap().elements().next().unwrap();
        assert!(active.name.is_dav("activelock"));
        let names: Vec<_> = active.elements().map(|e| e.name.local.as_str()).collect();
        assert_eq!(
            names,
            [
                "locktype",
                "lockscope",
                "depth",
                "owner",
                "timeout",
                "locktoken",
                "lockroot"
            ]
        );
    }
}
