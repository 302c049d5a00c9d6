//! POST of a batch document to a collection: the document is parsed once, and each operation
//! runs on the typed step its HTTP method runs too (so it gets exactly the validation,
//! conditional and lock checks of the equivalent single request); the outcomes are written
//! into one 207 as they complete. The format is in `docs/batch.md`.

use super::copymove::Transfer;
use super::put::{Put, PutInput};
use super::{get::internal, response, Dav, Done, ReqBody, Target, ALLOW_FILE};
use crate::body::{self, Body};
use crate::error::{DavError, DavResult, Explained};
use crate::journal::{drop_stashes, roll_back, Journal, JournaledStorage};
use crate::locks::LockStore;
use crate::props::PropStore;
use crate::storage::{Storage, TxEnd};
use bytes::Bytes;
use davit_proto::batch::{
    clark, parse_batch_json, parse_batch_xml, Batch, BatchError, BatchMode, BatchOp, OpError,
    OpKind,
};
use davit_proto::headers::Depth;
use davit_proto::href::{parse_destination, DavPath};
use davit_proto::status::parse_status_line;
use davit_proto::xml::{
    parse_document, Element, Limits, MultistatusWriter, Node, XML_CONTENT_TYPE,
};
use http::request::Parts;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What one operation came to.
#[derive(Debug, Clone)]
pub(crate) struct OpOutcome {
    href: String,
    status: u16,
    error: Option<String>,
    description: Option<String>,
    location: Option<String>,
    /// The `DAV:propstat` elements of PROPFIND and PROPPATCH, as written in a 207.
    propstats: Option<String>,
}

impl OpOutcome {
    fn new(href: String, status: u16) -> OpOutcome {
        OpOutcome {
            href,
            status,
            error: None,
            description: None,
            location: None,
            propstats: None,
        }
    }

    fn failed(&self) -> bool {
        self.status >= 400
    }
}

/// The two output forms, written one outcome at a time.
enum Output {
    Xml(MultistatusWriter),
    Json { buf: String, first: bool },
}

impl Output {
    fn new(json: bool) -> Output {
        if json {
            Output::Json {
                buf: String::from("{\"responses\":[\n"),
                first: true,
            }
        } else {
            Output::Xml(MultistatusWriter::new())
        }
    }

    fn write(&mut self, o: &OpOutcome) {
        match self {
            Output::Xml(w) => {
                w.start_response(&o.href);
                match &o.propstats {
                    Some(xml) => w.raw(xml),
                    None => w.status(o.status),
                }
                if let Some(e) = &o.error {
                    w.error(e);
                }
                w.end_response_with(o.description.as_deref(), o.location.as_deref());
            }
            Output::Json { buf, first } => {
                if !*first {
                    buf.push_str(",\n");
                }
                *first = false;
                buf.push_str(&json_outcome(o).to_string());
            }
        }
    }

    /// Bytes written and not yet taken.
    fn pending(&self) -> usize {
        match self {
            Output::Xml(w) => w.pending(),
            Output::Json { buf, .. } => buf.len(),
        }
    }

    fn take(&mut self) -> String {
        match self {
            Output::Xml(w) => w.take(),
            Output::Json { buf, .. } => std::mem::take(buf),
        }
    }

    fn finish(self) -> String {
        match self {
            Output::Xml(w) => w.finish(),
            Output::Json { mut buf, .. } => {
                buf.push_str("\n]}\n");
                buf
            }
        }
    }
}

fn json_outcome(o: &OpOutcome) -> serde_json::Value {
    let mut v = serde_json::json!({ "href": o.href, "status": o.status });
    if let Some(e) = &o.error {
        v["error"] = e.clone().into();
    }
    if let Some(d) = &o.description {
        v["description"] = d.clone().into();
    }
    if let Some(l) = &o.location {
        v["location"] = l.clone().into();
    }
    if let Some(xml) = &o.propstats {
        // The propstats were written for the XML form; JSON reads them back (only here).
        let doc = format!("<D:propstats xmlns:D=\"DAV:\">{xml}</D:propstats>");
        let groups: Vec<serde_json::Value> = parse_document(doc.as_bytes(), &Limits::default())
            .map(|root| {
                root.elements()
                    .filter(|e| e.name.is_dav("propstat"))
                    .map(|ps| {
                        let status = ps
                            .elements()
                            .find(|e| e.name.is_dav("status"))
                            .and_then(|s| parse_status_line(&s.text()))
                            .unwrap_or(500);
                        let mut props = serde_json::Map::new();
                        for prop in ps.elements().filter(|e| e.name.is_dav("prop")) {
                            for p in prop.elements() {
                                props.insert(clark(&p.name), json_value(p));
                            }
                        }
                        serde_json::json!({ "status": status, "props": props })
                    })
                    .collect()
            })
            .unwrap_or_default();
        v["propstat"] = groups.into();
    }
    v
}

/// A property value in JSON: its text when it holds only text, else its XML.
fn json_value(p: &Element) -> serde_json::Value {
    if p.children.iter().all(|c| matches!(c, Node::Text(_))) {
        p.text().into()
    } else {
        p.to_fragment().into()
    }
}

/// Joins an operation's href to the collection the batch was posted to.
fn resolve(base: &str, href: &str) -> String {
    if href.starts_with('/') {
        href.to_owned()
    } else {
        format!("{base}{href}")
    }
}

const NOT_A_BATCH: &str =
    "a batch is an XML document in urn:davit:batch or a JSON object with \"operations\"";

/// How a batch document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchFormat {
    Xml,
    Json,
}

impl BatchFormat {
    /// The format of a document sent without a usable Content-Type: XML that declares the
    /// batch namespace, or a JSON object that names `operations`; anything else is not a batch.
    fn sniff(body: &[u8]) -> Option<BatchFormat> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
        let has = |needle: &[u8]| memchr::memmem::find(body, needle).is_some();
        match body[start] {
            b'<' if has(davit_proto::batch::BATCH_NS.as_bytes()) => Some(BatchFormat::Xml),
            b'{' if has(b"\"operations\"") => Some(BatchFormat::Json),
            _ => None,
        }
    }
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// True when `path` is the configured batch endpoint.
    fn is_batch_endpoint(&self, path: &DavPath) -> bool {
        self.config
            .batch_endpoint_path()
            .ok()
            .flatten()
            .is_some_and(|p| &p == path)
    }

    pub(crate) async fn post<B: ReqBody>(
        &self,
        parts: &Parts,
        target: &Target,
        body: B,
    ) -> DavResult<Response<Body>> {
        // A mapped resource wins; the batch endpoint path stands for the root otherwise.
        let base_path = match self.meta(target).await? {
            Some(meta) if meta.is_dir() => target.path.clone(),
            Some(_) => return Err(DavError::MethodNotAllowed(ALLOW_FILE)),
            None if self.is_batch_endpoint(&target.path) => DavPath::root(),
            None => return Err(DavError::NotFound),
        };
        let ctype = super::header_str(parts, "content-type")?.unwrap_or("");
        let mime = ctype
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let declared = match mime.as_str() {
            "application/json" => Some(BatchFormat::Json),
            "application/xml" | "text/xml" => Some(BatchFormat::Xml),
            // What `curl -d`, PHP's CURLOPT_POSTFIELDS and Python's `requests` send with a
            // file's contents: the document itself says what it is.
            "" | "application/x-www-form-urlencoded" => None,
            _ => return Err(DavError::UnsupportedMediaType(NOT_A_BATCH)),
        };
        // Held until the batch is done: its document and operations stay in memory that long.
        let slot = {
            let _waiting = crate::metrics::METRICS.waiting_for_batch_slot();
            self.batch_slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| DavError::Io(std::io::Error::other(e)))?
        };
        let body = self
            .read_limited(parts, body, self.config.batch_max_body)
            .await?;
        let format = match declared {
            Some(f) => f,
            None => BatchFormat::sniff(&body).ok_or(DavError::UnsupportedMediaType(NOT_A_BATCH))?,
        };
        let max = self.config.batch_max_ops;
        let batch = match format {
            BatchFormat::Json => parse_batch_json(&body, max),
            BatchFormat::Xml => parse_batch_xml(&body, &self.config.xml_limits(), max),
        }
        .map_err(|e| match e {
            BatchError::TooMany(_) | BatchError::TooManyValues(_) => DavError::TooLarge,
            // Over the XML limits: 413, as for any other body.
            BatchError::Xml(e) => e.into(),
            other => DavError::BadRequest(other.to_string()),
        })?;
        let json_out =
            super::header_str(parts, "accept")?.is_some_and(|a| a.contains("application/json"));
        let base = base_path.href(true);

        if batch.mode == BatchMode::Atomic {
            // Its own task: a client that hangs up must not cancel a batch half-way (it
            // would stay unsettled until the next restart).
            let dav = self.clone();
            let (outer, at) = (parts.clone(), base.clone());
            // One write-gate scope for the whole batch (see `WriteGate::scope`).
            let run = async move {
                let _slot = slot;
                dav.run_atomic(&outer, &at, &batch).await
            };
            let outcomes = tokio::spawn(super::gate::WriteGate::scope(run))
                .await
                .map_err(|e| DavError::Io(std::io::Error::other(e)))??;
            let mut out = Output::new(json_out);
            for o in &outcomes {
                out.write(o);
            }
            return respond(json_out, body::full(out.finish()));
        }

        let (tx, stream) = body::channel(4);
        let dav = self.clone();
        let outer = parts.clone();
        let batch = Arc::new(batch);
        let mut staged = Some(self.stage_puts(&batch, &base));
        tokio::spawn(async move {
            let _slot = slot;
            let mut out = Output::new(json_out);
            let mut stopped = false;
            let mut last_send = std::time::Instant::now();
            for (i, op) in batch.ops.iter().enumerate() {
                let mine = staged.as_mut().and_then(|s| s.take(i));
                let outcome = if stopped {
                    let mut o = OpOutcome::new(op_href(&base, op), 424);
                    o.description = Some("not attempted: an earlier operation failed".into());
                    o
                } else {
                    dav.run_one(&outer, &base, op, mine).await
                };
                if outcome.failed() && batch.mode == BatchMode::StopOnError {
                    stopped = true;
                    // Nothing more runs: the stager stops, and what it staged is dropped.
                    staged = None;
                }
                out.write(&outcome);
                let next_is_slow = batch.ops.get(i + 1).is_some_and(|op| !is_quick(op));
                if next_is_slow || out.pending() >= SEND_AT || last_send.elapsed() >= SEND_EVERY {
                    if tx.send(Ok(Bytes::from(out.take()))).await.is_err() {
                        return; // the client went away
                    }
                    last_send = std::time::Instant::now();
                }
            }
            let _ = tx.send(Ok(Bytes::from(out.finish()))).await;
        });
        respond(json_out, stream)
    }

    /// Stages the bodies of the batch's small PUTs of new files on a pool thread, in order
    /// and at most [`STAGE_AHEAD`] ahead of the operations, while the operations run on this
    /// one (measured: writing a new file's body is about a third of a small PUT's time;
    /// docs/benchmarks.md, session 16). What a backend stages is invisible until its
    /// operation commits it, and is dropped if the operation does not.
    fn stage_puts(&self, batch: &Arc<Batch>, base: &str) -> Stager<S> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Credits: how many more bodies may be staged. They come back a handful at a time,
        // so that the stager is woken once per handful, not once per operation.
        let (credit_tx, credits) = std::sync::mpsc::channel::<usize>();
        // How many operations have looked for their staged body: a body for one of them
        // would come too late (it writes its own), so the stager skips ahead past them.
        let reached = Arc::new(AtomicUsize::new(0));
        let ops_reached = Arc::clone(&reached);
        let storage = self.storage.clone();
        let batch = Arc::clone(batch);
        let base = base.to_owned();
        let wanted = batch.ops.iter().any(|op| {
            matches!(
                op,
                Ok(BatchOp {
                    kind: OpKind::Put { .. },
                    ..
                })
            )
        });
        if wanted {
            tokio::task::spawn_blocking(move || {
                let mut left = STAGE_AHEAD;
                // The collection staged in last: a batch's PUTs mostly share one.
                let mut dir: Option<(DavPath, S::StagingDir)> = None;
                for (i, op) in batch.ops.iter().enumerate() {
                    let Ok(BatchOp {
                        href,
                        kind: OpKind::Put { content, .. },
                        ..
                    }) = op
                    else {
                        continue;
                    };
                    if content.len() > SMALL_PUT {
                        continue;
                    }
                    if i < ops_reached.load(Ordering::Relaxed) {
                        continue;
                    }
                    let Some(path) = staging_path(&base, href) else {
                        continue;
                    };
                    while left == 0 {
                        match credits.recv() {
                            Ok(n) => left = n,
                            Err(_) => return, // the batch ended (or the client went away)
                        }
                    }
                    let Some(parent) = path.parent() else {
                        continue;
                    };
                    if dir.as_ref().is_none_or(|(at, _)| *at != parent) {
                        dir = storage.staging_dir(&parent).map(|d| (parent, d));
                    }
                    let Some((_, in_dir)) = &dir else {
                        continue;
                    };
                    let Some(upload) = storage.stage(in_dir, &path, content) else {
                        continue;
                    };
                    left -= 1;
                    if tx.send((i, StagedPut { path, upload })).is_err() {
                        return;
                    }
                }
            });
        }
        Stager {
            ready: rx,
            next: None,
            credits: credit_tx,
            used: 0,
            reached,
        }
    }

    /// Runs one operation (or answers a malformed one with 400).
    pub(crate) async fn run_one(
        &self,
        outer: &Parts,
        base: &str,
        op: &Result<BatchOp, OpError>,
        staged: Option<StagedPut<S>>,
    ) -> OpOutcome {
        match op {
            Err(e) => {
                let mut o = OpOutcome::new(op_href(base, op), 400);
                o.description = Some(e.reason.clone());
                o
            }
            Ok(op) => {
                let href = resolve(base, &op.href);
                match self.run_op(outer, base, &href, op, staged).await {
                    Ok(o) => o,
                    Err(e) => failed(href, &e),
                }
            }
        }
    }

    /// Runs one operation through the same typed steps as its HTTP method, with the same
    /// authorization, If header, conditional and lock checks; nothing is encoded as an HTTP
    /// request or read back from a response.
    async fn run_op(
        &self,
        outer: &Parts,
        base: &str,
        href: &str,
        op: &BatchOp,
        staged: Option<StagedPut<S>>,
    ) -> DavResult<OpOutcome> {
        let if_header = op
            .if_header
            .as_deref()
            .or_else(|| outer.headers.get("if").and_then(|v| v.to_str().ok()));
        let (ctx, target) = op_context(outer, op.kind.method(), href, if_header)?;
        if self.principal_resource(&target).is_some() {
            return Err(DavError::Forbidden(
                "a batch does not act on principal resources",
            ));
        }
        self.authorize(&ctx, &target.path, crate::auth::Access::Read, false)?;
        // The writes an operation registers end with it, or with the atomic batch.
        // A body staged for another path than the operation's own is not used.
        let staged = staged.filter(|s| s.path == target.path).map(|s| s.upload);
        super::gate::WriteGate::scope(self.apply_op(&ctx, &target, base, href, op, staged)).await
    }

    async fn apply_op(
        &self,
        ctx: &Parts,
        target: &Target,
        base: &str,
        href: &str,
        op: &BatchOp,
        staged: Option<S::Upload>,
    ) -> DavResult<OpOutcome> {
        let outcome = |status: u16| OpOutcome::new(href.to_owned(), status);
        match &op.kind {
            OpKind::Put {
                content,
                content_type,
            } => {
                let input = PutInput {
                    declared: Some(content.len() as u64),
                    content_type: content_type.clone(),
                    ..PutInput::default()
                };
                let body = Full::new(Bytes::from(content.clone()));
                match self.store(ctx, target, &input, body, staged).await? {
                    Put::Stored { created: true, .. } => {
                        let mut o = outcome(201);
                        o.location = Some(href.to_owned());
                        Ok(o)
                    }
                    Put::Stored { created: false, .. } => Ok(outcome(204)),
                    Put::Upload(_) => Err(DavError::Io(std::io::Error::other(
                        "a batch's PUT started a resumable upload",
                    ))),
                }
            }
            OpKind::Delete => {
                let done = self.remove(ctx, target, None).await?;
                Ok(self.done_outcome(href, done, None).await)
            }
            OpKind::Mkcol { parents } => {
                if *parents {
                    if let Some(failed) = self.make_parents(ctx, href).await? {
                        return Ok(failed);
                    }
                }
                let done = self
                    .make_collection(ctx, target, Vec::new())
                    .await?
                    .map_err(|_| {
                        DavError::Io(std::io::Error::other("MKCOL without properties refused"))
                    })?;
                Ok(self.done_outcome(href, done, Some(href)).await)
            }
            OpKind::Copy {
                destination,
                overwrite,
                ..
            }
            | OpKind::Move {
                destination,
                overwrite,
            } => {
                let (depth, is_move) = match &op.kind {
                    OpKind::Copy { depth, .. } => (*depth, false),
                    _ => (Depth::Infinity, true),
                };
                let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
                let dest_href = resolve(base, destination);
                let input = Transfer {
                    dest: parse_destination(&dest_href, super::host_of(ctx).as_deref())?,
                    depth,
                    overwrite: *overwrite,
                    is_move,
                };
                let done = self.transfer(ctx, target, meta, input).await?;
                Ok(self.done_outcome(href, done, Some(&dest_href)).await)
            }
            OpKind::PropPatch(ops) => {
                let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
                let patched = self.patch_props(ctx, target, meta, ops.clone()).await?;
                // PROPPATCH fails as a whole when any property failed.
                let status = patched
                    .outcomes
                    .iter()
                    .map(|(_, s, _)| *s)
                    .find(|s| *s != 200)
                    .unwrap_or(200);
                let mut w = MultistatusWriter::new();
                w.take();
                patched.write_propstats(&mut w);
                let mut o = outcome(status);
                o.propstats = Some(w.take());
                Ok(o)
            }
            OpKind::PropFind(request) => {
                let meta = self.meta(target).await?.ok_or(DavError::NotFound)?;
                // For PROPFIND a 404 group is an ordinary answer.
                let mut o = outcome(200);
                o.propstats = Some(self.propfind_propstats(ctx, target, meta, request).await?);
                Ok(o)
            }
        }
    }

    /// The outcome of a change that came to `done`; `location` is where a success put
    /// something.
    async fn done_outcome(&self, href: &str, done: Done, location: Option<&str>) -> OpOutcome {
        let mut o = OpOutcome::new(href.to_owned(), 204);
        match done {
            Done::Created => o.status = 201,
            Done::NoContent => {}
            Done::Partial(failures) => {
                // A tree operation that failed on some members: the first failure's status,
                // and every failed member named.
                let failed = self.failure_statuses(failures).await;
                o.status = failed.first().map_or(500, |f| f.1);
                o.description = Some(format!(
                    "failed on members: {}",
                    failed
                        .iter()
                        .map(|(h, s)| format!("{h} ({s})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                return o;
            }
        }
        o.location = location.map(str::to_owned);
        o
    }

    /// Creates the missing ancestors of `href` (below the root) one at a time; returns the
    /// outcome of the first that failed.
    async fn make_parents(&self, ctx: &Parts, href: &str) -> DavResult<Option<OpOutcome>> {
        let path = DavPath::parse(href)?;
        let mut ancestors: Vec<DavPath> =
            std::iter::successors(path.parent(), |p| p.parent()).collect();
        ancestors.reverse();
        for dir in ancestors.into_iter().filter(|d| !d.is_root()) {
            if self.meta_at(&dir).await?.is_some() {
                continue;
            }
            let target = Target {
                path: dir,
                slash: true,
            };
            let made = self.make_collection(ctx, &target, Vec::new()).await;
            match made {
                Ok(Ok(Done::Created)) => {}
                Ok(Ok(done)) => return Ok(Some(self.done_outcome(href, done, None).await)),
                Ok(Err(_)) => {
                    return Err(DavError::Io(std::io::Error::other(
                        "MKCOL without properties refused",
                    )))
                }
                Err(e) => return Ok(Some(failed(href.to_owned(), &e))),
            }
        }
        Ok(None)
    }
}

/// The context an operation runs in, and its target: the batch's principal, the Host its
/// URLs name, and the operation's If header (the batch's when it gives none). Built in
/// memory; the operation's own inputs stay typed.
/// Outcomes go to the client in chunks of about this size: one write per outcome woke the
/// client for every 150 bytes, and those wake-ups took a third of a batch of small PUTs'
/// time (docs/benchmarks.md, session 16).
const SEND_AT: usize = 16 * 1024;
/// ... and at least this often while operations keep completing, so a long batch still shows
/// its progress.
const SEND_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// How many staged bodies may wait for their operations. With 32 or 128, the operations
/// often caught up with the stager and wrote their own bodies (measured: a third to all of
/// them used; with 256 all, docs/benchmarks.md, session 17).
const STAGE_AHEAD: usize = 256;
/// The largest PUT body counted as small: staged ahead, and written without sending the
/// outcomes before it first.
const SMALL_PUT: usize = 64 * 1024;

/// A body written ahead for the PUT at `path` ([`Storage::stage`]).
pub(crate) struct StagedPut<S: Storage> {
    path: DavPath,
    upload: S::Upload,
}

/// The operations' end of [`Dav::stage_puts`].
struct Stager<S: Storage> {
    ready: tokio::sync::mpsc::UnboundedReceiver<(usize, StagedPut<S>)>,
    /// Received, for a later operation.
    next: Option<(usize, StagedPut<S>)>,
    credits: std::sync::mpsc::Sender<usize>,
    /// Staged bodies taken or passed over since credits were last given back.
    used: usize,
    /// How many operations have looked for their staged body, for the stager to skip past.
    reached: Arc<AtomicUsize>,
}

impl<S: Storage> Stager<S> {
    /// What is staged for operation `i`, if it is ready now (never waits for it: an
    /// operation whose body is not staged yet writes it itself).
    fn take(&mut self, i: usize) -> Option<StagedPut<S>> {
        self.reached.store(i + 1, Ordering::Relaxed);
        while self.next.as_ref().is_none_or(|(at, _)| *at < i) {
            match self.ready.try_recv() {
                Ok(next) => {
                    if self.next.replace(next).is_some() {
                        self.used_one();
                    }
                }
                Err(_) => break,
            }
        }
        match self.next.take() {
            Some((at, s)) if at == i => {
                self.used_one();
                Some(s)
            }
            Some((at, _)) if at < i => {
                self.used_one();
                None
            }
            other => {
                self.next = other;
                None
            }
        }
    }

    fn used_one(&mut self) {
        self.used += 1;
        if self.used == STAGE_AHEAD / 2 {
            let _ = self.credits.send(self.used);
            self.used = 0;
        }
    }
}

/// The path a PUT operation's href names, as `parse_target` will find it: only plain paths
/// (no scheme, query or fragment) are staged.
fn staging_path(base: &str, href: &str) -> Option<DavPath> {
    let href = resolve(base, href);
    if !href.starts_with('/') || href.contains(['?', '#']) {
        return None;
    }
    DavPath::parse(&href).ok()
}

/// Whether an operation takes microseconds, so the outcomes before it can wait for it in the
/// buffer. Before any other (a tree to copy, move, delete or list, a large body), what is
/// buffered is sent first.
fn is_quick(op: &Result<BatchOp, OpError>) -> bool {
    match op {
        Ok(op) => match &op.kind {
            OpKind::Put { content, .. } => content.len() <= SMALL_PUT,
            OpKind::Mkcol { .. } | OpKind::PropPatch(_) => true,
            OpKind::Delete | OpKind::Copy { .. } | OpKind::Move { .. } | OpKind::PropFind(_) => {
                false
            }
        },
        Err(_) => true,
    }
}

fn op_context(
    outer: &Parts,
    method: &str,
    href: &str,
    if_header: Option<&str>,
) -> DavResult<(Parts, Target)> {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).map_err(|_| DavError::NotImplemented)?)
        .uri(href);
    if let Some(host) = outer.headers.get(header::HOST) {
        b = b.header(header::HOST, host);
    }
    if let Some(i) = if_header {
        b = b.header("if", i);
    }
    let (mut parts, ()) = b
        .body(())
        .map_err(|e| DavError::BadRequest(format!("invalid operation: {e}")))?
        .into_parts();
    if let Some(who) = outer.extensions.get::<crate::auth::Principal>() {
        parts.extensions.insert(who.clone());
    }
    let target = super::parse_target(&parts)?;
    Ok((parts, target))
}

/// The outcome of an operation that failed with `e`: its status, and its condition or
/// reason, as its HTTP answer would give them.
fn failed(href: String, e: &DavError) -> OpOutcome {
    e.record();
    let mut o = OpOutcome::new(href, e.status().as_u16());
    match e.explain() {
        Explained::Condition(c) => o.error = Some(c.to_owned()),
        Explained::Reason(r) => o.description = Some(r),
    }
    o
}

fn op_href(base: &str, op: &Result<BatchOp, OpError>) -> String {
    match op {
        Ok(op) => resolve(base, &op.href),
        Err(e) => e
            .href
            .as_deref()
            .map_or_else(|| base.to_owned(), |h| resolve(base, h)),
    }
}

fn respond(json: bool, body: Body) -> DavResult<Response<Body>> {
    response(StatusCode::MULTI_STATUS)
        .header(
            header::CONTENT_TYPE,
            if json {
                "application/json"
            } else {
                XML_CONTENT_TYPE
            },
        )
        .body(body)
        .map_err(internal)
}

impl<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone> Dav<S, P, L> {
    /// All or nothing: the operations run in order through journaled storage and one property
    /// transaction; the first failure rolls everything back, and the others answer 424.
    async fn run_atomic(
        &self,
        parts: &Parts,
        base: &str,
        batch: &Batch,
    ) -> DavResult<Vec<OpOutcome>> {
        if batch.ops.iter().any(Result::is_err) {
            // A malformed operation fails the batch before anything runs.
            let mut outcomes = Vec::with_capacity(batch.ops.len());
            for op in &batch.ops {
                outcomes.push(match op {
                    Err(_) => self.run_one(parts, base, op, None).await,
                    Ok(_) => {
                        not_attempted(op_href(base, op), "the batch holds a malformed operation")
                    }
                });
            }
            return Ok(outcomes);
        }
        let _one_at_a_time = self.batch_lock.lock().await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let tx = self.props.begin().await?;
        // A backend whose content and properties share one database runs the batch in one
        // transaction of it; the others under the journal.
        if let Some(joined) = tx.shared().and_then(|shared| self.storage.join(&shared)) {
            let outcomes = {
                let view = self.view(joined.clone(), tx.clone());
                run_until_failure(&view, parts, base, batch).await
            };
            let failed = outcomes.iter().position(OpOutcome::failed);
            let end = match failed {
                None => match self.props.commit(tx, &id).await {
                    Ok(()) => TxEnd::Committed,
                    Err(e) => {
                        joined.settle(TxEnd::RolledBack).await;
                        return Err(e.into());
                    }
                },
                Some(_) => {
                    self.props.rollback(tx).await?;
                    TxEnd::RolledBack
                }
            };
            joined.settle(end).await;
            if end == TxEnd::RolledBack {
                self.quotas.changed_everywhere();
            }
            return Ok(settle_outcomes(outcomes, failed, base, batch));
        }
        let Some(dir) = self.journal_dir.clone() else {
            self.props.rollback(tx).await?;
            return Err(DavError::Forbidden(
                "atomic batches are not enabled on this server",
            ));
        };
        let journal = match Journal::create(&dir, &id) {
            Ok(j) => Arc::new(j),
            Err(e) => {
                self.props.rollback(tx).await?;
                return Err(e.into());
            }
        };
        let outcomes = {
            let journaled = self.view(
                JournaledStorage::new(self.storage.clone(), journal.clone()),
                tx.clone(),
            );
            run_until_failure(&journaled, parts, base, batch).await
        };
        let failed = outcomes.iter().position(OpOutcome::failed);
        let entries = journal.entries();
        let committed = match failed {
            None => match self.props.commit(tx, journal.id()).await {
                Ok(()) => true,
                Err(e) => {
                    roll_back(&self.storage, &entries).await;
                    journal.remove()?;
                    return Err(e.into());
                }
            },
            Some(_) => {
                self.props.rollback(tx).await?;
                false
            }
        };
        if committed {
            drop_stashes(&self.storage, &entries).await;
        } else {
            roll_back(&self.storage, &entries).await;
            // What the undone operations added or removed is not worth computing.
            self.quotas.changed_everywhere();
        }
        journal.remove()?;
        self.props.forget_batch(journal.id()).await?;
        Ok(settle_outcomes(outcomes, failed, base, batch))
    }

    /// This server over other storage and properties (an atomic batch's transactional views;
    /// no journal, as a batch does not nest).
    pub(super) fn view<S2: Storage + Clone, P2: PropStore + Clone>(
        &self,
        storage: S2,
        props: P2,
    ) -> Dav<S2, P2, L> {
        Dav {
            storage,
            props,
            locks: self.locks.clone(),
            config: self.config.clone(),
            journal_dir: None,
            batch_lock: self.batch_lock.clone(),
            auth: self.auth.clone(),
            connection_slots: self.connection_slots.clone(),
            write_gate: self.write_gate.clone(),
            batch_slots: self.batch_slots.clone(),
            quotas: self.quotas.clone(),
            // Writes of a batch rolled back later are found by the next sync's walk.
            changes: self.changes.clone(),
            // A batch's PUT writes its target; it never starts a resumable upload.
            uploads: None,
            // What a batch reads before it commits is nobody else's to see.
            cache: None,
        }
    }
}

/// Runs the operations in order until one fails; the outcomes so far.
async fn run_until_failure<S: Storage + Clone, P: PropStore + Clone, L: LockStore + Clone>(
    dav: &Dav<S, P, L>,
    parts: &Parts,
    base: &str,
    batch: &Batch,
) -> Vec<OpOutcome> {
    let mut outcomes = Vec::with_capacity(batch.ops.len());
    for op in &batch.ops {
        let o = dav.run_one(parts, base, op, None).await;
        let bad = o.failed();
        outcomes.push(o);
        if bad {
            break;
        }
    }
    outcomes
}

/// The answers of an atomic batch: as they are when it committed; when operation `failed`
/// failed, its own answer and 424 for every other.
fn settle_outcomes(
    mut outcomes: Vec<OpOutcome>,
    failed: Option<usize>,
    base: &str,
    batch: &Batch,
) -> Vec<OpOutcome> {
    if let Some(i) = failed {
        let why = format!("rolled back: operation {} failed", i + 1);
        for (j, o) in outcomes.iter_mut().enumerate() {
            if j != i {
                *o = not_attempted(std::mem::take(&mut o.href), &why);
            }
        }
        for op in &batch.ops[i + 1..] {
            outcomes.push(not_attempted(op_href(base, op), &why));
        }
    }
    outcomes
}

fn not_attempted(href: String, why: &str) -> OpOutcome {
    let mut o = OpOutcome::new(href, 424);
    o.description = Some(why.to_owned());
    o
}
