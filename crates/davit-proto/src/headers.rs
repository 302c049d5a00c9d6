//! Grammars of the WebDAV request headers (RFC 4918 §10): `Depth`, `Overwrite`, `Timeout`,
//! `Lock-Token` and `If`; and `Prefer` (RFC 7240, RFC 8144).
//!
//! Every parser here reads untrusted input, so each one returns an error instead of
//! panicking and bounds the work it does.

use thiserror::Error;

/// A request header whose value does not follow its grammar.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid {header} header: {reason}")]
pub struct HeaderError {
    /// Name of the offending header, e.g. `"Depth"`.
    pub header: &'static str,
    /// Short human explanation of what is wrong.
    pub reason: &'static str,
}

impl HeaderError {
    const fn new(header: &'static str, reason: &'static str) -> Self {
        Self { header, reason }
    }
}

/// What a client asked for in `Prefer` (RFC 7240, with the WebDAV uses of RFC 8144), or in
/// the older `Brief: t`. Preferences davit does not act on are ignored, and a malformed value
/// never makes a request fail (RFC 7240 §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefer {
    /// `return=minimal` (or `Brief: t`): leave out what the client can do without.
    pub minimal: bool,
    /// `depth-noroot`: a Depth 1 or infinity request leaves out the Request-URI itself.
    pub depth_noroot: bool,
}

impl Prefer {
    /// Reads every `Prefer` value (the header may be repeated) and `Brief`.
    pub fn parse<'a>(prefer: impl IntoIterator<Item = &'a str>, brief: Option<&str>) -> Prefer {
        let mut p = Prefer {
            minimal: brief.is_some_and(|b| b.trim().eq_ignore_ascii_case("t")),
            depth_noroot: false,
        };
        for value in prefer {
            // Preferences are separated by commas; each may carry `;`-parameters, which none
            // of the ones used here has.
            for pref in value.split(',') {
                let token = pref.split(';').next().unwrap_or("").trim();
                let (name, val) = match token.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (token, None),
                };
                if name.eq_ignore_ascii_case("return") {
                    match val {
                        Some(v) if v.eq_ignore_ascii_case("minimal") => p.minimal = true,
                        Some(v) if v.eq_ignore_ascii_case("representation") => p.minimal = false,
                        _ => {}
                    }
                } else if name.eq_ignore_ascii_case("depth-noroot") && val.is_none() {
                    p.depth_noroot = true;
                }
            }
        }
        p
    }
}

/// The `Depth` header (RFC 4918 §10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The resource only.
    Zero,
    /// The resource and its immediate members.
    One,
    /// The resource and all its descendants.
    Infinity,
}

impl Depth {
    /// Parses `0`, `1` or `infinity` (case-insensitive, surrounding whitespace ignored).
    pub fn parse(value: &str) -> Result<Depth, HeaderError> {
        match value.trim() {
            "0" => Ok(Depth::Zero),
            "1" => Ok(Depth::One),
            v if v.eq_ignore_ascii_case("infinity") => Ok(Depth::Infinity),
            _ => Err(HeaderError::new("Depth", "expected 0, 1 or infinity")),
        }
    }

    /// The header value for this depth.
    pub fn as_str(self) -> &'static str {
        match self {
            Depth::Zero => "0",
            Depth::One => "1",
            Depth::Infinity => "infinity",
        }
    }
}

/// Parses the `Overwrite` header (RFC 4918 §10.6): `T` is true, `F` is false.
///
/// Lowercase is accepted because some clients send it and the meaning is unambiguous.
pub fn parse_overwrite(value: &str) -> Result<bool, HeaderError> {
    match value.trim() {
        "T" | "t" => Ok(true),
        "F" | "f" => Ok(false),
        _ => Err(HeaderError::new("Overwrite", "expected T or F")),
    }
}

/// One entry of the `Timeout` header (RFC 4918 §10.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// `Second-N`.
    Seconds(u32),
    /// `Infinite`.
    Infinite,
}

impl Timeout {
    /// The header value for this entry, e.g. `Second-600` or `Infinite`.
    pub fn to_header_value(&self) -> String {
        match self {
            Timeout::Seconds(n) => format!("Second-{n}"),
            Timeout::Infinite => "Infinite".to_owned(),
        }
    }
}

/// Parses the `Timeout` header: a comma-separated list of `Second-N` and `Infinite`, in the
/// client's order of preference.
///
/// Unrecognised entries are skipped, since the header is only a request the server may
/// ignore; but a header with no usable entry at all is an error.
pub fn parse_timeout(value: &str) -> Result<Vec<Timeout>, HeaderError> {
    let timeouts: Vec<Timeout> = value
        .split(',')
        .map(str::trim)
        .filter_map(parse_timeout_entry)
        .collect();
    if timeouts.is_empty() {
        Err(HeaderError::new("Timeout", "no Second-N or Infinite entry"))
    } else {
        Ok(timeouts)
    }
}

fn parse_timeout_entry(entry: &str) -> Option<Timeout> {
    if entry.eq_ignore_ascii_case("infinite") {
        return Some(Timeout::Infinite);
    }
    let prefix = entry.get(..7)?;
    if !prefix.eq_ignore_ascii_case("second-") {
        return None;
    }
    let digits = entry.get(7..)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // RFC 4918 caps the value at 2^32-1; a longer request still means "as long as possible".
    let n = digits.bytes().fold(0u32, |acc, b| {
        acc.saturating_mul(10).saturating_add(u32::from(b - b'0'))
    });
    Some(Timeout::Seconds(n))
}

/// Parses `Authorization: Basic base64(user:password)` (RFC 7617) into the user and the
/// password; `None` for any other scheme or a value that does not decode to UTF-8 with a `:`.
pub fn parse_basic_credentials(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Parses the `Lock-Token` header (RFC 4918 §10.5): a Coded-URL `<uri>`, returning the URI.
///
/// A bare absolute URI without angle brackets is also accepted because some clients
/// (notably the Windows WebDAV redirector) send that.
pub fn parse_lock_token(value: &str) -> Result<String, HeaderError> {
    const ERR: &str = "Lock-Token";
    let value = value.trim();
    let uri = match value.strip_prefix('<') {
        Some(rest) => rest
            .strip_suffix('>')
            .ok_or(HeaderError::new(ERR, "unclosed '<'"))?,
        None if value.ends_with('>') => return Err(HeaderError::new(ERR, "unbalanced '>'")),
        None => {
            // Without brackets there is nothing else telling a token from garbage.
            if !has_scheme(value) {
                return Err(HeaderError::new(ERR, "expected <absolute-URI>"));
            }
            value
        }
    };
    if uri.is_empty() {
        return Err(HeaderError::new(ERR, "empty lock token"));
    }
    if !is_uri_text(uri) {
        return Err(HeaderError::new(ERR, "invalid character in lock token"));
    }
    Ok(uri.to_owned())
}

/// True when `s` starts with a URI scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`).
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// True when `s` could sit inside `<...>`: no whitespace, controls or angle brackets.
fn is_uri_text(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// Upper bound on conditions in one `If` header, so hostile input cannot cost much to
/// parse or evaluate.
pub const MAX_IF_CONDITIONS: usize = 1024;

/// The parsed `If` header (RFC 4918 §10.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfHeader {
    /// The lists, in header order; the header is true when any one of them is.
    pub lists: Vec<IfList>,
}

/// One parenthesised list of conditions, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfList {
    /// The Resource-Tag URI as written (without `<` `>`); `None` for the Request-URI.
    pub resource: Option<String>,
    /// The conditions; never empty.
    pub conditions: Vec<Condition>,
}

/// One condition of an [`IfList`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Whether the condition was prefixed with `Not`.
    pub negated: bool,
    /// What is tested.
    pub kind: ConditionKind,
}

/// What a [`Condition`] tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionKind {
    /// A state token such as a lock token; the URI without `<` `>`.
    StateToken(String),
    /// An entity-tag exactly as written inside `[ ]`, e.g. `"abc"` or `W/"abc"`.
    ETag(String),
}

impl IfHeader {
    /// Parses an `If` header value.
    pub fn parse(value: &str) -> Result<IfHeader, HeaderError> {
        IfParser {
            input: value,
            pos: 0,
            conditions: 0,
        }
        .parse()
    }

    /// True when any list is true; a list is true when all its conditions are (after `Not`).
    ///
    /// `cond` is asked whether a single condition (ignoring `negated`) holds for the
    /// resource the list applies to (`None` = the Request-URI).
    pub fn evaluate(&self, mut cond: impl FnMut(Option<&str>, &ConditionKind) -> bool) -> bool {
        self.lists.iter().any(|list| {
            let resource = list.resource.as_deref();
            list.conditions
                .iter()
                .all(|c| cond(resource, &c.kind) != c.negated)
        })
    }

    /// Every state token that appears anywhere in the header, negated or not; all of them
    /// count as "submitted" for lock checks (RFC 4918 §10.4.1).
    pub fn state_tokens(&self) -> impl Iterator<Item = &str> {
        self.lists
            .iter()
            .flat_map(|list| &list.conditions)
            .filter_map(|c| match &c.kind {
                ConditionKind::StateToken(token) => Some(token.as_str()),
                ConditionKind::ETag(_) => None,
            })
    }
}

/// Whether the header uses Resource-Tags; the two forms may not be mixed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IfForm {
    Untagged,
    Tagged,
}

/// Recursive-descent parser over the raw value. All delimiters are ASCII, so byte offsets
/// at delimiters are always valid `str` boundaries.
struct IfParser<'a> {
    input: &'a str,
    pos: usize,
    conditions: usize,
}

const IF: &str = "If";

impl<'a> IfParser<'a> {
    fn parse(mut self) -> Result<IfHeader, HeaderError> {
        let mut lists = Vec::new();
        let mut form = None;
        let mut tag: Option<&'a str> = None;
        // Set after a Resource-Tag until a List follows it (`Tagged-list = Resource-Tag 1*List`).
        let mut tag_pending = false;
        loop {
            self.skip_lws();
            match self.peek() {
                None => break,
                Some(b'<') => {
                    if form == Some(IfForm::Untagged) {
                        return Err(HeaderError::new(IF, "tagged list after untagged list"));
                    }
                    if tag_pending {
                        return Err(HeaderError::new(IF, "resource tag without a list"));
                    }
                    form = Some(IfForm::Tagged);
                    tag = Some(self.coded_url()?);
                    tag_pending = true;
                }
                Some(b'(') => {
                    if form.is_none() {
                        form = Some(IfForm::Untagged);
                    }
                    let conditions = self.list()?;
                    lists.push(IfList {
                        resource: tag.map(str::to_owned),
                        conditions,
                    });
                    tag_pending = false;
                }
                Some(_) => return Err(HeaderError::new(IF, "expected '(' or '<'")),
            }
        }
        if tag_pending {
            return Err(HeaderError::new(IF, "resource tag without a list"));
        }
        if lists.is_empty() {
            return Err(HeaderError::new(IF, "no list"));
        }
        Ok(IfHeader { lists })
    }

    /// `List = "(" 1*Condition ")"`, with the cursor on `(`.
    fn list(&mut self) -> Result<Vec<Condition>, HeaderError> {
        self.pos += 1;
        let mut conditions = Vec::new();
        loop {
            self.skip_lws();
            match self.peek() {
                None => return Err(HeaderError::new(IF, "unclosed '('")),
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {
                    self.conditions += 1;
                    if self.conditions > MAX_IF_CONDITIONS {
                        return Err(HeaderError::new(IF, "too many conditions"));
                    }
                    conditions.push(self.condition()?);
                }
            }
        }
        if conditions.is_empty() {
            return Err(HeaderError::new(IF, "empty list"));
        }
        Ok(conditions)
    }

    /// `Condition = ["Not"] (State-token | "[" entity-tag "]")`.
    fn condition(&mut self) -> Result<Condition, HeaderError> {
        let negated = self
            .rest()
            .get(..3)
            .is_some_and(|word| word.eq_ignore_ascii_case("not"));
        if negated {
            self.pos += 3;
            self.skip_lws();
        }
        let kind = match self.peek() {
            Some(b'<') => ConditionKind::StateToken(self.coded_url()?.to_owned()),
            Some(b'[') => ConditionKind::ETag(self.bracketed_etag()?.to_owned()),
            _ => return Err(HeaderError::new(IF, "expected state token or [entity-tag]")),
        };
        Ok(Condition { negated, kind })
    }

    /// `"<" URI ">"`, with the cursor on `<`; returns the URI.
    ///
    /// The URI is not checked further: a token that is not an absolute URI simply never
    /// matches, which gives the client a 412 rather than a confusing 400.
    fn coded_url(&mut self) -> Result<&'a str, HeaderError> {
        let body = self.rest().get(1..).unwrap_or_default();
        let end = body
            .find(|c: char| c == '>' || c == '<' || c.is_whitespace())
            .filter(|&i| body.as_bytes().get(i) == Some(&b'>'))
            .ok_or(HeaderError::new(IF, "unclosed '<' or space in URI"))?;
        let uri = body.get(..end).unwrap_or_default();
        if uri.is_empty() {
            return Err(HeaderError::new(IF, "empty URI"));
        }
        if !is_uri_text(uri) {
            return Err(HeaderError::new(IF, "invalid character in URI"));
        }
        self.pos += end + 2;
        Ok(uri)
    }

    /// `"[" entity-tag "]"`, with the cursor on `[`; returns the entity-tag as written.
    ///
    /// The tag is scanned as a quoted string rather than up to the first `]`, because
    /// `]` is a legal character inside an entity-tag.
    fn bracketed_etag(&mut self) -> Result<&'a str, HeaderError> {
        self.pos += 1;
        self.skip_lws();
        let start = self.pos;
        let rest = self.rest();
        let quoted = rest.strip_prefix("W/").unwrap_or(rest);
        let prefix_len = rest.len() - quoted.len();
        let inner = quoted
            .strip_prefix('"')
            .ok_or(HeaderError::new(IF, "entity-tag must be a quoted string"))?;
        let close = inner
            .find('"')
            .ok_or(HeaderError::new(IF, "unclosed entity-tag quote"))?;
        if inner
            .get(..close)
            .unwrap_or_default()
            .chars()
            .any(char::is_control)
        {
            return Err(HeaderError::new(IF, "control character in entity-tag"));
        }
        // prefix + opening quote + opaque + closing quote.
        self.pos += prefix_len + close + 2;
        let etag = self.input.get(start..self.pos).unwrap_or_default();
        self.skip_lws();
        if self.peek() != Some(b']') {
            return Err(HeaderError::new(IF, "unclosed '['"));
        }
        self.pos += 1;
        Ok(etag)
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    /// Linear whitespace: spaces, tabs and (obsolete) folded line breaks.
    fn skip_lws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_values() {
        assert_eq!(Depth::parse("0"), Ok(Depth::Zero));
        assert_eq!(Depth::parse(" 1 "), Ok(Depth::One));
        assert_eq!(Depth::parse("Infinity"), Ok(Depth::Infinity));
        assert_eq!(Depth::parse("INFINITY"), Ok(Depth::Infinity));
        for d in [Depth::Zero, Depth::One, Depth::Infinity] {
            assert_eq!(Depth::parse(d.as_str()), Ok(d));
        }
    }

    #[test]
    fn depth_malformed() {
        for bad in ["", " ", "2", "-1", "00", "infinit", "infinity1", "one"] {
            assert!(Depth::parse(bad).is_err(), "{bad:?}");
        }
        let err = Depth::parse("x").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid Depth header: expected 0, 1 or infinity")
        );
    }

    #[test]
    fn overwrite_values() {
        assert_eq!(parse_overwrite("T"), Ok(true));
        assert_eq!(parse_overwrite(" f "), Ok(false));
        assert_eq!(parse_overwrite("t"), Ok(true));
        for bad in ["", "true", "TF", "1", "Y"] {
            assert!(parse_overwrite(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timeout_list() {
        assert_eq!(
            parse_timeout("Infinite, Second-4100000000"),
            Ok(vec![Timeout::Infinite, Timeout::Seconds(4_100_000_000)])
        );
        assert_eq!(parse_timeout("second-600"), Ok(vec![Timeout::Seconds(600)]));
        assert_eq!(
            parse_timeout("Extension-foo, ,Second-0"),
            Ok(vec![Timeout::Seconds(0)])
        );
    }

    #[test]
    fn timeout_saturates() {
        assert_eq!(
            parse_timeout("Second-4294967295"),
            Ok(vec![Timeout::Seconds(u32::MAX)])
        );
        assert_eq!(
            parse_timeout("Second-99999999999999999999999999"),
            Ok(vec![Timeout::Seconds(u32::MAX)])
        );
    }

    #[test]
    fn timeout_malformed() {
        for bad in [
            "",
            ",",
            "Extension-foo",
            "Second-",
            "Second-abc",
            "Second--1",
            "Sécond-1",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timeout_header_value() {
        assert_eq!(Timeout::Seconds(600).to_header_value(), "Second-600");
        assert_eq!(Timeout::Infinite.to_header_value(), "Infinite");
    }

    #[test]
    fn lock_token_forms() {
        assert_eq!(
            parse_lock_token("<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2>"),
            Ok("urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2".to_owned())
        );
        assert_eq!(
            parse_lock_token("  opaquelocktoken:abc  "),
            Ok("opaquelocktoken:abc".to_owned())
        );
    }

    #[test]
    fn lock_token_malformed() {
        for bad in [
            "",
            "<>",
            "<urn:a",
            "urn:a>",
            "<urn:a b>",
            "urn:a b",
            "<<urn:a>>",
            "abc",
            ":abc",
            "<urn:\u{7}>",
        ] {
            assert!(parse_lock_token(bad).is_err(), "{bad:?}");
        }
    }

    fn token(t: &str) -> Condition {
        Condition {
            negated: false,
            kind: ConditionKind::StateToken(t.to_owned()),
        }
    }

    fn etag(t: &str) -> Condition {
        Condition {
            negated: false,
            kind: ConditionKind::ETag(t.to_owned()),
        }
    }

    fn not(c: Condition) -> Condition {
        Condition { negated: true, ..c }
    }

    #[test]
    fn if_untagged() {
        let h = IfHeader::parse(
            "(<urn:uuid:150852e2-3847-42d5-8cbe-0f4f296f26cf> [\"abc\"]) (Not <DAV:no-lock>)",
        );
        assert_eq!(
            h,
            Ok(IfHeader {
                lists: vec![
                    IfList {
                        resource: None,
                        conditions: vec![
                            token("urn:uuid:150852e2-3847-42d5-8cbe-0f4f296f26cf"),
                            etag("\"abc\""),
                        ],
                    },
                    IfList {
                        resource: None,
                        conditions: vec![not(token("DAV:no-lock"))],
                    },
                ],
            })
        );
    }

    #[test]
    fn if_tagged_applies_to_following_lists() {
        let h = IfHeader::parse("<http://ex.com/a> (<urn:x>) (NOT[W/\"w\"]) </b/c> (<urn:y>)");
        assert_eq!(
            h,
            Ok(IfHeader {
                lists: vec![
                    IfList {
                        resource: Some("http://ex.com/a".to_owned()),
                        conditions: vec![token("urn:x")],
                    },
                    IfList {
                        resource: Some("http://ex.com/a".to_owned()),
                        conditions: vec![not(etag("W/\"w\""))],
                    },
                    IfList {
                        resource: Some("/b/c".to_owned()),
                        conditions: vec![token("urn:y")],
                    },
                ],
            })
        );
    }

    #[test]
    fn if_whitespace_and_adjacency() {
        let tight = IfHeader::parse("(not<urn:a>[\"e\"])");
        let loose = IfHeader::parse("\t( Not  <urn:a>\r\n [ \"e\" ] ) ");
        assert_eq!(tight, loose);
        assert_eq!(
            tight.map(|h| h.lists),
            Ok(vec![IfList {
                resource: None,
                conditions: vec![not(token("urn:a")), etag("\"e\"")],
            }])
        );
    }

    #[test]
    fn if_etag_may_contain_bracket_and_odd_chars() {
        let h = IfHeader::parse("([\"a]b(c)<d>\"])");
        assert_eq!(
            h.map(|h| h.lists),
            Ok(vec![IfList {
                resource: None,
                conditions: vec![etag("\"a]b(c)<d>\"")],
            }])
        );
    }

    #[test]
    fn if_malformed() {
        for bad in [
            "",
            "   ",
            "()",
            "( )",
            "(<urn:a>",
            "(<urn:a)",
            "(<urn:a b>)",
            "(<>)",
            "([\"abc])",
            "([\"abc\")",
            "([abc])",
            "([])",
            "(Not)",
            "(Not Not <urn:a>)",
            "(urn:a)",
            "<urn:a>",
            "</a> </b> (<urn:a>)",
            "(<urn:a>) </b> (<urn:b>)",
            "</b> (<urn:b>) (<urn:c>) x",
            "(<urn:a>) junk",
            "(<urn:a>))",
            "((<urn:a>))",
        ] {
            assert!(IfHeader::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn if_condition_limit() {
        let ok = format!("({})", "<urn:a> ".repeat(MAX_IF_CONDITIONS));
        assert!(IfHeader::parse(&ok).is_ok());
        let too_many = format!("({})", "<urn:a> ".repeat(MAX_IF_CONDITIONS + 1));
        assert!(IfHeader::parse(&too_many).is_err());
        let spread = "(<urn:a>)".repeat(MAX_IF_CONDITIONS + 1);
        assert!(IfHeader::parse(&spread).is_err());
    }

    #[test]
    fn if_non_ascii_does_not_panic() {
        assert!(IfHeader::parse("(<urn:é>)").is_ok());
        assert!(IfHeader::parse("([\"é\"])").is_ok());
        for bad in ["(é)", "(Noté)", "é", "(<é", "([\"é"] {
            assert!(IfHeader::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn if_evaluate() {
        let h = IfHeader::parse("(<urn:a> [\"e1\"]) (Not <DAV:no-lock>)");
        let Ok(h) = h else {
            panic!("parse failed");
        };
        // Second list holds: DAV:no-lock never matches, negated it is true.
        assert!(h.evaluate(|_, k| matches!(k, ConditionKind::StateToken(t) if t == "urn:a")));
        let Ok(h) = IfHeader::parse("(<urn:a> [\"e1\"]) (Not <urn:b>)") else {
            panic!("parse failed");
        };
        // Everything holds: first list true.
        assert!(h.evaluate(|_, _| true));
        // Nothing holds: first list false, second true (Not).
        assert!(h.evaluate(|_, _| false));
        // Only urn:b holds: first list false (urn:a), second false.
        assert!(!h.evaluate(|_, k| matches!(k, ConditionKind::StateToken(t) if t == "urn:b")));
    }

    #[test]
    fn if_evaluate_passes_resource() {
        let Ok(h) = IfHeader::parse("</x> (<urn:a>) </y> (<urn:b>)") else {
            panic!("parse failed");
        };
        let mut seen = Vec::new();
        let result = h.evaluate(|r, _| {
            seen.push(r.map(str::to_owned));
            false
        });
        assert!(!result);
        assert_eq!(seen, vec![Some("/x".to_owned()), Some("/y".to_owned())]);
    }

    #[test]
    fn if_state_tokens() {
        let Ok(h) = IfHeader::parse("</x> (<urn:a> [\"e\"]) (Not <urn:b>) </y> ([W/\"f\"])") else {
            panic!("parse failed");
        };
        assert_eq!(h.state_tokens().collect::<Vec<_>>(), vec!["urn:a", "urn:b"]);
    }

    #[test]
    fn prefer_reads_what_it_knows_and_ignores_the_rest() {
        let p = |v: &[&str], brief: Option<&str>| Prefer::parse(v.iter().copied(), brief);
        assert_eq!(
            p(&["return=minimal, depth-noroot"], None),
            Prefer {
                minimal: true,
                depth_noroot: true
            }
        );
        assert!(p(&["RETURN = \"minimal\"; x=1"], None).minimal);
        assert_eq!(
            p(&["foo=bar", "return=weird", "depth-noroot=1"], None),
            Prefer::default()
        );
        assert!(p(&[], Some("t")).minimal);
        assert!(!p(&[], Some("f")).minimal);
        assert!(!p(&["return=minimal", "return=representation"], None).minimal);
        assert_eq!(p(&[",,;=,\u{0}"], None), Prefer::default());
    }
}
