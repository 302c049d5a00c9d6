//! The batch document: many operations in one POST, in davit's own XML namespace or as JSON.
//! The format is described, with examples, in `docs/batch.md`.
//!
//! A document that is not well-formed, or not a batch, fails as a whole. A single malformed
//! operation inside a well-formed batch is kept as an `Err` in its place, so that it can be
//! answered with its own 400 while the others run.

use crate::headers::Depth;
use crate::xml::{
    parse_document, patch_ops_from, propfind_from, Element, Limits, Node, PatchOp, PropFind, QName,
    XmlError,
};
use base64::Engine;
use serde_json::Value;

/// The namespace of batch documents.
pub const BATCH_NS: &str = "urn:davit:batch";

/// How a batch reacts to a failed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchMode {
    /// Every operation is tried.
    #[default]
    Independent,
    /// After the first failure the remaining operations answer 424.
    StopOnError,
    /// All or nothing.
    Atomic,
}

impl BatchMode {
    fn parse(s: &str) -> Option<BatchMode> {
        match s {
            "independent" => Some(BatchMode::Independent),
            "stop-on-error" => Some(BatchMode::StopOnError),
            "atomic" => Some(BatchMode::Atomic),
            _ => None,
        }
    }
}

/// A parsed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The failure mode.
    pub mode: BatchMode,
    /// The operations in request order; malformed ones carry their reason.
    pub ops: Vec<Result<BatchOp, OpError>>,
}

/// A malformed operation: the href it named (if it could be read) and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// The operation's href as written, when present.
    pub href: Option<String>,
    /// A short reason.
    pub reason: String,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOp {
    /// The target: relative to the collection the batch was posted to, or an absolute path
    /// (percent-encoded, like any href).
    pub href: String,
    /// An If header value for this operation (lock tokens, entity tags).
    pub if_header: Option<String>,
    /// What to do.
    pub kind: OpKind,
}

/// What an operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Create or replace a file with inline content.
    Put {
        /// The content.
        content: Vec<u8>,
        /// Its media type, if given.
        content_type: Option<String>,
    },
    /// Remove a resource (a collection with all its members).
    Delete,
    /// Create a collection, and optionally its missing parents.
    Mkcol {
        /// Create missing parent collections first.
        parents: bool,
    },
    /// Copy to `destination`.
    Copy {
        /// Target href (relative or absolute, like `href`).
        destination: String,
        /// Replace an existing destination.
        overwrite: bool,
        /// 0 or infinity.
        depth: Depth,
    },
    /// Move to `destination`.
    Move {
        /// Target href.
        destination: String,
        /// Replace an existing destination.
        overwrite: bool,
    },
    /// Set and remove properties, in order, atomically.
    PropPatch(Vec<PatchOp>),
    /// Read properties.
    PropFind(PropFind),
}

impl OpKind {
    /// The HTTP method the operation runs as.
    pub fn method(&self) -> &'static str {
        match self {
            OpKind::Put { .. } => "PUT",
            OpKind::Delete => "DELETE",
            OpKind::Mkcol { .. } => "MKCOL",
            OpKind::Copy { .. } => "COPY",
            OpKind::Move { .. } => "MOVE",
            OpKind::PropPatch(_) => "PROPPATCH",
            OpKind::PropFind(_) => "PROPFIND",
        }
    }
}

/// Why a whole batch document was refused (answered 400, or 413 when too large).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The XML is not well-formed or not a batch.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The JSON is not well-formed or not a batch.
    #[error("malformed JSON batch: {0}")]
    Json(String),
    /// More operations than allowed.
    #[error("the batch holds more than {0} operations")]
    TooMany(usize),
    /// More JSON values than allowed: parsed, they would take far more memory than the body.
    #[error("the batch holds more than {0} JSON values")]
    TooManyValues(usize),
}

/// Parses an XML batch of at most `max_ops` operations.
pub fn parse_batch_xml(body: &[u8], limits: &Limits, max_ops: usize) -> Result<Batch, BatchError> {
    let root = parse_document(body, limits)?;
    if root.name != QName::new(BATCH_NS, "batch") {
        return Err(XmlError::Invalid("the body is not a batch (urn:davit:batch)").into());
    }
    let mode = match attr(&root, "mode") {
        None => BatchMode::Independent,
        Some(m) => BatchMode::parse(m).ok_or(XmlError::Invalid("unknown batch mode"))?,
    };
    let mut ops = Vec::new();
    for el in root.elements().filter(|e| e.name.ns == BATCH_NS) {
        if ops.len() == max_ops {
            return Err(BatchError::TooMany(max_ops));
        }
        ops.push(xml_op(el).map_err(|reason| OpError {
            href: attr(el, "href").map(str::to_owned),
            reason,
        }));
    }
    Ok(Batch { mode, ops })
}

fn attr<'a>(el: &'a Element, local: &str) -> Option<&'a str> {
    el.attrs
        .iter()
        .find(|a| a.name.ns.is_empty() && a.name.local == local)
        .map(|a| a.value.as_str())
}

fn flag(el: &Element, local: &str, default: bool) -> Result<bool, String> {
    match attr(el, local) {
        None => Ok(default),
        Some("true" | "T" | "t" | "1") => Ok(true),
        Some("false" | "F" | "f" | "0") => Ok(false),
        Some(_) => Err(format!("{local} must be true or false")),
    }
}

fn depth_of(value: Option<&str>) -> Result<Depth, String> {
    match value {
        None => Ok(Depth::Infinity),
        Some(v) => match Depth::parse(v) {
            Ok(Depth::One) | Err(_) => Err("depth must be 0 or infinity".into()),
            Ok(d) => Ok(d),
        },
    }
}

fn xml_op(el: &Element) -> Result<BatchOp, String> {
    let href = attr(el, "href")
        .ok_or("the operation has no href")?
        .to_owned();
    let if_header = attr(el, "if").map(str::to_owned);
    let destination = || {
        attr(el, "destination")
            .map(str::to_owned)
            .ok_or_else(|| "the operation has no destination".to_owned())
    };
    let kind = match el.name.local.as_str() {
        "put" => {
            let text: String = el
                .children
                .iter()
                .filter_map(|n| match n {
                    Node::Text(t) => Some(t.as_str()),
                    Node::Element(_) => None,
                })
                .collect();
            let content = match attr(el, "encoding") {
                None | Some("text") => text.into_bytes(),
                Some("base64") => decode_base64(&text)?,
                Some(_) => return Err("encoding must be text or base64".into()),
            };
            OpKind::Put {
                content,
                content_type: attr(el, "content-type").map(str::to_owned),
            }
        }
        "delete" => OpKind::Delete,
        "mkcol" => OpKind::Mkcol {
            parents: flag(el, "parents", false)?,
        },
        "copy" => OpKind::Copy {
            destination: destination()?,
            overwrite: flag(el, "overwrite", true)?,
            depth: depth_of(attr(el, "depth"))?,
        },
        "move" => OpKind::Move {
            destination: destination()?,
            overwrite: flag(el, "overwrite", true)?,
        },
        "proppatch" => OpKind::PropPatch(patch_ops_from(el).map_err(|e| e.to_string())?),
        "propfind" => OpKind::PropFind(propfind_from(el).map_err(|e| e.to_string())?),
        other => return Err(format!("unknown operation {other:?}")),
    };
    Ok(BatchOp {
        href,
        if_header,
        kind,
    })
}

fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("invalid base64 content: {e}"))
}

/// JSON values a batch may hold per operation it may hold, on average: an operation is a
/// dozen, a PROPPATCH of many properties more.
const JSON_VALUES_PER_OP: usize = 64;

/// Parses a JSON batch of at most `max_ops` operations.
pub fn parse_batch_json(body: &[u8], max_ops: usize) -> Result<Batch, BatchError> {
    // A parsed value takes 30 to 100 bytes, and `0,` is two: 64 MiB of `[0,0,...]` took
    // 1.6 GB. Counting first bounds the tree whatever the body holds.
    let budget = max_ops.saturating_mul(JSON_VALUES_PER_OP).max(1024);
    if json_values_over(body, budget) {
        return Err(BatchError::TooManyValues(budget));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| BatchError::Json(e.to_string()))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| BatchError::Json("the document is not an object".into()))?;
    let mode = match obj.get("mode") {
        None => BatchMode::Independent,
        Some(Value::String(m)) => BatchMode::parse(m)
            .ok_or_else(|| BatchError::Json(format!("unknown batch mode {m:?}")))?,
        Some(_) => return Err(BatchError::Json("mode must be a string".into())),
    };
    let list = obj
        .get("operations")
        .and_then(Value::as_array)
        .ok_or_else(|| BatchError::Json("operations must be an array".into()))?;
    if list.len() > max_ops {
        return Err(BatchError::TooMany(max_ops));
    }
    let ops = list
        .iter()
        .map(|v| {
            json_op(v).map_err(|reason| OpError {
                href: v.get("href").and_then(Value::as_str).map(str::to_owned),
                reason,
            })
        })
        .collect();
    Ok(Batch { mode, ops })
}

/// Whether `body` holds more than `limit` JSON values, counted as the containers opened and
/// the commas outside strings (an over-estimate by at most one per container).
fn json_values_over(body: &[u8], limit: usize) -> bool {
    let (mut count, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' | b',' => {
                count += 1;
                if count > limit {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Reads a property name in Clark notation, `{namespace}local` (or a bare `local` for no
/// namespace).
pub fn parse_clark(name: &str) -> Option<QName> {
    let (ns, local) = match name.strip_prefix('{') {
        Some(rest) => rest.split_once('}')?,
        None => ("", name),
    };
    let valid = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !local.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.');
    valid.then(|| QName::new(ns, local))
}

/// Writes a name in Clark notation.
pub fn clark(name: &QName) -> String {
    if name.ns.is_empty() {
        name.local.clone()
    } else {
        format!("{{{}}}{}", name.ns, name.local)
    }
}

fn json_op(v: &Value) -> Result<BatchOp, String> {
    let obj = v.as_object().ok_or("an operation must be an object")?;
    let text = |key: &str| obj.get(key).and_then(Value::as_str);
    let flag = |key: &str, default: bool| match obj.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{key} must be true or false")),
    };
    let href = text("href").ok_or("the operation has no href")?.to_owned();
    let if_header = text("if").map(str::to_owned);
    let destination = || {
        text("destination")
            .map(str::to_owned)
            .ok_or_else(|| "the operation has no destination".to_owned())
    };
    let kind = match text("op").ok_or("the operation has no op")? {
        "put" => {
            let content = match (text("content"), text("content_base64")) {
                (Some(t), None) => t.as_bytes().to_vec(),
                (None, Some(b)) => decode_base64(b)?,
                (None, None) => Vec::new(),
                (Some(_), Some(_)) => return Err("give content or content_base64, not both".into()),
            };
            OpKind::Put {
                content,
                content_type: text("content_type").map(str::to_owned),
            }
        }
        "delete" => OpKind::Delete,
        "mkcol" => OpKind::Mkcol {
            parents: flag("parents", false)?,
        },
        "copy" => OpKind::Copy {
            destination: destination()?,
            overwrite: flag("overwrite", true)?,
            depth: depth_of(text("depth"))?,
        },
        "move" => OpKind::Move {
            destination: destination()?,
            overwrite: flag("overwrite", true)?,
        },
        "proppatch" => {
            let mut ops = Vec::new();
            if let Some(set) = obj.get("set") {
                let set = set.as_object().ok_or("set must be an object")?;
                for (name, value) in set {
                    let qname =
                        parse_clark(name).ok_or_else(|| format!("bad property name {name:?}"))?;
                    let value = value
                        .as_str()
                        .ok_or_else(|| format!("the value of {name} must be a string"))?;
                    ops.push(PatchOp::Set(Element {
                        name: qname,
                        prefix: None,
                        attrs: Vec::new(),
                        children: if value.is_empty() {
                            Vec::new()
                        } else {
                            vec![Node::Text(value.to_owned())]
                        },
                        lang: None,
                    }));
                }
            }
            if let Some(remove) = obj.get("remove") {
                let remove = remove.as_array().ok_or("remove must be an array")?;
                for name in remove {
                    let name = name.as_str().ok_or("remove must list property names")?;
                    ops.push(PatchOp::Remove(
                        parse_clark(name).ok_or_else(|| format!("bad property name {name:?}"))?,
                    ));
                }
            }
            if ops.is_empty() {
                return Err("proppatch needs set or remove".into());
            }
            OpKind::PropPatch(ops)
        }
        "propfind" => {
            let request = if flag("propname", false)? {
                PropFind::PropName
            } else if let Some(props) = obj.get("props") {
                let props = props.as_array().ok_or("props must be an array")?;
                let mut names = Vec::with_capacity(props.len());
                for p in props {
                    let p = p.as_str().ok_or("props must list property names")?;
                    names.push(parse_clark(p).ok_or_else(|| format!("bad property name {p:?}"))?);
                }
                PropFind::Prop(names)
            } else {
                PropFind::AllProp {
                    include: Vec::new(),
                }
            };
            OpKind::PropFind(request)
        }
        other => return Err(format!("unknown operation {other:?}")),
    };
    Ok(BatchOp {
        href,
        if_header,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_depth: 64,
        max_elements: 10_000,
    };

    #[test]
    fn xml_batch_with_every_operation() {
        let doc = r#"<b:batch xmlns:b="urn:davit:batch" xmlns:D="DAV:" xmlns:z="urn:z" mode="atomic">
            <b:put href="a.txt" content-type="text/plain">hello &amp; bye</b:put>
            <b:put href="b.bin" encoding="base64">AAEC/w==</b:put>
            <b:delete href="old.txt" if="(&lt;urn:uuid:1&gt;)"/>
            <b:mkcol href="x/y/" parents="true"/>
            <b:copy href="a.txt" destination="c.txt" overwrite="false" depth="0"/>
            <b:move href="c.txt" destination="/d.txt"/>
            <b:proppatch href="a.txt"><D:set><D:prop><z:t>v</z:t></D:prop></D:set></b:proppatch>
            <b:propfind href="a.txt"><D:prop><D:getetag/></D:prop></b:propfind>
            <b:frob href="q"/>
            <b:copy href="q"/>
        </b:batch>"#;
        let b = parse_batch_xml(doc.as_bytes(), &LIMITS, 100).unwrap();
        assert_eq!(b.mode, BatchMode::Atomic);
        assert_eq!(b.ops.len(), 10);
        let ok: Vec<&BatchOp> = b.ops.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(ok.len(), 8);
        assert_eq!(
            ok[0].kind,
            OpKind::Put {
                content: b"hello & bye".to_vec(),
                content_type: Some("text/plain".into())
            }
        );
        assert_eq!(
            ok[1].kind,
            OpKind::Put {
                content: vec![0, 1, 2, 255],
                content_type: None
            }
        );
        assert_eq!(ok[2].if_header.as_deref(), Some("(<urn:uuid:1>)"));
        assert_eq!(ok[3].kind, OpKind::Mkcol { parents: true });
        assert_eq!(
            ok[4].kind,
            OpKind::Copy {
                destination: "c.txt".into(),
                overwrite: false,
                depth: Depth::Zero
            }
        );
        assert!(matches!(&ok[6].kind, OpKind::PropPatch(ops) if ops.len() == 1));
        assert_eq!(
            ok[7].kind,
            OpKind::PropFind(PropFind::Prop(vec![QName::dav("getetag")]))
        );
        assert_eq!(b.ops[8].as_ref().unwrap_err().href.as_deref(), Some("q"));
        assert!(b.ops[9]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("destination"));
    }

    #[test]
    fn json_value_bombs_are_refused_before_parsing() {
        // 20,000 values in an array, with a budget of 2 operations (floor 1,024 values).
        let bomb = format!("{{\"operations\":[{}0]}}", "0,".repeat(20_000));
        assert!(matches!(
            parse_batch_json(bomb.as_bytes(), 2),
            Err(BatchError::TooManyValues(1024))
        ));
        // Commas and brackets inside strings are not values.
        let text = format!(
            "{{\"operations\":[{{\"op\":\"put\",\"href\":\"a\",\"content\":\"{}\\\"[\"}}]}}",
            ",[{".repeat(20_000)
        );
        let batch = parse_batch_json(text.as_bytes(), 2).unwrap();
        assert_eq!(batch.ops.len(), 1);
        assert!(batch.ops[0].is_ok());
    }

    #[test]
    fn whole_document_errors() {
        assert!(parse_batch_xml(b"<batch/>", &LIMITS, 10).is_err());
        assert!(parse_batch_xml(
            b"<b:batch xmlns:b='urn:davit:batch' mode='x'/>",
            &LIMITS,
            10
        )
        .is_err());
        let many = format!(
            "<b:batch xmlns:b='urn:davit:batch'>{}</b:batch>",
            "<b:delete href='a'/>".repeat(11)
        );
        assert_eq!(
            parse_batch_xml(many.as_bytes(), &LIMITS, 10),
            Err(BatchError::TooMany(10))
        );
        assert!(parse_batch_json(b"[1]", 10).is_err());
        assert!(parse_batch_json(b"{\"operations\": 3}", 10).is_err());
        assert!(parse_batch_json(b"{", 10).is_err());
    }

    #[test]
    fn json_batch() {
        let doc = br#"{"mode": "stop-on-error", "operations": [
            {"op": "put", "href": "a.txt", "content": "hi", "content_type": "text/plain"},
            {"op": "put", "href": "b", "content_base64": "AAE="},
            {"op": "mkcol", "href": "d/", "parents": true},
            {"op": "proppatch", "href": "a.txt", "set": {"{urn:z}tag": "x"}, "remove": ["{urn:z}old"]},
            {"op": "propfind", "href": "a.txt", "props": ["{DAV:}getetag", "plain"]},
            {"op": "move", "href": "a.txt"},
            {"op": "nope", "href": "z"},
            7
        ]}"#;
        let b = parse_batch_json(doc, 100).unwrap();
        assert_eq!(b.mode, BatchMode::StopOnError);
        assert_eq!(b.ops.len(), 8);
        assert_eq!(
            b.ops[1].as_ref().unwrap().kind,
            OpKind::Put {
                content: vec![0, 1],
                content_type: None
            }
        );
        match &b.ops[3].as_ref().unwrap().kind {
            OpKind::PropPatch(ops) => {
                assert!(
                    matches!(&ops[0], PatchOp::Set(e) if e.name == QName::new("urn:z", "tag") && e.text() == "x")
                );
                assert_eq!(ops[1], PatchOp::Remove(QName::new("urn:z", "old")));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            b.ops[4].as_ref().unwrap().kind,
            OpKind::PropFind(PropFind::Prop(vec![
                QName::dav("getetag"),
                QName::new("", "plain")
            ]))
        );
        assert!(b.ops[5].is_err() && b.ops[6].is_err() && b.ops[7].is_err());
    }

    #[test]
    fn clark_names() {
        assert_eq!(parse_clark("{DAV:}getetag"), Some(QName::dav("getetag")));
        assert_eq!(parse_clark("x"), Some(QName::new("", "x")));
        assert_eq!(parse_clark("{urn:z}"), None);
        assert_eq!(parse_clark("{urn:z}a b"), None);
        assert_eq!(parse_clark("{urn:z"), None);
        assert_eq!(clark(&QName::new("urn:z", "t")), "{urn:z}t");
    }
}
