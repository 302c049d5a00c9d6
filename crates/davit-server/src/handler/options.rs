//! OPTIONS: what the server and the target support.

use super::{response, Dav, Target, ALLOW_DIR, ALLOW_FILE, ALLOW_UNMAPPED};
use crate::body::{self, Body};
use crate::error::DavResult;
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::Storage;
use http::{header, Response, StatusCode};

/// The compliance classes davit implements.
pub(crate) const DAV_CLASSES: &str = "1, 2, 3, bind, extended-mkcol";

pub(crate) fn answer(allow: &str) -> Response<Body> {
    response(StatusCode::OK)
        .header("DAV", DAV_CLASSES)
        .header(header::ALLOW, allow)
        .header("MS-Author-Via", "DAV")
        .header(header::CONTENT_LENGTH, "0")
        .body(body::empty())
        .unwrap_or_else(|_| body::plain(StatusCode::INTERNAL_SERVER_ERROR))
}

/// `OPTIONS *`: the server's capabilities, whatever the resource.
pub(crate) fn server_wide() -> Response<Body> {
    answer(ALLOW_FILE)
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    pub(crate) async fn options(&self, target: &Target) -> DavResult<Response<Body>> {
        let allow = match self.meta(target).await? {
            Some(m) if m.is_dir() => ALLOW_DIR,
            Some(_) => ALLOW_FILE,
            None => ALLOW_UNMAPPED,
        };
        let mut resp = answer(allow);
        if allow == ALLOW_DIR {
            // RFC 5323 §3.2: the query grammars SEARCH accepts here.
            resp.headers_mut().insert(
                "DASL",
                header::HeaderValue::from_static("<DAV:basicsearch>"),
            );
        }
        if allow == ALLOW_FILE {
            resp.headers_mut().insert(
                header::ACCEPT_RANGES,
                header::HeaderValue::from_static("bytes"),
            );
        }
        if allow != ALLOW_DIR {
            // A PUT here may start a resumable upload.
            self.advertise_uploads(&mut resp);
        }
        Ok(resp)
    }
}
