//! Principals (RFC 5397, RFC 3744 §5.4). With authentication on, every configured user has a
//! principal resource at `<principals_path><name>/`, which `DAV:current-user-principal` names,
//! answered by davit itself (it is not a file in the served directory, and shadows one there
//! at that exact URL). Only its own user sees it: the principals collection lists just the
//! asker's, so no user learns the others' names.

use super::{header_str, multistatus, response, Dav, ReqBody, Target};
use crate::auth::Principal;
use crate::body::{self, Body};
use crate::error::{DavError, DavResult};
use crate::live::{privilege_set, Viewer};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::Storage;
use davit_proto::headers::Depth;
use davit_proto::href::DavPath;
use davit_proto::xml::{escape_text, parse_propfind, MultistatusWriter, PropFind, QName};
use http::request::Parts;
use http::{header, Response, StatusCode};

/// The methods a principal resource answers.
const ALLOW_PRINCIPAL: &str = "OPTIONS, GET, HEAD, PROPFIND";

/// One of davit's own principal resources.
pub(crate) enum PrincipalResource {
    /// The collection of principals.
    Collection(DavPath),
    /// A user's principal.
    User(DavPath, String),
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// The principal URL of a user.
    fn principal_path(&self, name: &str) -> Option<DavPath> {
        self.config.principals_collection().ok()?.join(name).ok()
    }

    /// Who a response is computed for, with their principal's href.
    pub(crate) fn viewer<'a>(&'a self, who: &'a Principal) -> Viewer<'a> {
        let href = match (who, &self.auth) {
            (Principal::User(name), Some(_)) => self.principal_path(name),
            _ => None,
        };
        let principal_xml = match href {
            Some(p) => {
                let mut x = String::from("<D:href>");
                escape_text(&p.href(true), &mut x);
                x.push_str("</D:href>");
                x
            }
            None => "<D:unauthenticated/>".to_owned(),
        };
        Viewer {
            principal_xml,
            who,
            auth: self.auth.as_deref(),
        }
    }

    /// The principal resource at `target`, if it is one (only while authentication is on).
    pub(crate) fn principal_resource(&self, target: &Target) -> Option<PrincipalResource> {
        let auth = self.auth.as_ref()?;
        let prefix = self.config.principals_collection().ok()?;
        if target.path == prefix {
            return Some(PrincipalResource::Collection(prefix));
        }
        let name = target.path.name()?;
        (target.path.parent()? == prefix && auth.has_user(name))
            .then(|| PrincipalResource::User(target.path.clone(), name.to_owned()))
    }

    /// Answers a request to a principal resource: readable by the authenticated user it
    /// belongs to (the collection by any authenticated user), never writable.
    pub(crate) async fn serve_principal<B: ReqBody>(
        &self,
        parts: &Parts,
        resource: PrincipalResource,
        body: B,
    ) -> DavResult<Response<Body>> {
        let who = super::principal(parts);
        let Principal::User(me) = &who else {
            let challenge = self
                .auth
                .as_ref()
                .map(|a| a.challenge())
                .unwrap_or_default();
            return Err(DavError::Unauthorized(challenge));
        };
        if let PrincipalResource::User(_, name) = &resource {
            if name != me {
                return Err(DavError::Forbidden("another user's principal"));
            }
        }
        match parts.method.as_str() {
            "OPTIONS" => Ok(super::options::answer(ALLOW_PRINCIPAL)),
            "GET" | "HEAD" => {
                let text = match &resource {
                    PrincipalResource::Collection(_) => "principals\n".to_owned(),
                    PrincipalResource::User(_, name) => format!("principal of user {name}\n"),
                };
                let len = text.len();
                let body = if parts.method == http::Method::HEAD {
                    body::empty()
                } else {
                    body::full(text)
                };
                Ok(response(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .header(header::CONTENT_LENGTH, len)
                    .body(body)
                    .unwrap_or_else(|_| body::plain(StatusCode::INTERNAL_SERVER_ERROR)))
            }
            "PROPFIND" => {
                let depth = match header_str(parts, "depth")? {
                    None => Depth::Infinity,
                    Some(v) => Depth::parse(v)?,
                };
                let body = self.read_xml_body(parts, body).await?;
                let request = parse_propfind(&body, &self.config.xml_limits())?;
                let viewer = self.viewer(&who);
                let mut w = MultistatusWriter::new();
                match &resource {
                    PrincipalResource::Collection(path) => {
                        write_principal(&mut w, &request, path, None, &viewer);
                        if depth != Depth::Zero {
                            if let Some(mine) = self.principal_path(me) {
                                write_principal(&mut w, &request, &mine, Some(me), &viewer);
                            }
                        }
                    }
                    PrincipalResource::User(path, name) => {
                        write_principal(&mut w, &request, path, Some(name), &viewer);
                    }
                }
                Ok(multistatus(w.finish()))
            }
            _ => Err(DavError::MethodNotAllowed(ALLOW_PRINCIPAL)),
        }
    }
}

/// The properties of a principal resource (`user` is `None` for the collection).
fn write_principal(
    w: &mut MultistatusWriter,
    request: &PropFind,
    path: &DavPath,
    user: Option<&str>,
    viewer: &Viewer<'_>,
) {
    let href = |p: &DavPath| {
        let mut x = String::from("<D:href>");
        escape_text(&p.href(true), &mut x);
        x.push_str("</D:href>");
        x
    };
    // (name, value as XML, in allprop)
    let mut props: Vec<(&str, String, bool)> = vec![
        (
            "resourcetype",
            if user.is_some() {
                "<D:principal/>".into()
            } else {
                "<D:collection/>".into()
            },
            true,
        ),
        (
            "displayname",
            {
                let mut x = String::new();
                escape_text(user.unwrap_or("principals"), &mut x);
                x
            },
            true,
        ),
        (
            "current-user-principal",
            viewer.principal_xml.clone(),
            false,
        ),
        (
            "current-user-privilege-set",
            privilege_set(crate::auth::Access::Read, false),
            false,
        ),
    ];
    if user.is_some() {
        props.push(("principal-URL", href(path), false));
    }
    w.start_response_at(path, true);
    match request {
        PropFind::AllProp { include } => {
            w.start_propstat();
            for (name, value, in_allprop) in &props {
                if *in_allprop || include.iter().any(|n| n.is_dav(name)) {
                    w.prop_xml(&QName::dav(name), value);
                }
            }
            w.end_propstat(200, None);
        }
        PropFind::PropName => {
            w.start_propstat();
            for (name, _, _) in &props {
                w.prop_empty(&QName::dav(name));
            }
            w.end_propstat(200, None);
        }
        PropFind::Prop(names) => {
            let (found, missing): (Vec<&QName>, Vec<&QName>) = names
                .iter()
                .partition(|n| props.iter().any(|(p, _, _)| n.is_dav(p)));
            if !found.is_empty() {
                w.start_propstat();
                for n in found {
                    if let Some((_, value, _)) = props.iter().find(|(p, _, _)| n.is_dav(p)) {
                        w.prop_xml(n, value);
                    }
                }
                w.end_propstat(200, None);
            }
            if !missing.is_empty() {
                w.start_propstat();
                for n in missing {
                    w.prop_empty(n);
                }
                w.end_propstat(404, None);
            }
        }
    }
    w.end_response(None);
}
