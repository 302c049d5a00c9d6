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
    if instructions == 0 {
        return Err(XmlError::Invalid("propertyupdate holds no set or remove"));
    }
    Ok(ops)
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
        assert!(
            parse_propertyupdate(b"<propertyupdate xmlns='DAV:'/>", &Limits::default()).is_err()
        );
    }
}
