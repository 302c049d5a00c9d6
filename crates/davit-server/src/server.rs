//! The connection loop: hyper HTTP/1.1 and HTTP/2 per connection, time-outs for silent and
//! idle connections, one access-log line per request, and a graceful shutdown that lets
//! in-flight requests finish.

use crate::body::Body;
use crate::config::{default_state_dir, DavConfig};
use crate::fragment_guard::FragmentGuard;
use crate::handler::Dav;
use crate::locks::{EmbeddedLockStore, LockStore};
use crate::metrics::{MethodIndex, Refusal, METRICS};
use crate::props::{PropStore, SqlitePropStore};
use crate::send_timeout::SendTimeout;
use crate::storage::{FsStorage, Storage};
use crate::tls::Tls;
use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as AutoBuilder;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded default: files on the local filesystem, dead properties in SQLite.
pub type Server = Dav<FsStorage, SqlitePropStore, EmbeddedLockStore>;

impl Server {
    /// Opens a server over `root`, keeping its own files in `state_dir` (default:
    /// `root/.davit`, hidden from clients).
    pub fn open(root: &Path, state_dir: Option<&Path>, config: DavConfig) -> io::Result<Server> {
        let state = state_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| default_state_dir(root));
        config
            .quota_limits()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        config
            .batch_endpoint_path()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        config
            .principals_collection()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let storage = FsStorage::new(root, &state)?;
        // Two files: an atomic batch holds the property store's write lock for its whole run,
        // and lock changes must not wait for it.
        let props = SqlitePropStore::open(&state.join("props.sqlite3"))
            .map_err(|e| io::Error::other(e.to_string()))?;
        let locks = EmbeddedLockStore::open(&state.join("locks.sqlite3"))
            .map_err(|e| io::Error::other(e.to_string()))?;
        let changes = crate::changes::SqliteChangeLog::open(
            &state.join("changes.sqlite3"),
            config.sync_max_tombstones,
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Dav::new(storage, props, locks, config)
            .with_journal(state.join("journal"))
            .with_uploads(state.join("uploads"))
            .with_change_log(std::sync::Arc::new(changes)))
    }
}

/// Accepts connections on `listener` until `shutdown` resolves, then stops accepting and
/// waits for open requests to finish. Plain HTTP/1.1 (and HTTP/2 with prior knowledge).
pub async fn serve<S, P, L>(
    listener: TcpListener,
    dav: Dav<S, P, L>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    serve_with(listener, dav, shutdown, None).await
}

/// [`serve`], over TLS when `tls` is given (HTTP/2 or HTTP/1.1 by ALPN).
pub async fn serve_with<S, P, L>(
    listener: TcpListener,
    dav: Dav<S, P, L>,
    shutdown: impl Future<Output = ()>,
    tls: Option<Tls>,
) -> io::Result<()>
where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    dav.recover().await?;
    let sweeper = dav.upload_sweeper().map(tokio::spawn);
    let served = serve_worker(listener, dav, shutdown, tls).await;
    if let Some(task) = sweeper {
        task.abort();
    }
    served
}

/// One of several accept loops serving the same [`Dav`], each on its own single-threaded
/// runtime (the `davit` binary runs one per core on `SO_REUSEPORT` listeners: no task ever
/// hops between threads). Unlike [`serve_with`] it does not settle interrupted batches: call
/// [`Dav::recover`] once before starting the loops. The connection limit is shared by all.
pub async fn serve_worker<S, P, L>(
    listener: TcpListener,
    dav: Dav<S, P, L>,
    shutdown: impl Future<Output = ()>,
    tls: Option<Tls>,
) -> io::Result<()>
where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    // Every connection task holds a receiver: shutdown is a send, and the drain is done when
    // all receivers are gone.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let limits = Limits::from(dav.config());
    // A permit per open connection: at the limit, new ones wait in the kernel's backlog.
    let slots = dav.connection_slots.clone();
    // One reference count per request instead of one per shared part of `Dav`.
    let shared = Arc::new(dav.clone());
    let needs_peer = dav.requires_auth();
    // Only where a worker owns its thread: the poller and the requests must share it.
    let poller = (dav.config().busy_poll_us > 0
        && crate::busy_poll::supported()
        && tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread)
        .then(|| {
            // The binary refuses more; a library caller's value is bounded here.
            let us = dav
                .config()
                .busy_poll_us
                .min(crate::config::BUSY_POLL_MAX_US);
            let window = Duration::from_micros(us);
            tokio::spawn(crate::busy_poll::run(window))
        });
    tokio::pin!(shutdown);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => break,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                METRICS.refused(Refusal::Limit);
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let open = METRICS.accepted();
                let dav = shared.clone();
                let activity = Arc::new(Activity::new());
                let service = {
                    let activity = activity.clone();
                    service_fn(move |mut req: Request<Incoming>| {
                        // Only authentication (its per-address rate limit) reads the peer; the
                        // extension map costs an allocation per request.
                        if needs_peer {
                            req.extensions_mut().insert(crate::handler::PeerAddr(peer));
                        }
                        let busy = crate::busy_poll::InProgress::start();
                        let dav = Arc::clone(&dav);
                        let in_flight = InFlight::start(&activity, req.version());
                        async move {
                            let response = handle_logged(&dav, req, in_flight).await;
                            drop(busy);
                            Ok::<_, Infallible>(response)
                        }
                    })
                };
                let stop = stop_rx.clone();
                match &tls {
                    None => {
                        tokio::spawn(async move {
                            let _permit = (permit, open);
                            drive(stream, service, limits, activity, stop, peer).await;
                        });
                    }
                    Some(tls) => {
                        let acceptor = match tls.acceptor() {
                            Ok(a) => a,
                            Err(e) => {
                                tracing::error!(error = %e, "no TLS acceptor");
                                continue;
                            }
                        };
                        tokio::spawn(async move {
                            let _permit = (permit, open);
                            let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                            let stream = match handshake {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    METRICS.refused(Refusal::TlsHandshake);
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    METRICS.refused(Refusal::TlsHandshake);
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                            drive(stream, service, limits, activity, stop, peer).await;
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(stop_rx);
    // Debug: with a worker per core, the binary says this once for all of them.
    tracing::debug!("shutting down: waiting for open requests to finish");
    let _ = stop_tx.send(());
    dav.stop_appends();
    tokio::select! {
        () = stop_tx.closed() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("gave up waiting for connections"),
    }
    dav.quiesce().await;
    if let Some(task) = poller {
        task.abort();
    }
    Ok(())
}

/// The connection-level limits from the configuration.
#[derive(Clone, Copy)]
struct Limits {
    header_timeout: Duration,
    send_timeout: Duration,
    max_header_bytes: usize,
    max_headers: usize,
}

impl From<&DavConfig> for Limits {
    fn from(c: &DavConfig) -> Self {
        Limits {
            header_timeout: Duration::from_secs(c.header_timeout_secs.max(1)),
            send_timeout: Duration::from_secs(c.send_timeout_secs.max(1)),
            // hyper's floor for its read buffer.
            max_header_bytes: c.max_header_bytes.max(8192),
            max_headers: c.max_headers.max(1),
        }
    }
}

/// HTTP/1.1 and HTTP/2 on one connection builder (HTTP/2 is recognised by its preface),
/// with the header limits and the header-read timeout against slowloris.
fn connection_builder(limits: &Limits) -> AutoBuilder<TokioExecutor> {
    let mut builder = AutoBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(256)
        .max_header_list_size(limits.max_header_bytes as u32);
    builder
}

/// Serves one connection until it ends: closed by the client, idle for the header timeout
/// with no request in progress, an HTTP/2 response stalled for the send timeout on a window the
/// client does not grant, or drained at shutdown. Without the idle clock, a connection
/// that never sent a request stayed open for good (hyper-util's protocol detection reads the
/// first bytes with no time limit, before hyper's header timeout starts), so `max_connections`
/// silent sockets stopped the server accepting anyone; and hyper keeps an HTTP/2 connection
/// whose client answers its pings open for good too. Once an HTTP/1.1 request was served,
/// hyper's header timeout closes the idle connection itself.
async fn drive<T, Svc>(
    stream: T,
    service: Svc,
    limits: Limits,
    activity: Arc<Activity>,
    mut stop: tokio::sync::watch::Receiver<()>,
    peer: std::net::SocketAddr,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::Service<Request<Incoming>, Response = Response<Logged>, Error = Infallible>
        + Send
        + 'static,
    Svc::Future: Send + 'static,
{
    let io = TokioIo::new(SendTimeout::new(
        FragmentGuard::new(stream),
        limits.send_timeout,
    ));
    let builder = connection_builder(&limits);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut idle = IdleClock::new(&activity, limits.header_timeout, limits.send_timeout);
    let mut closing = false;
    loop {
        // Biased, the connection first: the other two are polled on every wake-up of this task
        // and finish at most once each.
        tokio::select! {
            biased;
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            why = &mut idle, if !closing => {
                if why == Closing::Stalled {
                    tracing::debug!(%peer, "a response stalled on the client's window: closing");
                    return;
                }
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Requests in progress on one connection, and when the last one ended.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened`.
    last_end: AtomicU64,
    /// An HTTP/1.1 request was served: hyper's header-read timeout closes this connection when
    /// idle, and the idle clock stands down.
    http1: AtomicBool,
    /// HTTP/2 response bodies that handed over data and have not been asked for more: the
    /// client's flow-control window holds them. A client that grants no window never blocks the
    /// socket, so `SendTimeout` cannot see it.
    owed: AtomicUsize,
    /// Milliseconds after `opened` of the last progress on an owed body.
    owed_clock: AtomicU64,
}

/// Why the idle clock closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// No request in progress for the header timeout: close gracefully.
    Idle,
    /// A response the client stopped taking for the send timeout: drop the connection.
    Stalled,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            http1: AtomicBool::new(false),
            owed: AtomicUsize::new(0),
            owed_clock: AtomicU64::new(0),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, millis: &AtomicU64) -> Instant {
        self.opened + Duration::from_millis(millis.load(Ordering::Acquire))
    }

    /// When to look again, or why to close now.
    fn next_check(&self, idle: Duration, send: Duration) -> Result<tokio::time::Instant, Closing> {
        let now = Instant::now();
        let mut next = now + idle;
        if self.owed.load(Ordering::Acquire) > 0 {
            let stall = self.at(&self.owed_clock) + send;
            if stall <= now {
                return Err(Closing::Stalled);
            }
            next = next.min(stall);
        }
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let idle_at = self.at(&self.last_end) + idle;
            if idle_at <= now {
                return Err(Closing::Idle);
            }
            next = next.min(idle_at);
        }
        Ok(next.into())
    }
}

/// Resolves when a connection has had no request in progress for the header timeout, or an
/// HTTP/2 response has waited for the client's flow-control window for the send timeout. One
/// timer per connection, pushed back when it fires early; one atomic load per poll on HTTP/1.1.
struct IdleClock<'a> {
    activity: &'a Activity,
    idle: Duration,
    send: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<'a> IdleClock<'a> {
    fn new(activity: &'a Activity, idle: Duration, send: Duration) -> Self {
        IdleClock {
            activity,
            idle,
            send,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl Future for IdleClock<'_> {
    type Output = Closing;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Closing> {
        if self.activity.http1.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            match self.activity.next_check(self.idle, self.send) {
                Err(why) => return Poll::Ready(why),
                Ok(at) => self.timer.as_mut().reset(at),
            }
        }
    }
}

/// One HTTP/2 request in progress; it ends when its response body is done or dropped.
/// HTTP/1.1 requests only stand the idle clock down, which spares them the clock reads.
#[derive(Debug)]
struct InFlight {
    activity: Option<Arc<Activity>>,
    /// The body handed over data and was not asked for more yet.
    owing: bool,
}

impl InFlight {
    fn start(activity: &Arc<Activity>, version: http::Version) -> Self {
        if version < http::Version::HTTP_2 {
            activity.http1.store(true, Ordering::Relaxed);
            return InFlight {
                activity: None,
                owing: false,
            };
        }
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            activity: Some(activity.clone()),
            owing: false,
        }
    }

    /// The body is asked for its next frame: progress, if it owed one.
    fn asked(&mut self) {
        if let (Some(a), true) = (&self.activity, self.owing) {
            self.owing = false;
            a.owed_clock.store(a.millis(), Ordering::Release);
            a.owed.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The body handed over data; until asked again, the client owes it window.
    fn handed_over(&mut self) {
        if let (Some(a), false) = (&self.activity, self.owing) {
            self.owing = true;
            if a.owed.fetch_add(1, Ordering::AcqRel) == 0 {
                a.owed_clock.store(a.millis(), Ordering::Release);
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(a) = &self.activity {
            if self.owing {
                a.owed.fetch_sub(1, Ordering::AcqRel);
            }
            a.last_end.store(a.millis(), Ordering::Release);
            a.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

async fn handle_logged<S, P, L>(
    dav: &Dav<S, P, L>,
    req: Request<Incoming>,
    in_flight: InFlight,
) -> Response<Logged>
where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    let start = Instant::now();
    let method = MethodIndex::of(req.method());
    let request_id = request_id(req.headers());
    // The log line's own fields are gathered only when it will be written: the path's copy
    // is measurable at tens of thousands of requests per second.
    let log = tracing::enabled!(target: "davit::access", tracing::Level::INFO)
        .then(|| (req.method().clone(), req.uri().path().to_owned()));
    let resp = dav.handle(req).await;
    let status = resp.status().as_u16();
    let (mut parts, body) = resp.into_parts();
    parts.headers.insert(
        http::header::SERVER,
        http::HeaderValue::from_static(concat!("davit/", env!("CARGO_PKG_VERSION"))),
    );
    let user = parts.extensions.remove::<crate::handler::AuthUser>();
    let log = log.map(|(method, path)| {
        Box::new(AccessLog {
            method,
            path,
            request_id: request_id.clone(),
            user,
        })
    });
    parts.headers.insert(X_REQUEST_ID, request_id);
    Response::from_parts(
        parts,
        Logged {
            inner: body,
            bytes: 0,
            in_flight,
            start,
            method,
            status,
            log,
        },
    )
}

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The request's id: the `X-Request-Id` a proxy set (up to 128 characters of letters, digits
/// and `-._:+/=@`), else a new one, `PPPPPPPP-NNNNNNNNNNNNNNNN`: a random prefix per process
/// and a counter, in hex; unique in the process and unlikely to repeat across restarts. Not
/// inlined, so that bench/instructions.sh can report what it costs.
#[inline(never)]
fn request_id(headers: &http::HeaderMap) -> http::HeaderValue {
    if let Some(v) = headers.get(X_REQUEST_ID) {
        let b = v.as_bytes();
        let ok = |c: &u8| c.is_ascii_alphanumeric() || b"-._:+/=@".contains(c);
        if !b.is_empty() && b.len() <= 128 && b.iter().all(ok) {
            return v.clone();
        }
    }
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = *PREFIX.get_or_init(|| {
        let b = uuid::Uuid::new_v4().into_bytes();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [b'-'; 25];
    for (i, slot) in id[..8].iter_mut().enumerate() {
        *slot = HEX[(prefix >> (28 - 4 * i) & 0xf) as usize];
    }
    for (i, slot) in id[9..].iter_mut().enumerate() {
        *slot = HEX[(n >> (60 - 4 * i) & 0xf) as usize];
    }
    http::HeaderValue::from_bytes(&id).unwrap_or(http::HeaderValue::from_static("-"))
}

struct AccessLog {
    method: Method,
    path: String,
    request_id: http::HeaderValue,
    user: Option<crate::handler::AuthUser>,
}

/// A response body that counts what it sent, and when the response is done (or abandoned)
/// counts the request in the metrics and writes the access-log line, so streamed bodies are
/// counted and logged with their real size and duration.
struct Logged {
    inner: Body,
    bytes: u64,
    start: Instant,
    method: MethodIndex,
    status: u16,
    /// Boxed: only when the access log is on, and the response's future stays small.
    log: Option<Box<AccessLog>>,
    /// The request on the connection's idle clock: ends when the body is done.
    in_flight: InFlight,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        self.in_flight.asked();
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += data.len() as u64;
                if !self.inner.is_end_stream() {
                    self.in_flight.handed_over();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let took = self.start.elapsed();
        METRICS.request(self.method, self.status, self.bytes, took);
        let Some(l) = self.log.take() else {
            return;
        };
        let duration_ms = (took.as_secs_f64() * 1e6).round() / 1e3;
        if let Some(log) = crate::logbuf::access() {
            log.access(&crate::logbuf::AccessLine {
                request_id: l.request_id.to_str().unwrap_or("-"),
                user: l.user.as_ref().map_or("-", |u| u.0.as_str()),
                method: l.method.as_str(),
                path: &l.path,
                status: self.status,
                bytes: self.bytes,
                duration_ms,
            });
        } else {
            tracing::info!(
                target: "davit::access",
                request_id = l.request_id.to_str().unwrap_or("-"),
                user = l.user.as_ref().map_or("-", |u| u.0.as_str()),
                method = %l.method,
                path = %l.path,
                status = self.status,
                bytes = self.bytes,
                duration_ms,
            );
        }
    }
}

/// Raises this process's limit of open files to the most it may have (the hard limit), as a
/// server with many connections needs and as nginx's `worker_rlimit_nofile` or Go's runtime
/// do: a login shell's soft limit is often 1,024, below `max_connections` plus the files a
/// batch keeps open. Returns the limit now in force.
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    // `None` stands for no limit.
    let mut limit = getrlimit(Resource::Nofile);
    let raise = match (limit.current, limit.maximum) {
        (Some(now), Some(most)) => now < most,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if raise {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).ok()?;
    }
    Some(limit.current.unwrap_or(u64::MAX))
}

/// Not Unix: nothing to raise.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The soft limit of open files ends at the hard one.
    #[cfg(unix)]
    #[test]
    fn the_open_file_limit_is_raised_to_the_most_allowed() {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let before = getrlimit(Resource::Nofile);
        if let Some(most) = before.maximum {
            // Lowered first (a process may lower its own), so there is something to raise;
            // by one only, for the tests running beside this one.
            let lowered = rustix::process::Rlimit {
                current: Some(most.saturating_sub(1)),
                maximum: before.maximum,
            };
            setrlimit(Resource::Nofile, lowered).unwrap();
            assert_eq!(super::raise_open_file_limit(), Some(most));
            assert_eq!(getrlimit(Resource::Nofile).current, Some(most));
        }
    }

    #[test]
    fn request_ids_are_kept_when_usable_else_made_new() {
        let counter = |id: &http::HeaderValue| {
            let text = id.to_str().unwrap_or_default();
            assert_eq!((text.len(), &text[8..9]), (25, "-"), "{text}");
            u64::from_str_radix(&text[9..], 16).unwrap_or(u64::MAX)
        };
        let none = http::HeaderMap::new();
        let (a, b) = (request_id(&none), request_id(&none));
        assert_eq!(
            a.as_bytes()[..8],
            b.as_bytes()[..8],
            "one prefix per process"
        );
        assert!(counter(&b) > counter(&a));
        let mut h = http::HeaderMap::new();
        h.insert(X_REQUEST_ID, http::HeaderValue::from_static("lb-7:abc"));
        assert_eq!(request_id(&h), "lb-7:abc");
        h.insert(X_REQUEST_ID, http::HeaderValue::from_static("a b"));
        assert!(counter(&request_id(&h)) > counter(&b));
    }
}
