//! The live-property table: each RFC 4918 live property with how to compute it, whether allprop
//! returns it, and whether clients may set it. Handlers never match on property names.

use crate::locks::{Lock, LockDepth};
use crate::storage::Meta;
use davit_proto::href::DavPath;
use davit_proto::xml::{write_activelock, ActiveLock, SUPPORTED_LOCK};
use davit_proto::xml::{QName, DAV};
use std::borrow::Cow;
use std::time::SystemTime;

/// A computed property value, borrowed or plain data where it can be, so that listings write
/// values straight into the response without building a string for each.
pub enum LiveValue<'a> {
    /// Text content.
    Text(Cow<'a, str>),
    /// A number.
    Number(u64),
    /// A time written as an HTTP-date.
    HttpDate(SystemTime),
    /// A time written as an RFC 3339 date.
    Rfc3339(SystemTime),
    /// XML content already written with the `D:` prefix (or empty).
    Xml(Cow<'a, str>),
}

/// One live property.
pub struct LiveProp {
    /// Local name in `DAV:`.
    pub name: &'static str,
    /// Returned by allprop.
    pub in_allprop: bool,
    /// Its value for a resource, or `None` where it does not apply.
    pub value: for<'a> fn(&Target<'a>) -> Option<LiveValue<'a>>,
}

/// The resource a live property is computed for.
pub struct Target<'a> {
    /// Its path.
    pub path: &'a DavPath,
    /// Its metadata.
    pub meta: &'a Meta,
    /// The locks covering it (fetched only when `lockdiscovery` is wanted).
    pub locks: &'a [Lock],
    /// The media type given when the file was PUT, when it differs from the one its name
    /// suggests (see [`STORED_CONTENT_TYPE`]).
    pub stored_type: Option<&'a str>,
    /// The time of the response (read once per listing batch, not per property).
    pub now: SystemTime,
    /// Its quota figures (computed only when a quota property is asked for by name).
    pub quota: Option<crate::quota::QuotaInfo>,
    /// The sync-collection token of now (RFC 6578 §4; read only when asked for by name).
    pub sync_token: Option<&'a str>,
    /// Its `DAV:resource-id` (computed only when asked for).
    pub resource_id: Option<uuid::Uuid>,
    /// The bindings of multiply bound resources (looked up only for `DAV:parent-set`).
    pub bindings: Option<&'a crate::storage::BindingIndex>,
    /// Who is asking (only for `current-user-principal` and `current-user-privilege-set`).
    pub viewer: Option<&'a Viewer<'a>>,
}

/// The principal a response is computed for (RFC 5397, RFC 3744 §5.4).
pub struct Viewer<'a> {
    /// The value of `DAV:current-user-principal` (an href, or `unauthenticated`).
    pub principal_xml: String,
    /// Who it is.
    pub who: &'a crate::auth::Principal,
    /// The access rules (`None`: authentication is off and everyone may do everything).
    pub auth: Option<&'a crate::auth::Auth>,
}

impl Viewer<'_> {
    /// What the viewer may do with `path`.
    pub fn access(&self, path: &DavPath) -> crate::auth::Access {
        match self.auth {
            Some(a) => a.access(self.who, path),
            None => crate::auth::Access::ReadWrite,
        }
    }
}

/// `DAV:current-user-privilege-set` for an access level: the RFC 3744 privileges it grants
/// (bind and unbind are of collections).
pub fn privilege_set(access: crate::auth::Access, collection: bool) -> String {
    use crate::auth::Access;
    let mut names: Vec<&str> = Vec::new();
    if access >= Access::Read {
        names.extend(["read", "read-current-user-privilege-set"]);
    }
    if access >= Access::ReadWrite {
        names.extend(["write", "write-properties", "write-content", "unlock"]);
        if collection {
            names.extend(["bind", "unbind"]);
        }
    }
    let mut out = String::new();
    for n in names {
        out.push_str("<D:privilege><D:");
        out.push_str(n);
        out.push_str("/></D:privilege>");
    }
    out
}

/// Where a PUT's `Content-Type` is kept when it differs from what the file name suggests:
/// a property in davit's own namespace, invisible to clients, that travels with COPY and MOVE
/// like any dead property.
pub static STORED_CONTENT_TYPE: std::sync::LazyLock<QName> =
    std::sync::LazyLock::new(|| QName::new(INTERNAL_NS, "content-type"));

/// The namespace of properties davit keeps for itself; clients can neither see nor set them.
pub const INTERNAL_NS: &str = "urn:davit:internal";

/// The stored content type among a resource's dead properties, if any.
pub fn stored_type(dead: &[crate::props::DeadProp]) -> Option<&str> {
    dead.iter()
        .find(|d| d.name == *STORED_CONTENT_TYPE)
        .map(|d| d.xml.as_str())
}

/// The live properties davit computes.
pub static LIVE: &[LiveProp] = &[
    LiveProp {
        name: "resourcetype",
        in_allprop: true,
        value: |t| {
            Some(LiveValue::Xml(Cow::Borrowed(if t.meta.is_dir() {
                "<D:collection/>"
            } else {
                ""
            })))
        },
    },
    LiveProp {
        name: "creationdate",
        in_allprop: true,
        value: |t| t.meta.created.map(LiveValue::Rfc3339),
    },
    LiveProp {
        name: "getlastmodified",
        in_allprop: true,
        value: |t| Some(LiveValue::HttpDate(t.meta.modified.min(t.now))),
    },
    LiveProp {
        name: "getcontentlength",
        in_allprop: true,
        value: |t| (!t.meta.is_dir()).then_some(LiveValue::Number(t.meta.len)),
    },
    LiveProp {
        name: "getcontenttype",
        in_allprop: true,
        value: |t| Some(LiveValue::Text(Cow::Borrowed(content_type_of(t)))),
    },
    LiveProp {
        name: "getetag",
        in_allprop: true,
        value: |t| (!t.meta.is_dir()).then(|| LiveValue::Text(Cow::Borrowed(&t.meta.etag))),
    },
    LiveProp {
        name: "supportedlock",
        in_allprop: true,
        value: |_| Some(LiveValue::Xml(Cow::Borrowed(SUPPORTED_LOCK))),
    },
    LiveProp {
        name: "lockdiscovery",
        in_allprop: true,
        value: |t| {
            Some(LiveValue::Xml(if t.locks.is_empty() {
                Cow::Borrowed("")
            } else {
                Cow::Owned(lockdiscovery(t))
            }))
        },
    },
    // RFC 4331: costly to compute, so only returned when asked for by name.
    LiveProp {
        name: "quota-available-bytes",
        in_allprop: false,
        value: |t| t.quota.map(|q| LiveValue::Number(q.available)),
    },
    LiveProp {
        name: "quota-used-bytes",
        in_allprop: false,
        value: |t| t.quota.map(|q| LiveValue::Number(q.used)),
    },
    // RFC 6578 §4: the token a sync-collection of this collection would return now.
    LiveProp {
        name: "sync-token",
        in_allprop: false,
        value: |t| {
            t.sync_token
                .filter(|_| t.meta.is_dir())
                .map(|s| LiveValue::Text(Cow::Borrowed(s)))
        },
    },
    // RFC 3253 §3.1.5: collections offer sync-collection (RFC 6578 §3.1), files no report.
    LiveProp {
        name: "supported-report-set",
        in_allprop: false,
        value: |t| {
            Some(LiveValue::Xml(Cow::Borrowed(
                if t.meta.is_dir() && t.sync_token.is_some() {
                    SUPPORTED_REPORTS
                } else {
                    ""
                },
            )))
        },
    },
    // RFC 5842 §3.1: the same through every binding, new for a COPY, never reused.
    LiveProp {
        name: "resource-id",
        in_allprop: false,
        value: |t| {
            t.resource_id.map(|id| {
                let mut x = String::with_capacity(70);
                x.push_str("<D:href>urn:uuid:");
                x.push_str(
                    id.hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer()),
                );
                x.push_str("</D:href>");
                LiveValue::Xml(Cow::Owned(x))
            })
        },
    },
    // RFC 5397: the principal of whoever asks.
    LiveProp {
        name: "current-user-principal",
        in_allprop: false,
        value: |t| {
            t.viewer
                .map(|v| LiveValue::Xml(Cow::Borrowed(v.principal_xml.as_str())))
        },
    },
    // RFC 3744 §5.4: what whoever asks may do here, from the access rules.
    LiveProp {
        name: "current-user-privilege-set",
        in_allprop: false,
        value: |t| {
            t.viewer.map(|v| {
                LiveValue::Xml(Cow::Owned(privilege_set(v.access(t.path), t.meta.is_dir())))
            })
        },
    },
    // RFC 5842 §3.2: every (parent collection, segment) the resource is bound at.
    LiveProp {
        name: "parent-set",
        in_allprop: false,
        value: |t| {
            t.bindings
                .map(|index| LiveValue::Xml(Cow::Owned(parent_set(t, index))))
        },
    },
];

/// The `DAV:parent` elements of a resource: all its bindings where it has several, else the
/// one it was reached through (none for the root).
fn parent_set(t: &Target<'_>, index: &crate::storage::BindingIndex) -> String {
    use davit_proto::xml::escape_text;
    let mut out = String::new();
    let mut write = |parent: &DavPath, segment: &str| {
        out.push_str("<D:parent><D:href>");
        escape_text(&parent.href(true), &mut out);
        out.push_str("</D:href><D:segment>");
        escape_text(segment, &mut out);
        out.push_str("</D:segment></D:parent>");
    };
    match index.bound.get(&t.meta.identity) {
        Some(bindings) => {
            for b in bindings {
                write(&b.parent, &b.segment);
            }
        }
        None => {
            if let (Some(parent), Some(name)) = (t.path.parent(), t.path.name()) {
                write(&parent, name);
            }
        }
    }
    out
}

/// The value of `DAV:supported-report-set` on a collection.
const SUPPORTED_REPORTS: &str =
    "<D:supported-report><D:report><D:sync-collection/></D:report></D:supported-report>";

/// The `activelock` elements of every lock covering the target.
fn lockdiscovery(t: &Target<'_>) -> String {
    let now = t.now;
    let mut out = String::new();
    for lock in t.locks {
        // Roots above the target are collections; the target's own kind is known.
        let root_href = lock.root.href(&lock.root != t.path || t.meta.is_dir());
        write_activelock(
            &ActiveLock {
                scope: lock.scope,
                infinite_depth: lock.depth == LockDepth::Infinity,
                owner: lock.owner.as_deref(),
                seconds_left: lock.seconds_left(now),
                token: &lock.token,
                root_href: &root_href,
            },
            &mut out,
        );
    }
    out
}

/// `DAV:` names that clients may never set, beyond the computed ones above: properties that
/// belong to features (sync, principals) whose values the server owns.
const PROTECTED_EXTRA: &[&str] = &[
    "sync-token",
    "resource-id",
    "parent-set",
    "principal-URL",
    "supported-report-set",
];

/// The qualified names of [`LIVE`], in the same order, built once (listings write them for
/// every resource).
pub fn live_names() -> &'static [QName] {
    static NAMES: std::sync::OnceLock<Vec<QName>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| LIVE.iter().map(|p| QName::dav(p.name)).collect())
}

/// The live property with this name, if it is one.
pub fn find(name: &QName) -> Option<&'static LiveProp> {
    if name.ns != DAV {
        return None;
    }
    LIVE.iter().find(|p| p.name == name.local)
}

/// True when PROPPATCH must refuse to touch this property.
pub fn is_protected(name: &QName) -> bool {
    find(name).is_some()
        || name.ns == INTERNAL_NS
        || (name.ns == DAV && PROTECTED_EXTRA.contains(&name.local.as_str()))
}

/// Last-Modified may never be later than the response's Date (RFC 9110 §8.8.2.1).
pub fn clamp_to_now(t: SystemTime) -> SystemTime {
    t.min(SystemTime::now())
}

/// The media type of a resource: by file extension; collections answer GET with HTML.
pub fn content_type_of<'a>(t: &Target<'a>) -> &'a str {
    if t.meta.is_dir() {
        "text/html; charset=utf-8"
    } else if let Some(stored) = t.stored_type {
        stored
    } else {
        content_type_for(t.path.name().unwrap_or(""))
    }
}

/// The media type for a file name, from its extension.
pub fn content_type_for(name: &str) -> &'static str {
    const UNKNOWN: &str = "application/octet-stream";
    thread_local! {
        /// The last extension looked up and its type. The table lookup (a case-insensitive
        /// binary search) was 6 % of a listing's instructions, and the members of one
        /// collection mostly share an extension.
        static LAST: std::cell::RefCell<(String, &'static str)> =
            const { std::cell::RefCell::new((String::new(), UNKNOWN)) };
    }
    let Some((_, ext)) = name.rsplit_once('.') else {
        return UNKNOWN;
    };
    let lookup = || mime_guess::from_ext(ext).first_raw().unwrap_or(UNKNOWN);
    LAST.try_with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return lookup();
        };
        if last.0.is_empty() || !last.0.eq_ignore_ascii_case(ext) {
            let ctype = lookup();
            last.0.clear();
            last.0.push_str(ext);
            last.1 = ctype;
        }
        last.1
    })
    .unwrap_or_else(|_| lookup())
}

#[cfg(test)]
mod tests {
    use super::content_type_for;

    #[test]
    fn content_type_memo_never_answers_for_another_extension() {
        let names = [
            "a.txt", "b.TXT", "c.png", "d.txt", "noext", "e.", "f.png", "g.html", "h.tar.gz",
        ];
        for name in names.iter().chain(names.iter().rev()) {
            let direct = name
                .rsplit_once('.')
                .and_then(|(_, ext)| mime_guess::from_ext(ext).first_raw())
                .unwrap_or("application/octet-stream");
            assert_eq!(content_type_for(name), direct, "{name}");
        }
        assert_eq!(content_type_for("x.TXT"), "text/plain");
    }
}
