//! A small namespace-resolved element tree, read with limits, and written back as a
//! self-contained fragment (how dead properties are stored and returned).

use super::XML_NS;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// A namespace-qualified name. `ns` is empty for names in no namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QName {
    /// Namespace name (URI), `""` for none.
    pub ns: String,
    /// Local name.
    pub local: String,
}

impl QName {
    /// Builds a name.
    pub fn new(ns: impl Into<String>, local: impl Into<String>) -> QName {
        QName {
            ns: ns.into(),
            local: local.into(),
        }
    }

    /// A name in the `DAV:` namespace.
    pub fn dav(local: &str) -> QName {
        QName::new(super::DAV, local)
    }

    /// True when this is `{DAV:}local`.
    pub fn is_dav(&self, local: &str) -> bool {
        self.ns == super::DAV && self.local == local
    }
}

/// An attribute; namespace declarations are not kept as attributes (they are regenerated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// Resolved name.
    pub name: QName,
    /// Prefix as written, kept so stored values keep their look.
    pub prefix: Option<String>,
    /// Unescaped value.
    pub value: String,
}

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (text and CDATA, references resolved), adjacent pieces merged.
    Text(String),
}

/// An element with resolved names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// Resolved name.
    pub name: QName,
    /// Prefix as written.
    pub prefix: Option<String>,
    /// Attributes other than namespace declarations, `xml:lang` included.
    pub attrs: Vec<Attribute>,
    /// Children in document order.
    pub children: Vec<Node>,
    /// The `xml:lang` in scope here, set on this element or inherited.
    pub lang: Option<String>,
}

/// Bounds on what a request body may cost to parse.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Maximum element nesting.
    pub max_depth: usize,
    /// Maximum number of elements in the document; attributes (namespace declarations aside)
    /// may number four times as many.
    pub max_elements: usize,
}

/// Attributes a document may hold per element it may hold. A parsed attribute takes about
/// 120 bytes for the six of `a1=""`: 60 MiB of them took 1 GB before this bound.
const ATTRIBUTES_PER_ELEMENT: usize = 4;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_elements: 100_000,
        }
    }
}

/// Why a body was refused; each maps to 400 with the message as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed.
    #[error("malformed XML: {0}")]
    Syntax(String),
    /// Breaks the Namespaces in XML rules (undeclared prefix, `xmlns:p=""`).
    #[error("XML namespace error: {0}")]
    Namespace(String),
    /// DTDs and entity declarations.
    #[error("XML DTDs and entities are not accepted")]
    Dtd,
    /// Over [`Limits`].
    #[error("XML document too large or too deeply nested")]
    TooLarge,
    /// Well-formed, but not the document this request needs.
    #[error("{0}")]
    Invalid(&'static str),
}

impl Element {
    /// Child elements, skipping text.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Concatenated text of the direct text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Writes this element as a self-contained fragment: every namespace it uses is declared
    /// inside it, prefixes are kept where possible, and an inherited `xml:lang` is made
    /// explicit, so the fragment means the same wherever it is embedded (in a document that
    /// declares no default namespace).
    pub fn to_fragment(&self) -> String {
        let mut out = String::new();
        let mut scope: Vec<(String, String)> = Vec::new();
        let inherited_lang = self
            .lang
            .as_deref()
            .filter(|_| !self.attrs.iter().any(|a| is_xml_lang(&a.name)));
        write_element(self, &mut out, &mut scope, inherited_lang);
        out
    }
}

fn is_xml_lang(n: &QName) -> bool {
    n.ns == XML_NS && n.local == "lang"
}

fn lookup<'a>(scope: &'a [(String, String)], prefix: &str) -> &'a str {
    scope
        .iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .map(|(_, ns)| ns.as_str())
        .unwrap_or("")
}

fn write_element(
    e: &Element,
    out: &mut String,
    scope: &mut Vec<(String, String)>,
    extra_lang: Option<&str>,
) {
    let mark = scope.len();
    // Elements in a namespace keep their prefix; ones without a prefix use the default one.
    let prefix = if e.name.ns.is_empty() {
        ""
    } else {
        e.prefix.as_deref().unwrap_or("")
    };
    let mut decls: Vec<(String, String)> = Vec::new();
    if lookup(scope, prefix) != e.name.ns {
        decls.push((prefix.to_owned(), e.name.ns.clone()));
    }
    for a in &e.attrs {
        if a.name.ns.is_empty() || a.name.ns == XML_NS {
            continue;
        }
        // A namespaced attribute needs a prefix; invent one if it had none (cannot happen for
        // parsed input, but keeps hand-built trees correct).
        let p = a.prefix.clone().unwrap_or_else(|| "ns".to_owned());
        if lookup(scope, &p) != a.name.ns && !decls.iter().any(|(dp, _)| *dp == p) {
            decls.push((p, a.name.ns.clone()));
        }
    }
    out.push('<');
    push_qname(out, prefix, &e.name.local);
    for (p, ns) in &decls {
        if p.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(p);
            out.push_str("=\"");
        }
        super::escape_attr(ns, out);
        out.push('"');
    }
    scope.extend(decls);
    if let Some(lang) = extra_lang {
        out.push_str(" xml:lang=\"");
        super::escape_attr(lang, out);
        out.push('"');
    }
    for a in &e.attrs {
        out.push(' ');
        if a.name.ns == XML_NS {
            out.push_str("xml:");
        } else if !a.name.ns.is_empty() {
            out.push_str(a.prefix.as_deref().unwrap_or("ns"));
            out.push(':');
        }
        out.push_str(&a.name.local);
        out.push_str("=\"");
        super::escape_attr(&a.value, out);
        out.push('"');
    }
    if e.children.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        for child in &e.children {
            match child {
                Node::Text(t) => super::escape_text(t, out),
                Node::Element(c) => write_element(c, out, scope, None),
            }
        }
        out.push_str("</");
        push_qname(out, prefix, &e.name.local);
        out.push('>');
    }
    scope.truncate(mark);
}

fn push_qname(out: &mut String, prefix: &str, local: &str) {
    if !prefix.is_empty() {
        out.push_str(prefix);
        out.push(':');
    }
    out.push_str(local);
}

/// Parses a whole request body into its root element.
///
/// Accepts UTF-8 (with or without BOM) and UTF-16 with a BOM. Refuses DTDs, undefined entities,
/// broken namespace rules, several roots, and anything over `limits`.
pub fn parse_document(body: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    let text = decode_body(body)?;
    let mut reader = NsReader::from_str(&text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let mut attributes = 0usize;
    let max_attributes = limits.max_elements.saturating_mul(ATTRIBUTES_PER_ELEMENT);
    loop {
        let event = reader.read_event().map_err(read_error)?;
        match event {
            Event::Start(ref s) | Event::Empty(ref s) => {
                if root.is_some() {
                    return Err(XmlError::Syntax("content after the root element".into()));
                }
                count += 1;
                if count > limits.max_elements || stack.len() >= limits.max_depth {
                    return Err(XmlError::TooLarge);
                }
                let parent_lang = stack.last().and_then(|p| p.lang.clone());
                let el = read_start(&reader, s, parent_lang)?;
                attributes += el.attrs.len();
                if attributes > max_attributes {
                    return Err(XmlError::TooLarge);
                }
                if matches!(event, Event::Start(_)) {
                    stack.push(el);
                } else {
                    attach(&mut stack, &mut root, el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Syntax("unmatched end tag".into()))?;
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let s = t.xml10_content();
                check_chars(&s)?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let s = c.xml10_content();
                check_chars(&s)?;
                push_text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                let ch = ref_char(&r)?;
                push_text(&mut stack, ch.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax("unexpected end of document".into()));
    }
    root.ok_or_else(|| XmlError::Syntax("no root element".into()))
}

fn decode_body(body: &[u8]) -> Result<String, XmlError> {
    let utf16 = |bytes: &[u8], le: bool| -> Result<String, XmlError> {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units).map_err(|_| XmlError::Syntax("invalid UTF-16".into()))
    };
    match body {
        [0xEF, 0xBB, 0xBF, rest @ ..] => std::str::from_utf8(rest).map(str::to_owned),
        [0xFF, 0xFE, rest @ ..] => return utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => return utf16(rest, false),
        _ => std::str::from_utf8(body).map(str::to_owned),
    }
    .map_err(|_| XmlError::Syntax("body is not UTF-8".into()))
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(el) => {
            if let Some(Node::Text(prev)) = el.children.last_mut() {
                prev.push_str(s);
            } else if !s.is_empty() {
                el.children.push(Node::Text(s.to_owned()));
            }
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(XmlError::Syntax("text outside the root element".into())),
    }
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None => *root = Some(el),
    }
}

/// Reads a start tag into an element: names resolved and checked, attribute values unescaped
/// and checked, `xml:lang` inherited. Shared with the Multi-Status reader.
pub(crate) fn read_start<R>(
    reader: &NsReader<R>,
    s: &BytesStart<'_>,
    parent_lang: Option<String>,
) -> Result<Element, XmlError> {
    let (res, local) = reader.resolver().resolve_element(s.name());
    let ns = resolved(res)?;
    // Namespaces in XML 1.0 §3: the `xml` and `xmlns` namespaces are reserved, and no prefix
    // but their own may name them, so an element in one could never be written back with a
    // declared prefix. No WebDAV client names a property there.
    if ns == XMLNS_NS || ns == XML_NS {
        return Err(XmlError::Namespace(
            "an element name in a reserved namespace (xml, xmlns)".into(),
        ));
    }
    let name = QName::new(ns, name_part(local.as_ref())?);
    let prefix = match s.name().prefix() {
        Some(p) => Some(name_part(p.as_ref())?),
        None => None,
    };
    // No element needs more; bounded before any is parsed (quick-xml's duplicate check was
    // quadratic before 0.41). '=' also counts those inside values, which only makes the bound
    // stricter.
    if s.attributes_raw().bytes().filter(|&b| b == b'=').count() > MAX_ATTRIBUTES {
        return Err(XmlError::TooLarge);
    }
    let mut attrs = Vec::new();
    let mut lang = parent_lang;
    for attr in s.attributes() {
        let attr = attr.map_err(|e| XmlError::Syntax(e.to_string()))?;
        let key = attr.key;
        // Unescaped as namespace names are (see `resolved`), not whitespace-normalised: a
        // value reads back exactly as it was written.
        let value = quick_xml::escape::unescape(&attr.value)
            .map_err(|e| XmlError::Syntax(e.to_string()))?
            .into_owned();
        check_chars(&value)?;
        // The reserved namespaces can be neither declared nor redeclared (§3): `xml` may be
        // bound only to its own namespace, and nothing else to that one.
        let reserved = |prefix: &str| {
            prefix == "xmlns" || value == XMLNS_NS || ((prefix == "xml") != (value == XML_NS))
        };
        if key.as_ref() == "xmlns" {
            if reserved("") {
                return Err(XmlError::Namespace(
                    "the xmlns namespace cannot be declared".into(),
                ));
            }
            continue;
        }
        if let Some(declared) = key.as_ref().strip_prefix("xmlns:") {
            name_part(declared)?;
            if reserved(declared) {
                return Err(XmlError::Namespace(
                    "the xmlns prefix or namespace cannot be declared".into(),
                ));
            }
            // Namespaces in XML 1.0 §3: a prefix can never be bound to the empty name.
            if value.is_empty() {
                return Err(XmlError::Namespace(
                    "a prefix is bound to an empty namespace".into(),
                ));
            }
            continue;
        }
        let (res, alocal) = reader.resolver().resolve_attribute(key);
        let ans = resolved(res)?;
        let aname = QName::new(ans, name_part(alocal.as_ref())?);
        if is_xml_lang(&aname) {
            lang = Some(value.clone());
        }
        let aprefix = match key.prefix() {
            Some(p) => Some(name_part(p.as_ref())?),
            None => None,
        };
        attrs.push(Attribute {
            name: aname,
            prefix: aprefix,
            value,
        });
    }
    Ok(Element {
        name,
        prefix,
        attrs,
        children: Vec::new(),
        lang,
    })
}

/// A reader error as an `XmlError`: quick-xml's own bounds (namespace bindings in scope,
/// nesting) are limits like ours, so they answer 413 rather than 400.
pub(crate) fn read_error(e: quick_xml::Error) -> XmlError {
    use quick_xml::name::NamespaceError;
    match e {
        quick_xml::Error::Namespace(
            NamespaceError::TooManyBindings(_) | NamespaceError::TooDeeplyNested(_),
        ) => XmlError::TooLarge,
        other => XmlError::Syntax(other.to_string()),
    }
}

/// The namespace of namespace declarations, reserved by Namespaces in XML 1.0 §3.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Most attributes (namespace declarations included) one element may carry.
const MAX_ATTRIBUTES: usize = 256;

/// One part of a qualified name (prefix or local name) must be an XML NCName, so that what is
/// stored can always be written back as well-formed XML.
fn name_part(s: &str) -> Result<String, XmlError> {
    let mut chars = s.chars();
    // Non-ASCII name characters must still be XML characters (U+FFFE and U+FFFF are not).
    let first_ok = chars.next().is_some_and(|c| {
        c == '_' || c.is_alphabetic() || (!c.is_ascii() && !c.is_control() && xml_char(c))
    });
    let rest_ok = chars.all(|c| {
        c == '_'
            || c == '-'
            || c == '.'
            || c.is_alphanumeric()
            || (!c.is_ascii() && !c.is_control() && xml_char(c))
    });
    if first_ok && rest_ok {
        Ok(s.to_owned())
    } else {
        Err(XmlError::Syntax(format!("invalid XML name {s:?}")))
    }
}

/// True for the characters XML 1.0 allows in a document.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Refuses text holding characters XML 1.0 does not allow (control characters, U+FFFE...).
/// Byte-wise rather than per `char`: batch documents carry megabytes of text.
pub(crate) fn check_chars(s: &str) -> Result<(), XmlError> {
    let b = s.as_bytes();
    // C0 controls other than tab, newline and carriage return. No early exit, so the loop
    // runs over whole vectors.
    let controls = b.iter().fold(false, |bad, &c| {
        bad | (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'))
    });
    // Above ASCII a `str` holds no surrogates, so the only characters left to refuse are
    // U+FFFE and U+FFFF (EF BF BE, EF BF BF).
    let nonchars = || {
        memchr::memchr_iter(0xEF, b)
            .any(|i| b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)))
    };
    if controls || nonchars() {
        Err(XmlError::Syntax("a character XML does not allow".into()))
    } else {
        Ok(())
    }
}

/// The character a general reference stands for: a predefined entity or a character
/// reference to an allowed character. Anything else needs a DTD, which is refused.
pub(crate) fn ref_char(r: &quick_xml::events::BytesRef<'_>) -> Result<char, XmlError> {
    let c = match r.resolve_char_ref() {
        Ok(Some(c)) => c,
        Ok(None) => match &**r {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => return Err(XmlError::Dtd),
        },
        Err(e) => return Err(XmlError::Syntax(e.to_string())),
    };
    if xml_char(c) {
        Ok(c)
    } else {
        Err(XmlError::Syntax(
            "a character reference XML does not allow".into(),
        ))
    }
}

/// The namespace name a prefix resolved to. quick-xml hands over the raw attribute value, so
/// it is unescaped (and checked) here: `xmlns="urn:a&amp;b"` names `urn:a&b`.
pub(crate) fn resolved(res: ResolveResult<'_>) -> Result<String, XmlError> {
    match res {
        ResolveResult::Bound(ns) => {
            let name = quick_xml::escape::unescape(ns.as_ref())
                .map_err(|e| XmlError::Syntax(format!("bad namespace name: {e}")))?
                .into_owned();
            check_chars(&name)?;
            Ok(name)
        }
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(XmlError::Namespace(format!("undeclared prefix {p:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Element, XmlError> {
        parse_document(s.as_bytes(), &Limits::default())
    }

    /// The byte-wise check agrees with the definition (`xml_char`) on every character, alone
    /// and between others, and at the end of the text (a cut-off EF BF).
    #[test]
    fn check_chars_agrees_with_xml_char_on_every_character() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let alone = c.to_string();
            let inside = format!("ab{c}cd\u{FFFD}");
            let want = xml_char(c);
            assert_eq!(check_chars(&alone).is_ok(), want, "U+{:04X}", u32::from(c));
            assert_eq!(
                check_chars(&inside).is_ok(),
                want,
                "U+{:04X} inside",
                u32::from(c)
            );
        }
        assert!(check_chars("x\u{FFFD}\u{EFFF}\u{FFEF}").is_ok());
        assert!(check_chars("\u{FFFD}\u{FFFF}").is_err());
    }

    #[test]
    fn attributes_are_bounded_by_the_element_limit() {
        let limits = Limits {
            max_depth: 8,
            max_elements: 10,
        };
        let el = |n: usize| {
            let attrs: String = (0..n).map(|i| format!(" a{i}=\"\"")).collect();
            format!("<x{attrs}/>")
        };
        // Four per element allowed: 10 elements may carry 40 between them.
        let doc = format!("<r>{}</r>", el(40));
        assert!(parse_document(doc.as_bytes(), &limits).is_ok());
        let doc = format!("<r>{}{}</r>", el(40), el(1));
        assert_eq!(
            parse_document(doc.as_bytes(), &limits),
            Err(XmlError::TooLarge)
        );
    }

    #[test]
    fn namespace_declarations_are_bounded() {
        // quick-xml keeps every binding in scope; a start tag declaring thousands of them
        // made it allocate about three times the tag (RUSTSEC-2026-0195).
        let decls: String = (0..5000)
            .map(|i| format!(" xmlns:p{i}=\"urn:x\""))
            .collect();
        let doc = format!("<D:propfind xmlns:D=\"DAV:\"{decls}><D:allprop/></D:propfind>");
        assert_eq!(parse(&doc), Err(XmlError::TooLarge));
        // Spread over nested elements, they are still in scope at once.
        let nested: String = (0..200)
            .map(|i| format!("<p{i}:x xmlns:p{i}=\"urn:{i}\">"))
            .collect();
        let doc = format!("<D:prop xmlns:D=\"DAV:\">{nested}");
        let limits = Limits {
            max_depth: 1000,
            ..Limits::default()
        };
        assert_eq!(
            parse_document(doc.as_bytes(), &limits),
            Err(XmlError::TooLarge)
        );
        // A realistic number is fine.
        let few: String = (0..20)
            .map(|i| format!(" xmlns:p{i}=\"urn:{i}\""))
            .collect();
        assert!(parse(&format!(
            "<D:propfind xmlns:D=\"DAV:\"{few}><D:allprop/></D:propfind>"
        ))
        .is_ok());
    }

    #[test]
    fn resolves_any_prefix_and_default() {
        for doc in [
            r#"<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#,
            r#"<propfind xmlns="DAV:"><allprop/></propfind>"#,
            r#"<?xml version="1.0"?><x:propfind xmlns:x="DAV:"> <x:allprop/> </x:propfind>"#,
        ] {
            let root = parse(doc).unwrap();
            assert!(root.name.is_dav("propfind"));
            assert!(root.elements().next().unwrap().name.is_dav("allprop"));
        }
    }

    #[test]
    fn refuses_bad_documents() {
        assert!(matches!(parse("<a><b></a>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<a>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse(""), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<a/><b/>"), Err(XmlError::Syntax(_))));
        assert!(matches!(parse("<x:a/>"), Err(XmlError::Namespace(_))));
        assert!(matches!(
            parse(r#"<a xmlns:b=""/>"#),
            Err(XmlError::Namespace(_))
        ));
        let bomb = r#"<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>"#;
        assert_eq!(parse(bomb), Err(XmlError::Dtd));
        assert_eq!(parse("<a>&x;</a>"), Err(XmlError::Dtd));
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(parse(&deep), Err(XmlError::TooLarge));
    }

    #[test]
    fn utf16_with_bom() {
        let doc = r#"<propfind xmlns="DAV:"><allprop/></propfind>"#;
        let mut bytes = vec![0xFF, 0xFE];
        for u in doc.encode_utf16() {
            bytes.extend(u.to_le_bytes());
        }
        let root = parse_document(&bytes, &Limits::default()).unwrap();
        assert!(root.name.is_dav("propfind"));
    }

    #[test]
    fn fragment_is_self_contained_and_round_trips() {
        let doc = r#"<D:prop xmlns:D="DAV:" xmlns:z="urn:z" xml:lang="de"><z:p>t<x:a xmlns:x="urn:x" k="v" x:q="1">&lt;&amp;<b xmlns="">u</b></x:a>  w </z:p></D:prop>"#;
        let root = parse(doc).unwrap();
        let prop = root.elements().next().unwrap();
        let frag = prop.to_fragment();
        assert!(
            frag.starts_with(r#"<z:p xmlns:z="urn:z" xml:lang="de">"#),
            "{frag}"
        );
        let again = parse(&frag).unwrap();
        assert_eq!(again.name, prop.name);
        assert_eq!(again.children, prop.children);
        assert_eq!(again.to_fragment(), frag);
    }

    #[test]
    fn fuzz_findings_stay_fixed() {
        // Namespace names are unescaped, so they survive a write and a read.
        let root = parse(r#"<a xmlns="urn:x&amp;y"/>"#).unwrap();
        assert_eq!(root.name.ns, "urn:x&y");
        assert_eq!(parse(&root.to_fragment()).unwrap().name.ns, "urn:x&y");
        // Characters XML forbids, raw or as references, and malformed names are refused.
        for bad in [
            "<a>\u{1}</a>",
            "<a>&#1;</a>",
            "<a>&#xFFFE;</a>",
            "<a b=\"\u{1}\"/>",
            "<a xmlns=\"urn:\u{0}\"/>",
            "<a&b/>",
            "<1a/>",
            "<p:b:c xmlns:p=\"u\"/>",
            "<p: xmlns:p=\"u\"/>",
            // fuzz: an element in the reserved xmlns namespace, declarations of it, and a
            // noncharacter inside a name
            "<xmlns:bar xmlns=\"urn:x\"/>",
            "<a xmlns:xmlns=\"urn:x\"/>",
            "<a xmlns:p=\"http://www.w3.org/2000/xmlns/\"/>",
            "<a xmlns=\"http://www.w3.org/2000/xmlns/\"/>",
            "<xml:a/>",
            "<a xmlns=\"http://www.w3.org/XML/1998/namespace\"/>",
            "<a xmlns:p=\"http://www.w3.org/XML/1998/namespace\"/>",
            "<a xmlns:xml=\"urn:x\"/>",
            "<a x\u{ffff}y=\"v\"/>",
            "<a\u{ffff}/>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("<é-x.y_z/>").is_ok());
    }

    #[test]
    fn entities_and_cdata_become_text() {
        let root = parse("<a>x&#x1F600;<![CDATA[<y>]]>&quot;</a>").unwrap();
        assert_eq!(root.text(), "x😀<y>\"");
    }
}
