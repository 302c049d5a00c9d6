//! The request bodies of RFC 5842's methods: `DAV:bind` and `DAV:rebind` (a segment and the
//! href of the resource to bind) and `DAV:unbind` (a segment).

use super::{escape_text, parse_document, Limits, XmlError};

/// What a BIND, UNBIND or REBIND body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindRequest {
    /// The name of the binding in the Request-URI collection (one path segment).
    pub segment: String,
    /// The resource to bind (BIND, REBIND): an absolute URI or path, as the client sent it.
    pub href: Option<String>,
}

/// Which of the three methods a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMethod {
    /// `DAV:bind` (RFC 5842 §4).
    Bind,
    /// `DAV:unbind` (§5).
    Unbind,
    /// `DAV:rebind` (§6).
    Rebind,
}

impl BindRequest {
    /// The request body for `method` (what a client sends).
    pub fn to_xml(&self, method: BindMethod) -> String {
        let root = method.root();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:{root} xmlns:D=\"DAV:\"><D:segment>"
        );
        escape_text(&self.segment, &mut out);
        out.push_str("</D:segment>");
        if let Some(href) = &self.href {
            out.push_str("<D:href>");
            escape_text(href, &mut out);
            out.push_str("</D:href>");
        }
        out.push_str("</D:");
        out.push_str(root);
        out.push('>');
        out
    }
}

impl BindMethod {
    /// The HTTP method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BindMethod::Bind => "BIND",
            BindMethod::Unbind => "UNBIND",
            BindMethod::Rebind => "REBIND",
        }
    }

    fn root(self) -> &'static str {
        match self {
            BindMethod::Bind => "bind",
            BindMethod::Unbind => "unbind",
            BindMethod::Rebind => "rebind",
        }
    }
}

/// Parses the body of `method`. The segment must be one non-empty path segment (no `/`, not
/// `.` or `..`); BIND and REBIND need exactly one href, UNBIND none.
pub fn parse_bind(
    method: BindMethod,
    body: &[u8],
    limits: &Limits,
) -> Result<BindRequest, XmlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(XmlError::Invalid("the request needs a body"));
    }
    let root = parse_document(body, limits)?;
    if !root.name.is_dav(method.root()) {
        return Err(XmlError::Invalid(match method {
            BindMethod::Bind => "the body must be a DAV:bind element",
            BindMethod::Unbind => "the body must be a DAV:unbind element",
            BindMethod::Rebind => "the body must be a DAV:rebind element",
        }));
    }
    let mut segment = None;
    let mut href = None;
    for child in root.elements() {
        if child.name.is_dav("segment") {
            if child.elements().next().is_some() {
                return Err(XmlError::Invalid("segment holds elements"));
            }
            if segment.replace(child.text()).is_some() {
                return Err(XmlError::Invalid("more than one segment"));
            }
        } else if child.name.is_dav("href") {
            if child.elements().next().is_some() {
                return Err(XmlError::Invalid("href holds elements"));
            }
            if href.replace(child.text().trim().to_owned()).is_some() {
                return Err(XmlError::Invalid("more than one href"));
            }
        }
    }
    let segment = segment.ok_or(XmlError::Invalid("a segment is required"))?;
    if segment.is_empty() || segment.contains('/') || segment == "." || segment == ".." {
        return Err(XmlError::Invalid("the segment must be one path segment"));
    }
    match (method, &href) {
        (BindMethod::Unbind, Some(_)) => Err(XmlError::Invalid("unbind takes no href")),
        (BindMethod::Bind | BindMethod::Rebind, None) => {
            Err(XmlError::Invalid("an href is required"))
        }
        (BindMethod::Bind | BindMethod::Rebind, Some(h)) if h.is_empty() => {
            Err(XmlError::Invalid("the href is empty"))
        }
        _ => Ok(BindRequest { segment, href }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: BindMethod, body: &str) -> Result<BindRequest, XmlError> {
        parse_bind(method, body.as_bytes(), &Limits::default())
    }

    #[test]
    fn reads_the_three_bodies() {
        let b = parse(
            BindMethod::Bind,
            r#"<D:bind xmlns:D="DAV:"><D:segment>s p</D:segment><D:href>/a/f</D:href></D:bind>"#,
        );
        assert_eq!(
            b,
            Ok(BindRequest {
                segment: "s p".into(),
                href: Some("/a/f".into())
            })
        );
        let u = parse(
            BindMethod::Unbind,
            r#"<unbind xmlns="DAV:"><segment>s</segment></unbind>"#,
        );
        assert_eq!(
            u,
            Ok(BindRequest {
                segment: "s".into(),
                href: None
            })
        );
        let r = parse(
            BindMethod::Rebind,
            r#"<D:rebind xmlns:D="DAV:"><D:segment>n</D:segment><D:href>http://h/a/f</D:href></D:rebind>"#,
        );
        assert_eq!(r.map(|r| r.href), Ok(Some("http://h/a/f".into())));
    }

    #[test]
    fn writes_what_it_reads() {
        let r = BindRequest {
            segment: "a <&> b".into(),
            href: Some("/x/y%20z".into()),
        };
        for m in [BindMethod::Bind, BindMethod::Rebind] {
            assert_eq!(parse(m, &r.to_xml(m)), Ok(r.clone()));
        }
        let u = BindRequest {
            segment: "s".into(),
            href: None,
        };
        assert_eq!(
            parse(BindMethod::Unbind, &u.to_xml(BindMethod::Unbind)),
            Ok(u)
        );
    }

    #[test]
    fn refuses_what_breaks_the_grammar() {
        let bad = [
            (BindMethod::Bind, ""),
            (BindMethod::Bind, "<D:bind xmlns:D=\"DAV:\"><D:segment>s</D:segment></D:bind>"),
            (BindMethod::Bind, "<D:bind xmlns:D=\"DAV:\"><D:href>/a</D:href></D:bind>"),
            (BindMethod::Bind, "<D:bind xmlns:D=\"DAV:\"><D:segment>a/b</D:segment><D:href>/a</D:href></D:bind>"),
            (BindMethod::Bind, "<D:bind xmlns:D=\"DAV:\"><D:segment>..</D:segment><D:href>/a</D:href></D:bind>"),
            (BindMethod::Bind, "<D:bind xmlns:D=\"DAV:\"><D:segment></D:segment><D:href>/a</D:href></D:bind>"),
            (BindMethod::Bind, "<D:unbind xmlns:D=\"DAV:\"><D:segment>s</D:segment></D:unbind>"),
            (BindMethod::Unbind, "<D:unbind xmlns:D=\"DAV:\"><D:segment>s</D:segment><D:href>/a</D:href></D:unbind>"),
            (BindMethod::Rebind, "<D:rebind xmlns:D=\"DAV:\"><D:segment>s</D:segment><D:segment>t</D:segment><D:href>/a</D:href></D:rebind>"),
            (BindMethod::Rebind, "<D:rebind xmlns:D=\"DAV:\"><D:segment>s</D:segment><D:href>/a</D:href"),
        ];
        for (method, body) in bad {
            assert!(parse(method, body).is_err(), "{body}");
        }
    }
}
