//! The REPORT request documents (RFC 3253 §3.6): `DAV:sync-collection` (RFC 6578 §6.1), read
//! into a typed request; any other report is named so the server can refuse it with
//! `DAV:supported-report`.

use super::{parse_document, propfind_from, Limits, PropFind, QName, XmlError};

/// How far below the collection a sync reaches (RFC 6578 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncLevel {
    /// Immediate members only (`1`).
    One,
    /// Every descendant (`infinite`).
    Infinite,
}

impl SyncLevel {
    /// The element's text for this level.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncLevel::One => "1",
            SyncLevel::Infinite => "infinite",
        }
    }
}

/// A `DAV:sync-collection` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCollection {
    /// The token of an earlier sync; `None` for an initial sync (an empty `sync-token`).
    pub token: Option<String>,
    /// The requested level; `None` when the body has no `sync-level` (older drafts let the
    /// Depth header stand in).
    pub level: Option<SyncLevel>,
    /// The properties wanted for changed members (`DAV:prop`; `allprop` is accepted too).
    pub props: PropFind,
    /// `DAV:limit/DAV:nresults`, the most members the client wants in one answer.
    pub limit: Option<u64>,
}

/// What a REPORT body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// RFC 6578 sync-collection.
    SyncCollection(SyncCollection),
    /// A report davit does not know, by the name of its root element.
    Other(QName),
}

/// Parses a REPORT body. A body that is not XML, or a `sync-collection` that breaks the
/// RFC 6578 grammar, is an error (400); a well-formed report of another kind is
/// [`Report::Other`].
pub fn parse_report(body: &[u8], limits: &Limits) -> Result<Report, XmlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(XmlError::Invalid("a REPORT needs a body"));
    }
    let root = parse_document(body, limits)?;
    if !root.name.is_dav("sync-collection") {
        return Ok(Report::Other(root.name));
    }
    let mut token: Option<Option<String>> = None;
    let mut level = None;
    let mut limit = None;
    let mut has_props = false;
    for child in root.elements() {
        if child.name.is_dav("sync-token") {
            if child.elements().next().is_some() {
                return Err(XmlError::Invalid("sync-token holds elements"));
            }
            let text = child.text();
            let text = text.trim();
            let value = (!text.is_empty()).then(|| text.to_owned());
            if token.replace(value).is_some() {
                return Err(XmlError::Invalid("more than one sync-token"));
            }
        } else if child.name.is_dav("sync-level") {
            let l = match child.text().trim() {
                "1" => SyncLevel::One,
                "infinite" | "infinity" => SyncLevel::Infinite,
                _ => return Err(XmlError::Invalid("sync-level must be 1 or infinite")),
            };
            if level.replace(l).is_some() {
                return Err(XmlError::Invalid("more than one sync-level"));
            }
        } else if child.name.is_dav("limit") {
            let mut n = None;
            for l in child.elements() {
                if l.name.is_dav("nresults") {
                    let v = l
                        .text()
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| XmlError::Invalid("nresults must be a number"))?;
                    if n.replace(v).is_some() {
                        return Err(XmlError::Invalid("more than one nresults"));
                    }
                }
            }
            let n = n.ok_or(XmlError::Invalid("limit without nresults"))?;
            if limit.replace(n).is_some() {
                return Err(XmlError::Invalid("more than one limit"));
            }
        } else if child.name.is_dav("prop")
            || child.name.is_dav("allprop")
            || child.name.is_dav("propname")
        {
            has_props = true;
        }
    }
    let token = token.ok_or(XmlError::Invalid("sync-collection needs a sync-token"))?;
    if !has_props {
        return Err(XmlError::Invalid("sync-collection needs a DAV:prop"));
    }
    let props = propfind_from(&root)?;
    Ok(Report::SyncCollection(SyncCollection {
        token,
        level,
        props,
        limit,
    }))
}

impl SyncCollection {
    /// The request body that asks for this (what a client sends).
    pub fn to_xml(&self) -> String {
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:sync-collection xmlns:D=\"DAV:\">",
        );
        match &self.token {
            None => out.push_str("<D:sync-token/>"),
            Some(t) => {
                out.push_str("<D:sync-token>");
                super::escape_text(t, &mut out);
                out.push_str("</D:sync-token>");
            }
        }
        if let Some(l) = self.level {
            out.push_str("<D:sync-level>");
            out.push_str(l.as_str());
            out.push_str("</D:sync-level>");
        }
        if let Some(n) = self.limit {
            out.push_str("<D:limit><D:nresults>");
            out.push_str(&n.to_string());
            out.push_str("</D:nresults></D:limit>");
        }
        self.props.write_props(&mut out);
        out.push_str("</D:sync-collection>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Report, XmlError> {
        parse_report(s.as_bytes(), &Limits::default())
    }

    fn sync(s: &str) -> SyncCollection {
        match parse(s) {
            Ok(Report::SyncCollection(s)) => s,
            other => panic!("not a sync-collection: {other:?}"),
        }
    }

    #[test]
    fn initial_sync_with_empty_token() {
        let s = sync(
            r#"<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>
               <D:prop><D:getetag/></D:prop></D:sync-collection>"#,
        );
        assert_eq!(s.token, None);
        assert_eq!(s.level, Some(SyncLevel::One));
        assert_eq!(s.props, PropFind::Prop(vec![QName::dav("getetag")]));
        assert_eq!(s.limit, None);
    }

    #[test]
    fn token_level_infinite_and_limit() {
        let s = sync(
            r#"<sync-collection xmlns="DAV:"><sync-token> urn:x:1 </sync-token>
               <sync-level>infinite</sync-level><limit><nresults>7</nresults></limit>
               <prop><getetag/></prop></sync-collection>"#,
        );
        assert_eq!(s.token.as_deref(), Some("urn:x:1"));
        assert_eq!(s.level, Some(SyncLevel::Infinite));
        assert_eq!(s.limit, Some(7));
    }

    #[test]
    fn bad_level_limit_or_missing_parts_are_errors() {
        let bodies = [
            r#"<sync-collection xmlns="DAV:"><sync-token/><sync-level>2</sync-level><prop/></sync-collection>"#,
            r#"<sync-collection xmlns="DAV:"><sync-token/><sync-level>1</sync-level><limit><nresults>x</nresults></limit><prop/></sync-collection>"#,
            r#"<sync-collection xmlns="DAV:"><sync-level>1</sync-level><prop/></sync-collection>"#,
            r#"<sync-collection xmlns="DAV:"><sync-token/><sync-level>1</sync-level></sync-collection>"#,
            r#"<sync-collection xmlns="DAV:"><sync-token/><sync-token/><prop/></sync-collection>"#,
            "",
            "<not-xml",
        ];
        for b in bodies {
            assert!(parse(b).is_err(), "{b}");
        }
    }

    #[test]
    fn other_reports_are_named() {
        assert_eq!(
            parse(r#"<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"/>"#),
            Ok(Report::Other(QName::new(
                "urn:ietf:params:xml:ns:caldav",
                "calendar-query"
            )))
        );
    }

    #[test]
    fn to_xml_round_trips() {
        let s = SyncCollection {
            token: Some("urn:davit:sync:a<b:3".into()),
            level: Some(SyncLevel::Infinite),
            props: PropFind::Prop(vec![QName::dav("getetag"), QName::new("urn:x", "y")]),
            limit: Some(2),
        };
        assert_eq!(parse(&s.to_xml()), Ok(Report::SyncCollection(s)));
    }
}
