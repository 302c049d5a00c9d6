//! Server settings, with the defaults a public-facing server should have.

use davit_proto::xml::Limits;
use serde::Deserialize;
use std::path::PathBuf;

/// Everything the request handlers need to know from the configuration.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DavConfig {
    /// Largest XML request body accepted (PROPFIND, PROPPATCH, ...); larger ones get 413.
    pub max_xml_body: usize,
    /// Largest PUT body accepted, if any limit; larger ones get 413.
    pub max_upload: Option<u64>,
    /// Deepest element nesting accepted in an XML body.
    pub max_xml_depth: usize,
    /// Most elements accepted in an XML body.
    pub max_xml_elements: usize,
    /// Whether PROPFIND with Depth: infinity is served (otherwise 403 propfind-finite-depth).
    pub depth_infinity: bool,
    /// Most resources one Depth: infinity PROPFIND may list: a larger tree is refused with 403
    /// `propfind-finite-depth` (and a tree that grows past it mid-listing ends with a 507
    /// response for the request URI).
    pub depth_infinity_limit: u64,
    /// Lock timeout in seconds granted when the client asks for none.
    pub lock_timeout_default: u64,
    /// Longest lock timeout granted, in seconds (`Infinite` requests get this); unset means
    /// infinite locks are granted as asked.
    pub lock_timeout_max: Option<u64>,
    /// Most operations one batch POST may hold (more: 413).
    pub batch_max_ops: usize,
    /// Largest batch document accepted, in bytes (more: 413).
    pub batch_max_body: usize,
    /// A path that accepts POSTed batches relative to the root while nothing is mapped there
    /// (the address the batch examples of 207 tutorials post to); empty turns it off.
    pub batch_endpoint: String,
    /// Where the principal of each configured user is (RFC 5397 `current-user-principal`):
    /// `<principals_path><user>/`, answered by davit itself while authentication is on.
    pub principals_path: String,
    /// Most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers (slowloris defence).
    pub header_timeout_secs: u64,
    /// Seconds a request body may go without sending data before the request is dropped.
    pub body_idle_timeout_secs: u64,
    /// Slowest average a request body may come at, in bytes per second, once it has taken
    /// `body_idle_timeout_secs`; a slower one is dropped (408). 0 turns the check off.
    pub body_min_rate: u64,
    /// Seconds a client may go without reading any of a response before the connection is
    /// closed (slow-read defence).
    pub send_timeout_secs: u64,
    /// Largest request head (request line and headers) in bytes; larger ones get 431.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Byte limits on subtrees (`[[dav.quota]]`, RFC 4331); writes past one get 507.
    pub quota: Vec<crate::quota::QuotaConfig>,
    /// Seconds a quota root's measured usage is trusted before it is measured again (changes
    /// made by other programs in the served directory count from then on).
    pub quota_rescan_secs: u64,
    /// Most removals the sync-collection history (RFC 6578) keeps; beyond, the oldest are
    /// forgotten and tokens from before them answer 403 `DAV:valid-sync-token`.
    pub sync_max_tombstones: u64,
    /// Seconds an unfinished resumable upload is kept after it started (its bytes are in the
    /// state directory); then a sweep removes it.
    pub upload_expire_secs: u64,
    /// Most unfinished resumable uploads at once; past it, new ones get 507.
    pub max_unfinished_uploads: usize,
    /// Most unfinished resumable uploads one user (or, without `[auth]`, everyone together)
    /// may have at once; past it, their new ones get 507.
    pub max_unfinished_uploads_per_user: usize,
    /// Most bytes the unfinished resumable uploads may hold together in the state directory,
    /// if any limit; an append past it stops with 507 (keeping what it stored before).
    pub max_staged_upload_bytes: Option<u64>,
    /// Most bytes the cache of rendered listings and small files may hold; 0 turns it off.
    pub cache_bytes: u64,
    /// Largest file whose bytes the cache keeps.
    pub cache_file_bytes: u64,
    /// Most directories watched for changes by other programs (inotify); resources in further
    /// directories are not cached.
    pub cache_watches: usize,
    /// Microseconds a worker keeps polling for the next request after its last one before it
    /// sleeps (the latency of a connection's next request against the CPU spent waiting for
    /// it); 0 turns it off.
    pub busy_poll_us: u64,
}

/// The longest busy-polling window accepted (one second).
pub const BUSY_POLL_MAX_US: u64 = 1_000_000;

impl Default for DavConfig {
    fn default() -> Self {
        DavConfig {
            max_xml_body: 1024 * 1024,
            max_upload: None,
            max_xml_depth: 64,
            max_xml_elements: 50_000,
            depth_infinity: true,
            depth_infinity_limit: 1_000_000,
            lock_timeout_default: 3600,
            lock_timeout_max: Some(7 * 24 * 3600),
            batch_max_ops: 10_000,
            batch_max_body: 64 * 1024 * 1024,
            batch_endpoint: "/batch-operation".into(),
            principals_path: "/principals/".into(),
            max_connections: 1024,
            header_timeout_secs: 30,
            body_idle_timeout_secs: 60,
            body_min_rate: 500,
            send_timeout_secs: 60,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            quota: Vec::new(),
            quota_rescan_secs: 60,
            sync_max_tombstones: 100_000,
            upload_expire_secs: 24 * 3600,
            max_unfinished_uploads: 1000,
            max_unfinished_uploads_per_user: 100,
            max_staged_upload_bytes: None,
            cache_bytes: 8 << 20,
            cache_file_bytes: 64 << 10,
            cache_watches: 8192,
            busy_poll_us: 200,
        }
    }
}

impl DavConfig {
    /// The batch endpoint's path, if there is one, or why it is not a path.
    pub fn batch_endpoint_path(&self) -> Result<Option<davit_proto::href::DavPath>, String> {
        if self.batch_endpoint.is_empty() {
            return Ok(None);
        }
        match davit_proto::href::DavPath::parse(&self.batch_endpoint) {
            Ok(p) if !p.is_root() => Ok(Some(p)),
            _ => Err(format!(
                "dav.batch_endpoint: {:?} is not a path below the root",
                self.batch_endpoint
            )),
        }
    }

    /// The collection holding the users' principals, or why it is not one.
    pub fn principals_collection(&self) -> Result<davit_proto::href::DavPath, String> {
        match davit_proto::href::DavPath::parse(&self.principals_path) {
            Ok(p) if !p.is_root() && self.principals_path.ends_with('/') => Ok(p),
            _ => Err(format!(
                "dav.principals_path: {:?} is not a collection path below the root (like \"/principals/\")",
                self.principals_path
            )),
        }
    }

    /// The `[[dav.quota]]` limits with their paths parsed, or what is wrong with one.
    pub fn quota_limits(&self) -> Result<Vec<(davit_proto::href::DavPath, u64)>, String> {
        self.quota
            .iter()
            .map(|q| {
                davit_proto::href::DavPath::parse(&q.path)
                    .map(|p| (p, q.bytes))
                    .map_err(|_| format!("dav.quota: path {:?} is not a path", q.path))
            })
            .collect()
    }

    /// The XML parser limits.
    pub fn xml_limits(&self) -> Limits {
        Limits {
            max_depth: self.max_xml_depth,
            max_elements: self.max_xml_elements,
        }
    }
}

/// Where davit keeps its own files when the configuration does not say: inside the served
/// root, hidden from clients.
pub fn default_state_dir(root: &std::path::Path) -> PathBuf {
    root.join(".davit")
}
