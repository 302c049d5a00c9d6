//! Conditional requests (RFC 9110 §13): entity-tag comparison, the `If-Match`,
//! `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` preconditions and `If-Range`.
//!
//! The crate has no clock, so the RFC's rule that dates in the future are invalid is left
//! to the caller.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The validators of the target resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators<'a> {
    /// Whether the resource currently exists.
    pub exists: bool,
    /// The full strong entity-tag with quotes, e.g. `"1a2b-3c"`.
    pub etag: Option<&'a str>,
    /// The last modification time.
    pub last_modified: Option<SystemTime>,
}

/// The request's conditional header values, raw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preconditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
}

/// What the preconditions say to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Perform the method.
    Proceed,
    /// Answer 304 Not Modified.
    NotModified,
    /// Answer 412 Precondition Failed.
    PreconditionFailed,
}

/// A parsed entity-tag (RFC 9110 §8.8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    /// Whether the tag has the `W/` prefix.
    pub weak: bool,
    /// The opaque tag without quotes.
    pub opaque: String,
}

impl EntityTag {
    /// Parses exactly one entity-tag, e.g. `"abc"` or `W/"abc"`; surrounding whitespace
    /// is ignored.
    pub fn parse(value: &str) -> Option<EntityTag> {
        match split_etag(value.trim()) {
            Some((tag, "")) => Some(tag),
            _ => None,
        }
    }

    /// Strong comparison: both strong and the opaque tags equal.
    pub fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the opaque tags equal, whatever the prefixes.
    pub fn weak_eq(&self, other: &EntityTag) -> bool {
        self.opaque == other.opaque
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.weak { "W/" } else { "" };
        write!(f, "{prefix}\"{}\"", self.opaque)
    }
}

/// The value of `If-Match` or `If-None-Match`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagList {
    /// `*`: any current representation.
    Any,
    /// One or more entity-tags.
    Tags(Vec<EntityTag>),
}

/// Parses an entity-tag list (`"*"` or `1#entity-tag`); `None` on a syntax error.
pub fn parse_etag_list(value: &str) -> Option<EtagList> {
    let value = value.trim();
    if value == "*" {
        return Some(EtagList::Any);
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        // List syntax (RFC 9110 §5.6.1) tolerates empty elements such as ", ,".
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        // The list is walked tag by tag instead of split on ',' since ',' may occur
        // inside an opaque tag.
        let (tag, after) = split_etag(rest)?;
        tags.push(tag);
        rest = after.trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
    }
    if tags.is_empty() {
        None
    } else {
        Some(EtagList::Tags(tags))
    }
}

/// Parses one entity-tag at the start of `s`, returning it and the remaining input.
fn split_etag(s: &str) -> Option<(EntityTag, &str)> {
    let (weak, quoted) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let inner = quoted.strip_prefix('"')?;
    let close = inner.find('"')?;
    let opaque = inner.get(..close)?;
    // etagc = %x21 / %x23-7E / obs-text: no spaces or controls.
    if opaque.chars().any(|c| c == ' ' || c.is_control()) {
        return None;
    }
    let rest = inner.get(close + 1..)?;
    Some((
        EntityTag {
            weak,
            opaque: opaque.to_owned(),
        },
        rest,
    ))
}

/// Strong comparison of two full entity-tags as written; false if either is malformed.
pub fn strong_eq(a: &str, b: &str) -> bool {
    matches!((EntityTag::parse(a), EntityTag::parse(b)), (Some(a), Some(b)) if a.strong_eq(&b))
}

/// Weak comparison of two full entity-tags as written; false if either is malformed.
pub fn weak_eq(a: &str, b: &str) -> bool {
    matches!((EntityTag::parse(a), EntityTag::parse(b)), (Some(a), Some(b)) if a.weak_eq(&b))
}

/// Evaluates the preconditions in the order of RFC 9110 §13.2.2.
///
/// `If-Modified-Since` only applies to GET and HEAD, and a matching `If-None-Match` yields
/// 304 for those methods but 412 for the others.
pub fn evaluate(pre: &Preconditions, v: &Validators, method_is_get_or_head: bool) -> Outcome {
    // Parsed only when a condition names entity tags (most requests carry none).
    let current = || current_etag(v);
    if let Some(value) = pre.if_match {
        let passes = v.exists
            && match parse_etag_list(value) {
                Some(EtagList::Any) => true,
                Some(EtagList::Tags(tags)) => {
                    current().is_some_and(|cur| tags.iter().any(|t| t.strong_eq(&cur)))
                }
                // A condition the server cannot understand must not let a write through.
                None => false,
            };
        if !passes {
            return Outcome::PreconditionFailed;
        }
    } else if let (Some(date), Some(modified)) = (
        pre.if_unmodified_since.and_then(parse_date),
        modification_time(v),
    ) {
        if modified > date {
            return Outcome::PreconditionFailed;
        }
    }

    if let Some(value) = pre.if_none_match {
        let matches = match parse_etag_list(value) {
            Some(EtagList::Any) => v.exists,
            Some(EtagList::Tags(tags)) => {
                current().is_some_and(|cur| tags.iter().any(|t| t.weak_eq(&cur)))
            }
            None => false,
        };
        if matches {
            return if method_is_get_or_head {
                Outcome::NotModified
            } else {
                Outcome::PreconditionFailed
            };
        }
    } else if method_is_get_or_head {
        if let (Some(date), Some(modified)) = (
            pre.if_modified_since.and_then(parse_date),
            modification_time(v),
        ) {
            if modified <= date {
                return Outcome::NotModified;
            }
        }
    }
    Outcome::Proceed
}

/// If-Range (RFC 9110 §13.1.5): true when the `Range` header should be honoured.
///
/// An entity-tag must match the current one strongly (weak tags never match); an
/// HTTP-date must equal the last modification time to the second. Anything else,
/// including garbage, means "send the whole representation".
pub fn if_range_matches(value: &str, v: &Validators) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return match (EntityTag::parse(value), current_etag(v)) {
            (Some(tag), Some(cur)) => tag.strong_eq(&cur),
            _ => false,
        };
    }
    matches!(
        (parse_date(value), modification_time(v)),
        (Some(date), Some(modified)) if date == modified
    )
}

/// The resource's entity-tag, if it exists and has a well-formed one.
fn current_etag(v: &Validators) -> Option<EntityTag> {
    v.exists
        .then_some(v.etag)
        .flatten()
        .and_then(EntityTag::parse)
}

/// The resource's modification time in whole seconds, if it exists and has one.
fn modification_time(v: &Validators) -> Option<i128> {
    v.exists
        .then_some(v.last_modified)
        .flatten()
        .map(unix_seconds)
}

/// An HTTP-date in whole seconds, or `None` if invalid (invalid dates are ignored).
fn parse_date(value: &str) -> Option<i128> {
    httpdate::parse_http_date(value.trim())
        .ok()
        .map(unix_seconds)
}

/// Seconds since the epoch, rounded down, because HTTP dates carry no sub-second part and
/// a file modified at 10.5 s must count as unmodified since 10 s.
fn unix_seconds(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => {
            let d = e.duration();
            let partial = i128::from(d.subsec_nanos() > 0);
            -i128::from(d.as_secs()) - partial
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2015-10-21 07:28:00 GMT.
    const T: u64 = 1_445_412_480;
    const T_DATE: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    const BEFORE: &str = "Wed, 21 Oct 2015 07:27:59 GMT";
    const AFTER: &str = "Wed, 21 Oct 2015 07:28:01 GMT";

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    fn existing() -> Validators<'static> {
        Validators {
            exists: true,
            etag: Some("\"1a2b-3c\""),
            last_modified: Some(at(T, 500)),
        }
    }

    fn missing() -> Validators<'static> {
        Validators {
            exists: false,
            etag: None,
            last_modified: None,
        }
    }

    fn tag(weak: bool, opaque: &str) -> EntityTag {
        EntityTag {
            weak,
            opaque: opaque.to_owned(),
        }
    }

    #[test]
    fn entity_tag_parse_and_display() {
        assert_eq!(EntityTag::parse("\"abc\""), Some(tag(false, "abc")));
        assert_eq!(EntityTag::parse(" W/\"abc\" "), Some(tag(true, "abc")));
        assert_eq!(EntityTag::parse("\"\""), Some(tag(false, "")));
        assert_eq!(EntityTag::parse("\"a,b\""), Some(tag(false, "a,b")));
        for bad in [
            "",
            "abc",
            "\"abc",
            "w/\"abc\"",
            "W/abc",
            "\"a\"b",
            "\"a b\"",
            "\"a\u{1}\"",
        ] {
            assert_eq!(EntityTag::parse(bad), None, "{bad:?}");
        }
        assert_eq!(tag(true, "x").to_string(), "W/\"x\"");
        assert_eq!(tag(false, "x").to_string(), "\"x\"");
    }

    #[test]
    fn comparisons() {
        // The RFC 9110 §8.8.3.2 table.
        assert!(!strong_eq("W/\"1\"", "W/\"1\""));
        assert!(weak_eq("W/\"1\"", "W/\"1\""));
        assert!(!strong_eq("W/\"1\"", "W/\"2\""));
        assert!(!weak_eq("W/\"1\"", "W/\"2\""));
        assert!(!strong_eq("W/\"1\"", "\"1\""));
        assert!(weak_eq("W/\"1\"", "\"1\""));
        assert!(strong_eq("\"1\"", "\"1\""));
        assert!(weak_eq("\"1\"", "\"1\""));
        assert!(!strong_eq("garbage", "garbage"));
        assert!(!weak_eq("garbage", "garbage"));
    }

    #[test]
    fn etag_lists() {
        assert_eq!(parse_etag_list(" * "), Some(EtagList::Any));
        assert_eq!(
            parse_etag_list("\"a\", W/\"b\",\"c,d\""),
            Some(EtagList::Tags(vec![
                tag(false, "a"),
                tag(true, "b"),
                tag(false, "c,d")
            ]))
        );
        assert_eq!(
            parse_etag_list(", \"a\" ,,"),
            Some(EtagList::Tags(vec![tag(false, "a")]))
        );
        for bad in [
            "",
            ",",
            "*, \"a\"",
            "\"a\" \"b\"",
            "a",
            "\"a",
            "\"a\"x",
            "**",
        ] {
            assert_eq!(parse_etag_list(bad), None, "{bad:?}");
        }
    }

    fn run(pre: Preconditions, v: &Validators, get: bool) -> Outcome {
        evaluate(&pre, v, get)
    }

    #[test]
    fn no_preconditions_proceed() {
        assert_eq!(
            run(Preconditions::default(), &existing(), true),
            Outcome::Proceed
        );
        assert_eq!(
            run(Preconditions::default(), &missing(), false),
            Outcome::Proceed
        );
    }

    #[test]
    fn if_match() {
        let with = |value| Preconditions {
            if_match: Some(value),
            ..Preconditions::default()
        };
        let v = existing();
        assert_eq!(run(with("*"), &v, false), Outcome::Proceed);
        assert_eq!(run(with("\"x\", \"1a2b-3c\""), &v, false), Outcome::Proceed);
        assert_eq!(run(with("\"x\""), &v, false), Outcome::PreconditionFailed);
        // If-Match uses strong comparison.
        assert_eq!(
            run(with("W/\"1a2b-3c\""), &v, true),
            Outcome::PreconditionFailed
        );
        assert_eq!(run(with("garbage"), &v, false), Outcome::PreconditionFailed);
        assert_eq!(
            run(with("*"), &missing(), false),
            Outcome::PreconditionFailed
        );
        let no_etag = Validators { etag: None, ..v };
        assert_eq!(
            run(with("\"1a2b-3c\""), &no_etag, false),
            Outcome::PreconditionFailed
        );
        assert_eq!(run(with("*"), &no_etag, false), Outcome::Proceed);
    }

    #[test]
    fn if_unmodified_since() {
        let with = |value| Preconditions {
            if_unmodified_since: Some(value),
            ..Preconditions::default()
        };
        let v = existing();
        // Sub-second modification time still counts as unmodified since its second.
        assert_eq!(run(with(T_DATE), &v, false), Outcome::Proceed);
        assert_eq!(run(with(AFTER), &v, false), Outcome::Proceed);
        assert_eq!(run(with(BEFORE), &v, false), Outcome::PreconditionFailed);
        assert_eq!(run(with("not a date"), &v, false), Outcome::Proceed);
        assert_eq!(run(with(BEFORE), &missing(), false), Outcome::Proceed);
        // Ignored when If-Match is present (step 2 only runs without it).
        let both = Preconditions {
            if_match: Some("\"1a2b-3c\""),
            if_unmodified_since: Some(BEFORE),
            ..Preconditions::default()
        };
        assert_eq!(run(both, &v, false), Outcome::Proceed);
    }

    #[test]
    fn if_none_match() {
        let with = |value| Preconditions {
            if_none_match: Some(value),
            ..Preconditions::default()
        };
        let v = existing();
        assert_eq!(run(with("*"), &v, true), Outcome::NotModified);
        assert_eq!(run(with("*"), &v, false), Outcome::PreconditionFailed);
        assert_eq!(run(with("*"), &missing(), false), Outcome::Proceed);
        // If-None-Match uses weak comparison.
        assert_eq!(run(with("W/\"1a2b-3c\""), &v, true), Outcome::NotModified);
        assert_eq!(
            run(with("\"a\", \"1a2b-3c\""), &v, false),
            Outcome::PreconditionFailed
        );
        assert_eq!(run(with("\"other\""), &v, true), Outcome::Proceed);
        assert_eq!(run(with("garbage"), &v, true), Outcome::Proceed);
        assert_eq!(run(with("\"1a2b-3c\""), &missing(), true), Outcome::Proceed);
    }

    #[test]
    fn if_modified_since() {
        let with = |value| Preconditions {
            if_modified_since: Some(value),
            ..Preconditions::default()
        };
        let v = existing();
        assert_eq!(run(with(T_DATE), &v, true), Outcome::NotModified);
        assert_eq!(run(with(AFTER), &v, true), Outcome::NotModified);
        assert_eq!(run(with(BEFORE), &v, true), Outcome::Proceed);
        // Other date formats of RFC 9110 §5.6.7.
        assert_eq!(
            run(with("Wednesday, 21-Oct-15 07:28:00 GMT"), &v, true),
            Outcome::NotModified
        );
        assert_eq!(
            run(with("Wed Oct 21 07:28:00 2015"), &v, true),
            Outcome::NotModified
        );
        assert_eq!(run(with("yesterday"), &v, true), Outcome::Proceed);
        // Only for GET/HEAD, and not for missing resources.
        assert_eq!(run(with(T_DATE), &v, false), Outcome::Proceed);
        assert_eq!(run(with(T_DATE), &missing(), true), Outcome::Proceed);
        // Ignored when If-None-Match is present.
        let both = Preconditions {
            if_none_match: Some("\"other\""),
            if_modified_since: Some(T_DATE),
            ..Preconditions::default()
        };
        assert_eq!(run(both, &v, true), Outcome::Proceed);
    }

    #[test]
    fn failing_if_match_wins_over_if_none_match() {
        let pre = Preconditions {
            if_match: Some("\"x\""),
            if_none_match: Some("*"),
            ..Preconditions::default()
        };
        assert_eq!(run(pre, &existing(), true), Outcome::PreconditionFailed);
    }

    #[test]
    fn if_range() {
        let v = existing();
        assert!(if_range_matches("\"1a2b-3c\"", &v));
        assert!(if_range_matches(T_DATE, &v));
        assert!(!if_range_matches("W/\"1a2b-3c\"", &v));
        assert!(!if_range_matches("\"other\"", &v));
        assert!(!if_range_matches(BEFORE, &v));
        assert!(!if_range_matches(AFTER, &v));
        assert!(!if_range_matches("", &v));
        assert!(!if_range_matches("\"1a2b-3c", &v));
        assert!(!if_range_matches("\"1a2b-3c\"", &missing()));
        let weak_current = Validators {
            etag: Some("W/\"1a2b-3c\""),
            ..v
        };
        assert!(!if_range_matches("\"1a2b-3c\"", &weak_current));
    }

    #[test]
    fn seconds_round_down() {
        assert_eq!(unix_seconds(at(T, 999)), i128::from(T));
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(1500)), -2);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(1)), -1);
    }
}
