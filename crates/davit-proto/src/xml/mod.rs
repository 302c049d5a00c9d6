//! The DAV XML model: a namespace-resolved element tree read from request bodies, the request
//! documents built on it (`propfind`, `propertyupdate`, `lockinfo`), and the streaming `multistatus` writer.
//!
//! Parsing goes through quick-xml's namespaced reader, so `DAV:` may come with any prefix or as
//! the default namespace. DTDs and entity declarations are refused outright: a request body
//! never needs them, and refusing them removes the whole class of entity-expansion bombs.

mod bind;
mod lock;
mod ms_reader;
mod request;
mod search;
mod sync;
mod tree;
mod write;

pub use bind::{parse_bind, BindMethod, BindRequest};
pub use lock::{parse_lockinfo, write_activelock, ActiveLock, LockInfo, LockScope, SUPPORTED_LOCK};
pub use ms_reader::{LiveProps, MultistatusReader, PropStat, ReaderLimits, Response};
pub use request::{
    parse_mkcol, parse_propertyupdate, parse_propfind, patch_ops_from, propertyupdate_xml,
    propfind_from, PatchOp, PropFind,
};
pub use search::{parse_search, Condition, Search, SearchError};
pub use sync::{parse_report, Report, SyncCollection, SyncLevel};
pub use tree::{parse_document, Attribute, Element, Limits, Node, QName, XmlError};
pub use write::{error_body, escape_attr, escape_text, MultistatusWriter, XML_CONTENT_TYPE};

/// The WebDAV namespace.
pub const DAV: &str = "DAV:";
/// The `xml:` namespace, bound to the `xml` prefix in every document.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
