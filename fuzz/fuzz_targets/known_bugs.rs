//! Inputs that hit bugs already reported against davit-proto (see fuzz/README.md, "Findings").
//! The round-trip targets skip them so that a run can get past them and look for new ones.
//! Once the parser is fixed, make `ENABLED` false: fixed code must then pass without skips.

#![allow(dead_code)]

use davit_proto::xml::{Element, QName};

/// Set to false when findings 1–4 of fuzz/README.md are fixed.
pub const ENABLED: bool = false;

/// XML 1.0 `Char`.
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A rough XML `NCName`: non-empty, no colon, no delimiter, not starting with a digit, '-' or '.'.
pub fn ncname(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
        && s.chars().all(|c| {
            xml_char(c)
                && !c.is_whitespace()
                && !matches!(c, ':' | '&' | '<' | '>' | '"' | '\'' | '=' | '/' | '?' | '!' | ';' | '#')
                && !c.is_control()
        })
}

/// Finding 1 (namespace values are not unescaped) and 2 (non-XML characters accepted) for a
/// namespace name: any character the writer escapes or replaces changes the name on a round trip.
fn bad_ns(ns: &str) -> bool {
    ns.chars().any(|c| !xml_char(c) || matches!(c, '&' | '<' | '>' | '"' | '\t' | '\n' | '\r'))
}

/// Finding 3: malformed element or attribute names are accepted and written back verbatim.
fn bad_name(name: &QName, prefix: Option<&str>) -> bool {
    bad_ns(&name.ns) || !ncname(&name.local) || prefix.is_some_and(|p| !ncname(p))
}

pub fn name_affected(name: &QName) -> bool {
    ENABLED && bad_name(name, None)
}

/// True when `e` or anything inside it hits a known bug.
pub fn affected(e: &Element) -> bool {
    ENABLED && tree_affected(e)
}

fn tree_affected(e: &Element) -> bool {
    bad_name(&e.name, e.prefix.as_deref())
        || e.attrs.iter().any(|a| {
            bad_name(&a.name, a.prefix.as_deref()) || a.value.chars().any(|c| !xml_char(c))
        })
        || e.children.iter().any(|n| match n {
            davit_proto::xml::Node::Element(c) => tree_affected(c),
            davit_proto::xml::Node::Text(t) => t.chars().any(|c| !xml_char(c)),
        })
}
