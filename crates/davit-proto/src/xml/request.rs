//! The request documents: `propfind` (RFC 4918 §14.20) and `propertyupdate` (§14.19).

use super::{parse_document, Element, Limits, QName, XmlError};

/// What a PROPFIND asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropFind {
    /// All dead properties and the live ones RFC 4918 defines, plus `include`d extras.
    AllProp {
        /// Extra properties to return (`DAV:include`).
        include: Vec<QName>,
    },
    /// Names only.
    PropName,
    /// These properties.
    Prop(Vec<QName>),
}

/// One `set` or `remove` instruction, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOp {
    /// Set a property to this element (its name and value).
    Set(Element),
    /// Remove a property.
    Remove(QName),
}

/// Parses a PROPFIND body; an empty body means allprop.
pub fn parse_propfind(body: &[u8], limits: &Limits) -> Result<PropFind, XmlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PropFind::AllProp {
            include: Vec::new(),
        });
    }
    let root = parse_document(body, limits)?;
    if !root.name.is_dav("propfind") {
        return Err(XmlError::Invalid("the body is not a DAV:propfind"));
    }
    propfind_from(&root)
}

/// Reads a propfind request from the children of `root` (a `DAV:propfind`, or a batch
/// operation holding the same children).
pub fn propfind_from(root: &Element) -> Result<PropFind, XmlError> {
    let mut choice: Option<PropFind> = None;
    let mut include = Vec::new();
    for child in root.elements() {
        let this = if child.name.is_dav("allprop") {
            PropFind::AllProp {
                include: Vec::new(),
            }
        } else if child.name.is_dav("propname") {
            PropFind::PropName
        } else if child.name.is_dav("prop") {
            PropFind::Prop(child.elements().map(|e| e.name.clone()).collect())
        } else if child.name.is_dav("include") {
            include.extend(child.elements().map(|e| e.name.clone()));
            continue;
        } else {
            // Unknown elements are ignored (RFC 4918 §17).
            continue;
        };
        if choice.replace(this).is_some() {
            return Err(XmlError::Invalid(
                "propfind holds more than one of allprop, propname and prop",
            ));
        }
    }
    match choice {
        Some(PropFind::AllProp { .. }) => Ok(PropFind::AllProp { include }),
        Some(other) => Ok(other),
        None => Err(XmlError::Invalid(
            "propfind needs one of allprop, propname or prop",
        )),
    }
}

/// Parses a PROPPATCH body into its instructions in document order.
pub fn parse_propertyupdate(body: &[u8], limits: &Limits) -> Result<Vec<PatchOp>, XmlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(XmlError::Invalid(
            "PROPPATCH needs a DAV:propertyupdate body",
        ));
    }
    let root = parse_document(body, limits)?;
    if !root.name.is_dav("propertyupdate") {
        return Err(XmlError::Invalid("the body is not a DAV:propertyupdate"));
    }
    patch_ops_from(&root)
}

/// The properties an extended MKCOL (RFC 5689 §5.1) sets on the new collection, in document
/// order: the `prop` children of every `DAV:set` of a `DAV:mkcol` body; `None` for a
/// well-formed document of another kind. A `remove` is refused, as is a body with nothing to
/// set.
pub fn parse_mkcol(body: &[u8], limits: &Limits) -> Result<Option<Vec<Element>>, XmlError> {
    let root = parse_document(body, limits)?;
    if !root.name.is_dav("mkcol") {
        return Ok(None);
    }
    let mut props = Vec::new();
    for child in root.elements() {
        if child.name.is_dav("remove") {
            return Err(XmlError::Invalid("mkcol takes only DAV:set"));
        }
        if !child.name.is_dav("set") {
            continue;
        }
        for prop in child.elements().filter(|e| e.name.is_dav("prop")) {
            props.extend(prop.elements().cloned());
        }
    }
    if props.is_empty() {
        return Err(XmlError::Invalid("mkcol holds no property to set"));
    }
    Ok(Some(props))
}

/// Reads `set` and `remove` instructions from the children of `root` (a
/// `DAV:propertyupdate`, or a batch operation holding the same children).
pub fn patch_ops_from(root: &Element) -> Result<Vec<PatchOp>, XmlError> {
    let mut ops = Vec::new();
    let mut instructions = 0;
    for child in root.elements() {
        let set = if child.name.is_dav("set") {
            true
        } else if child.name.is_dav("remove") {
            false
        } else {
            continue;
        };
        instructions += 1;
        for prop in child.elements().filter(|e| e.name.is_dav("prop")) {
            for p in prop.elements() {
                ops.push(if set {
                    PatchOp::Set(p.clone())
                } else {
                    PatchOp::Remove(p.name.clone())
                });
            }
        }
    }
    if instructions == 0 || ops.is_empty() {
        return Err(XmlError::Invalid(
            "propertyupdate holds no set or remove of a property",
        ));
    }
    Ok(ops)
}

pub(super) fn push_name(out: &mut String, name: &QName) {
    // Each name declares its own namespace, so any name can be written anywhere.
    if name.ns.is_empty() {
        out.push('<');
        out.push_str(&name.local);
        out.push_str("/>");
    } else {
        out.push_str("<N:");
        out.push_str(&name.local);
        out.push_str(" xmlns:N=\"");
        super::escape_attr(&name.ns, out);
        out.push_str("\"/>");
    }
}

impl PropFind {
    /// Appends what is asked for (`allprop` with its `include`, `propname`, or `prop`), as in
    /// a `propfind` or a REPORT body.
    pub(super) fn write_props(&self, out: &mut String) {
        match self {
            PropFind::AllProp { include } => {
                out.push_str("<D:allprop/>");
                if !include.is_empty() {
                    out.push_str("<D:include>");
                    for n in include {
                        push_name(out, n);
                    }
                    out.push_str("</D:include>");
                }
            }
            PropFind::PropName => out.push_str("<D:propname/>"),
            PropFind::Prop(names) => {
                out.push_str("<D:prop>");
                for n in names {
                    push_name(out, n);
                }
                out.push_str("</D:prop>");
            }
        }
    }

    /// The request body that asks for this (what a client sends).
    pub fn to_xml(&self) -> String {
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propfind xmlns:D=\"DAV:\">",
        );
        self.write_props(&mut out);
        out.push_str("</D:propfind>\n");
        out
    }
}

/// The `propertyupdate` body for these instructions, one `set` or `remove` each, in order.
pub fn propertyupdate_xml(ops: &[PatchOp]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propertyupdate xmlns:D=\"DAV:\">",
    );
    for op in ops {
        match op {
            PatchOp::Set(e) => {
                out.push_str("<D:set><D:prop>");
                out.push_str(&e.to_fragment());
                out.push_str("</D:prop></D:set>");
            }
            PatchOp::Remove(n) => {
                out.push_str("<D:remove><D:prop>");
                push_name(&mut out, n);
                out.push_str("</D:prop></D:remove>");
            }
        }
    }
    out.push_str("</D:propertyupdate>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(s: &str) -> Result<PropFind, XmlError> {
        parse_propfind(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn propfind_forms() {
        assert_eq!(pf("").unwrap(), PropFind::AllProp { include: vec![] });
        assert_eq!(
            pf(r#"<propfind xmlns="DAV:"><propname/></propfind>"#).unwrap(),
            PropFind::PropName
        );
        let p = pf(r#"<D:propfind xmlns:D="DAV:" xmlns:z="urn:z"><D:prop><D:getetag/><z:x/><y xmlns=""/></D:prop></D:propfind>"#).unwrap();
        assert_eq!(
            p,
            PropFind::Prop(vec![
                QName::dav("getetag"),
                QName::new("urn:z", "x"),
                QName::new("", "y")
            ])
        );
        let a = pf(r#"<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:quota-used-bytes/></D:include></D:propfind>"#).unwrap();
        assert_eq!(
            a,
            PropFind::AllProp {
                include: vec![QName::dav("quota-used-bytes")]
            }
        );
        assert!(matches!(
            pf(r#"<propfind xmlns="DAV:"><z xmlns="urn:z"/><propname/></propfind>"#),
            Ok(PropFind::PropName)
        ));
    }

    #[test]
    fn propfind_to_xml_round_trips() {
        for p in [
            PropFind::PropName,
            PropFind::AllProp {
                include: vec![QName::dav("quota-used-bytes")],
            },
            PropFind::Prop(vec![
                QName::dav("getetag"),
                QName::new("urn:z", "x"),
                QName::new("", "y"),
            ]),
        ] {
            assert_eq!(pf(&p.to_xml()).unwrap(), p);
        }
    }

    #[test]
    fn propfind_errors() {
        assert!(pf(r#"<propfind xmlns="DAV:"><propname/><prop/></propfind>"#).is_err());
        assert!(pf(r#"<propfind xmlns="DAV:"></propfind>"#).is_err());
        assert!(pf(r#"<propfind><allprop/></propfind>"#).is_err());
        assert!(pf(r#"<D:propfind xmlns:D="DAV:"><D:prop>"#).is_err());
    }

    #[test]
    fn propertyupdate_in_order() {
        let body = r#"<D:propertyupdate xmlns:D="DAV:" xmlns:z="urn:z"><D:set><D:prop><z:a>1</z:a></D:prop></D:set><D:remove><D:prop><z:b/></D:prop></D:remove><D:set><D:prop><z:b>2</z:b></D:prop></D:set></D:propertyupdate>"#;
        let ops = parse_propertyupdate(body.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(ops.len(), 3);
        assert!(
            matches!(&ops[0], PatchOp::Set(e) if e.name == QName::new("urn:z", "a") && e.text() == "1")
        );
        assert_eq!(ops[1], PatchOp::Remove(QName::new("urn:z", "b")));
        assert!(parse_propertyupdate(b"", &Limits::default()).is_err());
        let again =
            parse_propertyupdate(propertyupdate_xml(&ops).as_bytes(), &Limits::default()).unwrap();
        assert_eq!(again, ops);
        assert!(
            parse_propertyupdate(b"<propertyupdate xmlns='DAV:'/>", &Limits::default()).is_err()
        );
    }
}
