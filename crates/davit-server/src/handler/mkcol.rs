//! MKCOL: one new, empty collection; with a `DAV:mkcol` body (RFC 5689, extended MKCOL) it
//! gets its properties in the same request, all or nothing.

use super::{has_body, Change, Dav, Done, ReqBody, Target, ALLOW_DIR, ALLOW_FILE};
use crate::body::Body;
use crate::changes::{Noted, Observed};
use crate::error::{DavError, DavResult};
use crate::live;
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::props::{DeadProp, PropOp};
use crate::storage::Storage;
use davit_proto::xml::{
    parse_mkcol, Element, Limits, MultistatusWriter, XmlError, XML_CONTENT_TYPE,
};
use http::request::Parts;
use http::{header, Response, StatusCode};

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn mkcol<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        let mut props = Vec::new();
        if has_body(parts) {
            let body = self.read_xml_body(parts, body).await?;
            if !body.is_empty() {
                props = mkcol_body(parts, &body, &self.config.xml_limits())?;
            }
        }
        Ok(match self.make_collection(parts, target, props).await? {
            Ok(done) => self.answer(done).await,
            Err(refused) => refused,
        })
    }

    /// MKCOL of `target` with the properties of an extended MKCOL, for an HTTP request or a
    /// batch operation (`parts` carries who asks and the If header); `Err` holds the 403
    /// answer naming the properties that could not be set.
    pub(crate) async fn make_collection(
        &self,
        parts: &Parts,
        target: &Target,
        props: Vec<Element>,
    ) -> DavResult<Result<Done, Response<Body>>> {
        let path = &target.path;
        if let Some(m) = self.meta_at(path).await? {
            return Err(DavError::MethodNotAllowed(if m.is_dir() {
                ALLOW_DIR
            } else {
                ALLOW_FILE
            }));
        }
        let parent = path.parent().ok_or(DavError::Forbidden("no parent"))?;
        if !self.meta_at(&parent).await?.is_some_and(|m| m.is_dir()) {
            return Err(DavError::Conflict("the parent collection does not exist"));
        }
        self.check_preconditions(
            parts,
            target,
            None,
            &[Change::Resource(&parent), Change::Resource(path)],
        )
        .await?;
        let (ops, refused) = decide(props);
        if let Some(report) = refused {
            return Ok(Err(report));
        }
        // Properties left behind at this URL are cleared before the collection appears, so a
        // crash in between can never hand them to it.
        self.props.delete(path, Vec::new()).await?;
        self.storage.create_dir(path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                DavError::MethodNotAllowed(ALLOW_DIR)
            } else {
                e.into()
            }
        })?;
        if !ops.is_empty() {
            if let Err(e) = self.props.patch(path, ops).await {
                // All or nothing: the collection goes again.
                let _ = self.storage.delete_tree(path).await;
                let _ = self.props.delete(path, Vec::new()).await;
                return Err(e.into());
            }
        }
        if let Some(meta) = self.meta_at(path).await? {
            self.note_changes(vec![Noted::Present(Observed::from_meta(
                path.clone(),
                &meta,
            ))])
            .await;
        }
        Ok(Ok(Done::Created))
    }
}

/// The properties of an extended MKCOL body. A body MKCOL does not understand is 415 (RFC 4918
/// §9.3): not XML without an XML media type, or XML that is not a `DAV:mkcol`; a broken
/// `DAV:mkcol`, or broken XML declared as XML, is 400.
fn mkcol_body(parts: &Parts, body: &[u8], limits: &Limits) -> DavResult<Vec<Element>> {
    const UNSUPPORTED: &str = "MKCOL accepts only an RFC 5689 DAV:mkcol body";
    let ctype = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let declared_xml = match ctype.as_deref() {
        None => false,
        Some("application/xml" | "text/xml") => true,
        Some(_) => return Err(DavError::UnsupportedMediaType(UNSUPPORTED)),
    };
    match parse_mkcol(body, limits) {
        Ok(Some(props)) => Ok(props),
        Ok(None) => Err(DavError::UnsupportedMediaType(UNSUPPORTED)),
        Err(XmlError::Syntax(_) | XmlError::Namespace(_)) if !declared_xml => {
            Err(DavError::UnsupportedMediaType(UNSUPPORTED))
        }
        Err(e) => Err(e.into()),
    }
}

/// Decides every property before anything is created: the dead ones to store, or, when one
/// cannot be set, the 403 answer with a `mkcol-response` giving each property its status (the
/// failed ones 403, the rest 424), RFC 5689 §3.
fn decide(props: Vec<Element>) -> (Vec<PropOp>, Option<Response<Body>>) {
    let mut outcomes: Vec<(&Element, u16, Option<&'static str>)> = Vec::new();
    for p in &props {
        let outcome = if p.name.is_dav("resourcetype") {
            // A collection is all davit makes: `DAV:collection` and nothing else.
            let kinds: Vec<_> = p.elements().collect();
            if kinds.len() == 1 && kinds[0].name.is_dav("collection") {
                (200, None)
            } else {
                (403, Some("valid-resourcetype"))
            }
        } else if live::is_protected(&p.name) {
            (403, Some("cannot-modify-protected-property"))
        } else {
            (200, None)
        };
        outcomes.push((p, outcome.0, outcome.1));
    }
    if outcomes.iter().all(|o| o.1 == 200) {
        let ops = props
            .into_iter()
            .filter(|p| !p.name.is_dav("resourcetype"))
            .map(|p| {
                PropOp::Set(DeadProp {
                    xml: p.to_fragment(),
                    name: p.name,
                })
            })
            .collect();
        return (ops, None);
    }
    let mut w = MultistatusWriter::mkcol_response();
    let mut groups: Vec<(u16, Option<&'static str>)> = Vec::new();
    for o in outcomes.iter_mut() {
        if o.1 == 200 {
            o.1 = 424;
        }
        if !groups.contains(&(o.1, o.2)) {
            groups.push((o.1, o.2));
        }
    }
    for (status, cond) in groups {
        w.start_propstat();
        let mut written = Vec::new();
        for (p, s, c) in &outcomes {
            if (*s, *c) == (status, cond) && !written.contains(&&p.name) {
                w.prop_empty(&p.name);
                written.push(&p.name);
            }
        }
        w.end_propstat(status, cond);
    }
    let resp = Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_TYPE, XML_CONTENT_TYPE)
        .body(crate::body::full(w.finish()))
        .unwrap_or_else(|_| crate::body::plain(StatusCode::INTERNAL_SERVER_ERROR));
    (Vec::new(), Some(resp))
}
