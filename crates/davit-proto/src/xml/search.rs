//! The SEARCH request document (RFC 5323, DASL) in the subset davit answers: a
//! `DAV:basicsearch` that selects properties (`DAV:prop` or `DAV:allprop`) of the resources
//! in one scope (an href and a depth) whose names match a condition built from `DAV:like`
//! on `DAV:displayname`, `DAV:is-collection`, `DAV:and`, `DAV:or` and `DAV:not`, with an
//! optional `DAV:limit`. Anything else in `where` (other operators, other properties,
//! `DAV:orderby`) is refused by name, so a client learns what is missing instead of getting
//! a wrong answer.

use super::{parse_document, Element, Limits, PropFind, QName, XmlError};
use crate::headers::Depth;

/// A parsed `DAV:searchrequest` with a `DAV:basicsearch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The properties wanted for each match.
    pub select: PropFind,
    /// The scope's href, as sent (resolved by the server against the Request-URI).
    pub scope: String,
    /// How deep below the scope (`0`, `1` or `infinity`; infinity when absent).
    pub depth: Depth,
    /// The condition; `None` matches every resource in scope.
    pub condition: Option<Condition>,
    /// `DAV:limit/DAV:nresults`.
    pub limit: Option<u64>,
}

/// A `DAV:where` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Every operand holds.
    And(Vec<Condition>),
    /// At least one operand holds.
    Or(Vec<Condition>),
    /// The operand does not hold.
    Not(Box<Condition>),
    /// The name matches the pattern (`%` any run, `_` one character, `\` escapes), compared
    /// without regard to case.
    NameLike(String),
    /// The resource is a collection.
    IsCollection,
}

/// Why a search cannot be answered: the grammar is fine but asks for something davit does
/// not do (RFC 5323 §5.5: `DAV:search-grammar-supported` or a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchError {
    /// Not a well-formed or valid search document (400).
    Xml(XmlError),
    /// A query grammar other than `DAV:basicsearch`.
    Grammar,
    /// A part of basicsearch davit does not evaluate (422), named.
    Unsupported(&'static str),
}

impl From<XmlError> for SearchError {
    fn from(e: XmlError) -> Self {
        SearchError::Xml(e)
    }
}

impl Condition {
    /// Whether a resource named `name` (one decoded segment; the root's is "") of this kind
    /// satisfies the condition.
    pub fn matches(&self, name: &str, is_collection: bool) -> bool {
        match self {
            Condition::And(all) => all.iter().all(|c| c.matches(name, is_collection)),
            Condition::Or(any) => any.iter().any(|c| c.matches(name, is_collection)),
            Condition::Not(c) => !c.matches(name, is_collection),
            Condition::NameLike(pattern) => like(pattern, name),
            Condition::IsCollection => is_collection,
        }
    }
}

/// One element of a `like` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Any,
    One,
    Char(char),
}

/// SQL-style `LIKE`, case-insensitive (Unicode lowercase on both sides).
fn like(pattern: &str, text: &str) -> bool {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => match chars.next() {
                Some(e) => Token::Char(e),
                None => Token::Char('\\'),
            },
            c => Token::Char(c),
        });
    }
    let tokens: Vec<Token> = tokens
        .into_iter()
        .flat_map(|t| match t {
            Token::Char(c) => c.to_lowercase().map(Token::Char).collect::<Vec<_>>(),
            t => vec![t],
        })
        .collect();
    let text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    // Greedy matching with one backtrack point per `%`: linear in practice, never exponential.
    let (mut t, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < text.len() {
        match tokens.get(t) {
            Some(Token::Any) => {
                star = Some((t, s));
                t += 1;
            }
            Some(Token::One) => {
                t += 1;
                s += 1;
            }
            Some(Token::Char(c)) if *c == text[s] => {
                t += 1;
                s += 1;
            }
            _ => match star {
                Some((st, ss)) => {
                    t = st + 1;
                    s = ss + 1;
                    star = Some((st, ss + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|t| *t == Token::Any)
}

/// Parses a SEARCH body.
pub fn parse_search(body: &[u8], limits: &Limits) -> Result<Search, SearchError> {
    let root = parse_document(body, limits)?;
    if !root.name.is_dav("searchrequest") {
        return Err(XmlError::Invalid("the body is not a DAV:searchrequest").into());
    }
    let mut grammars = root.elements();
    let basic = match grammars.next() {
        Some(g) if g.name.is_dav("basicsearch") => g,
        Some(_) => return Err(SearchError::Grammar),
        None => return Err(XmlError::Invalid("searchrequest names no query grammar").into()),
    };
    let mut select = None;
    let mut scope = None;
    let mut condition = None;
    let mut limit = None;
    for part in basic.elements() {
        if part.name.is_dav("select") {
            select = Some(select_from(part)?);
        } else if part.name.is_dav("from") {
            scope = Some(scope_from(part)?);
        } else if part.name.is_dav("where") {
            let mut ops = part.elements();
            let op = ops
                .next()
                .ok_or(XmlError::Invalid("where holds no condition"))?;
            if ops.next().is_some() {
                return Err(XmlError::Invalid("where holds more than one condition").into());
            }
            condition = Some(condition_from(op, 0)?);
        } else if part.name.is_dav("orderby") {
            return Err(SearchError::Unsupported("orderby"));
        } else if part.name.is_dav("limit") {
            let n = part
                .elements()
                .find(|e| e.name.is_dav("nresults"))
                .ok_or(XmlError::Invalid("limit holds no nresults"))?;
            limit = Some(
                n.text()
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| XmlError::Invalid("nresults is not a number"))?,
            );
        }
    }
    let select = select.ok_or(XmlError::Invalid("basicsearch has no select"))?;
    let (scope, depth) = scope.ok_or(XmlError::Invalid("basicsearch has no from"))?;
    Ok(Search {
        select,
        scope,
        depth,
        condition,
        limit,
    })
}

fn select_from(select: &Element) -> Result<PropFind, SearchError> {
    for e in select.elements() {
        if e.name.is_dav("allprop") {
            return Ok(PropFind::AllProp {
                include: Vec::new(),
            });
        }
        if e.name.is_dav("prop") {
            return Ok(PropFind::Prop(
                e.elements().map(|p| p.name.clone()).collect(),
            ));
        }
    }
    Err(XmlError::Invalid("select needs prop or allprop").into())
}

fn scope_from(from: &Element) -> Result<(String, Depth), SearchError> {
    let mut scopes = from.elements().filter(|e| e.name.is_dav("scope"));
    let scope = scopes
        .next()
        .ok_or(XmlError::Invalid("from holds no scope"))?;
    if scopes.next().is_some() {
        return Err(SearchError::Unsupported("more than one scope"));
    }
    let mut href = None;
    let mut depth = Depth::Infinity;
    for e in scope.elements() {
        if e.name.is_dav("href") {
            href = Some(e.text().trim().to_owned());
        } else if e.name.is_dav("depth") {
            depth = match e.text().trim() {
                "0" => Depth::Zero,
                "1" => Depth::One,
                t if t.eq_ignore_ascii_case("infinity") => Depth::Infinity,
                _ => return Err(XmlError::Invalid("depth is not 0, 1 or infinity").into()),
            };
        } else if e.name.is_dav("include-versions") {
            return Err(SearchError::Unsupported("include-versions"));
        }
    }
    let href = href.ok_or(XmlError::Invalid("scope has no href"))?;
    Ok((href, depth))
}

/// How deeply conditions may nest (the document limits bound the rest).
const MAX_NESTING: usize = 32;

fn condition_from(op: &Element, nesting: usize) -> Result<Condition, SearchError> {
    if nesting > MAX_NESTING {
        return Err(XmlError::Invalid("where is nested too deeply").into());
    }
    let operands = || -> Result<Vec<Condition>, SearchError> {
        op.elements()
            .map(|e| condition_from(e, nesting + 1))
            .collect()
    };
    if op.name.is_dav("and") {
        return Ok(Condition::And(operands()?));
    }
    if op.name.is_dav("or") {
        return Ok(Condition::Or(operands()?));
    }
    if op.name.is_dav("not") {
        let mut all = operands()?;
        if all.len() != 1 {
            return Err(XmlError::Invalid("not takes one operand").into());
        }
        return Ok(Condition::Not(Box::new(all.remove(0))));
    }
    if op.name.is_dav("is-collection") {
        return Ok(Condition::IsCollection);
    }
    if op.name.is_dav("like") {
        let prop = op
            .elements()
            .find(|e| e.name.is_dav("prop"))
            .ok_or(XmlError::Invalid("like names no prop"))?;
        let names: Vec<&QName> = prop.elements().map(|e| &e.name).collect();
        if names.len() != 1 || !names[0].is_dav("displayname") {
            return Err(SearchError::Unsupported(
                "like on a property other than displayname",
            ));
        }
        let literal = op
            .elements()
            .find(|e| e.name.is_dav("literal"))
            .ok_or(XmlError::Invalid("like has no literal"))?;
        return Ok(Condition::NameLike(literal.text()));
    }
    Err(SearchError::Unsupported(
        "a where operator other than and, or, not, like (displayname) and is-collection",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(where_: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<D:searchrequest xmlns:D="DAV:"><D:basicsearch>
  <D:select><D:prop><D:displayname/><D:getcontentlength/></D:prop></D:select>
  <D:from><D:scope><D:href>/docs/</D:href><D:depth>infinity</D:depth></D:scope></D:from>
  {where_}
  <D:limit><D:nresults>50</D:nresults></D:limit>
</D:basicsearch></D:searchrequest>"#
        )
    }

    #[test]
    fn like_matches_sql_patterns_without_case() {
        assert!(like("%report%", "Annual REPORT 2024.pdf"));
        assert!(like("%.pdf", "a.PDF"));
        assert!(!like("%.pdf", "a.pdf.txt"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("100\\%", "100%"));
        assert!(!like("100\\%", "1000"));
        assert!(like("%", ""));
        assert!(like("%ü%", "MÜNCHEN"));
        assert!(like("%a%b%c%", "xxaxxbxxcxx"));
        assert!(!like("%a%b%c%", "xxaxxcxxbxx"));
    }

    #[test]
    fn a_basicsearch_parses_into_its_parts() {
        let s = parse_search(
            doc(r#"<D:where><D:and><D:like><D:prop><D:displayname/></D:prop><D:literal>%rep%</D:literal></D:like><D:not><D:is-collection/></D:not></D:and></D:where>"#)
                .as_bytes(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(s.scope, "/docs/");
        assert_eq!(s.depth, Depth::Infinity);
        assert_eq!(s.limit, Some(50));
        assert_eq!(
            s.select,
            PropFind::Prop(vec![
                QName::dav("displayname"),
                QName::dav("getcontentlength")
            ])
        );
        let c = s.condition.unwrap();
        assert_eq!(
            c,
            Condition::And(vec![
                Condition::NameLike("%rep%".into()),
                Condition::Not(Box::new(Condition::IsCollection)),
            ])
        );
        assert!(c.matches("Report.txt", false));
        assert!(!c.matches("Report", true));
        assert!(!c.matches("notes.txt", false));
    }

    #[test]
    fn what_is_not_evaluated_is_refused_by_name() {
        let gt = doc(
            r#"<D:where><D:gt><D:prop><D:getcontentlength/></D:prop><D:literal>1</D:literal></D:gt></D:where>"#,
        );
        assert!(matches!(
            parse_search(gt.as_bytes(), &Limits::default()),
            Err(SearchError::Unsupported(_))
        ));
        let other_prop = doc(
            r#"<D:where><D:like><D:prop><D:getcontenttype/></D:prop><D:literal>%</D:literal></D:like></D:where>"#,
        );
        assert_eq!(
            parse_search(other_prop.as_bytes(), &Limits::default()),
            Err(SearchError::Unsupported(
                "like on a property other than displayname"
            ))
        );
        let order = doc("<D:orderby/>");
        assert_eq!(
            parse_search(order.as_bytes(), &Limits::default()),
            Err(SearchError::Unsupported("orderby"))
        );
        let grammar =
            r#"<D:searchrequest xmlns:D="DAV:" xmlns:x="urn:x"><x:sql/></D:searchrequest>"#;
        assert_eq!(
            parse_search(grammar.as_bytes(), &Limits::default()),
            Err(SearchError::Grammar)
        );
        assert!(matches!(
            parse_search(b"<D:propfind xmlns:D=\"DAV:\"/>", &Limits::default()),
            Err(SearchError::Xml(_))
        ));
        assert!(matches!(
            parse_search(b"not xml", &Limits::default()),
            Err(SearchError::Xml(_))
        ));
    }
}
