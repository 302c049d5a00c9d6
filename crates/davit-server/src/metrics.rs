//! What the admin listener's `/metrics` reports (Prometheus, OpenMetrics text format).
//!
//! Counting is on every request's path, so it is a handful of relaxed atomic additions into
//! fixed arrays indexed by method and status class, in one process-wide [`METRICS`]; labels,
//! names and the text are made only when a scrape asks ([`encode`], through
//! prometheus-client's collector interface). Gauges (open connections, locks, batch slots)
//! are read from the server at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The methods counted by name; anything else is `other`.
const METHODS: [&str; 19] = [
    "GET",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "POST",
    "REPORT",
    "BIND",
    "UNBIND",
    "REBIND",
    "SEARCH",
    "other",
];

/// Status classes `1xx` to `5xx`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the duration histogram's buckets, in seconds (`+Inf` follows).
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The same bounds in microseconds, for the comparison on the request path.
const BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Why a connection was not served at once.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// `max_connections` were open: it waited in the listen backlog for a slot.
    Limit = 0,
    /// Its TLS handshake failed or timed out.
    TlsHandshake = 1,
}
const REFUSALS: [&str; 2] = ["limit", "tls_handshake"];

/// Which store a failure came from.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// File contents and the namespace (the `Storage` trait).
    Storage = 0,
    /// Dead properties, locks, the change log (SQLite on the embedded default).
    Metadata = 1,
}
const BACKENDS: [&str; 2] = ["storage", "metadata"];

/// Kinds of backend failure worth an alert (a 404 or 409 from storage is an answer, not one).
const ERROR_KINDS: [&str; 5] = [
    "permission_denied",
    "no_space",
    "timed_out",
    "unavailable",
    "other",
];

/// A histogram of request durations: a counter per bucket (not cumulative) and the total in
/// microseconds.
#[derive(Debug)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, micros: u64) {
        let i = BUCKETS_MICROS.partition_point(|&b| b < micros);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }
}

/// The process's counters.
#[derive(Debug)]
pub struct Metrics {
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    durations: [Histogram; METHODS.len()],
    received: AtomicU64,
    sent: AtomicU64,
    accepted: AtomicU64,
    refused: [AtomicU64; REFUSALS.len()],
    auth_failures: AtomicU64,
    rate_limited: AtomicU64,
    busy_polled_micros: AtomicU64,
    errors: [[AtomicU64; ERROR_KINDS.len()]; BACKENDS.len()],
    /// A gauge: batches waiting for a slot.
    batch_waiting: AtomicU64,
    /// A gauge: connections being served.
    open: AtomicU64,
}

/// A connection being served, counted while it lives.
#[derive(Debug)]
pub struct Open(&'static Metrics);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// A batch waiting for a slot, counted while it lives.
#[derive(Debug)]
pub struct Waiting(&'static Metrics);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.batch_waiting.fetch_sub(1, Relaxed);
    }
}

/// The counters of this process (several servers in one process share them).
pub static METRICS: Metrics = Metrics::new();

/// A method as an index into the counters, found once per request.
#[derive(Debug, Clone, Copy)]
pub struct MethodIndex(u8);

impl MethodIndex {
    /// The index of `method` (`other` for methods davit does not serve). Not inlined, so that
    /// bench/instructions.sh can report what counting costs.
    #[inline(never)]
    pub fn of(method: &http::Method) -> Self {
        let name = method.as_str();
        let last = METHODS.len() - 1;
        let i = METHODS[..last]
            .iter()
            .position(|m| *m == name)
            .unwrap_or(last);
        MethodIndex(i as u8)
    }
}

impl Metrics {
    const fn new() -> Self {
        Metrics {
            requests: [const { [const { AtomicU64::new(0) }; CLASSES.len()] }; METHODS.len()],
            durations: [const { Histogram::new() }; METHODS.len()],
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: [const { AtomicU64::new(0) }; REFUSALS.len()],
            auth_failures: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            busy_polled_micros: AtomicU64::new(0),
            errors: [const { [const { AtomicU64::new(0) }; ERROR_KINDS.len()] }; BACKENDS.len()],
            batch_waiting: AtomicU64::new(0),
            open: AtomicU64::new(0),
        }
    }

    /// A request is done: its response was sent whole (or abandoned) after `took`. Not
    /// inlined, so that bench/instructions.sh can report what counting costs.
    #[inline(never)]
    pub fn request(&self, method: MethodIndex, status: u16, sent: u64, took: Duration) {
        let m = usize::from(method.0);
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        self.requests[m][class].fetch_add(1, Relaxed);
        self.durations[m].observe(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        self.sent.fetch_add(sent, Relaxed);
    }

    /// Request body bytes read.
    pub fn received(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Relaxed);
    }

    /// A connection was accepted; it counts as open until the guard is dropped.
    pub fn accepted(&'static self) -> Open {
        self.accepted.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
        Open(self)
    }

    /// Connections being served now.
    pub fn connections_open(&self) -> u64 {
        self.open.load(Relaxed)
    }

    /// A connection was not served at once, or not at all.
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    /// Credentials were given and were wrong.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Relaxed);
    }

    /// A request was refused (429) because its address failed to log in too often.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }

    /// A worker polled for its next request for `took` (see `busy_poll`).
    pub(crate) fn busy_polled(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.busy_polled_micros.fetch_add(micros, Relaxed);
    }

    /// Time workers have polled for their next request so far.
    pub fn busy_poll_time(&self) -> Duration {
        Duration::from_micros(self.busy_polled_micros.load(Relaxed))
    }

    /// A storage failure that failed a request (see [`ERROR_KINDS`]); answers such as "not
    /// found" or "exists" are not counted.
    pub fn storage_error(&self, e: &io::Error) {
        use io::ErrorKind::*;
        let kind = match e.kind() {
            NotFound | AlreadyExists | DirectoryNotEmpty | NotADirectory | IsADirectory
            | InvalidFilename | InvalidInput => return,
            PermissionDenied | ReadOnlyFilesystem => 0,
            StorageFull | QuotaExceeded | FileTooLarge => 1,
            TimedOut => 2,
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
            | HostUnreachable | NetworkUnreachable => 3,
            _ => 4,
        };
        self.errors[Backend::Storage as usize][kind].fetch_add(1, Relaxed);
    }

    /// A batch starts waiting for a slot; it stops when the guard is dropped.
    pub fn waiting_for_batch_slot(&'static self) -> Waiting {
        self.batch_waiting.fetch_add(1, Relaxed);
        Waiting(self)
    }

    /// Batches waiting for a slot now.
    pub fn batch_waiting(&self) -> u64 {
        self.batch_waiting.load(Relaxed)
    }

    /// A failure of the metadata store (dead properties, locks, change log); `unavailable`
    /// when it could not be reached.
    pub fn metadata_error(&self, unavailable: bool) {
        let kind = if unavailable {
            3
        } else {
            ERROR_KINDS.len() - 1
        };
        self.errors[Backend::Metadata as usize][kind].fetch_add(1, Relaxed);
    }
}

/// What a scrape reads from the server, besides the counters.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Connections being served (in this process).
    pub connections_open: u64,
    /// The `max_connections` limit.
    pub connections_max: u64,
    /// Locks granted and not expired.
    pub locks_active: u64,
    /// Batch documents in memory, and the slots there are for them.
    pub batch_slots_in_use: u64,
    /// Batches waiting for a slot.
    pub batch_slots_waiting: u64,
    /// The slots for batch documents.
    pub batch_slots: u64,
    /// Client addresses refused for failed logins right now.
    pub rate_limited_addresses: u64,
    /// The cache: bytes held, answers from it, lookups that missed, and lost change queues.
    pub cache_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_overflows: u64,
}

/// The binary's version and commit, for `davit_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// The package version.
    pub version: String,
    /// The commit it was built from (`unknown` when not built from a git checkout).
    pub commit: String,
}

/// What the kernel says about this process (the `process_*` metrics every Prometheus client
/// exports), read at scrape time from `/proc/self`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident and virtual memory, in bytes.
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors, and the most the process may open.
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl Process {
    /// Reads `/proc/self/stat`, `/proc/stat` (boot time) and `/proc/self/fd`; `None` where
    /// there is no `/proc` (or not Linux's).
    #[cfg(target_os = "linux")]
    pub fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        Process::parse(
            &stat,
            &std::fs::read_to_string("/proc/stat").ok()?,
            rustix::param::clock_ticks_per_second(),
            rustix::param::page_size() as u64,
            std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
            rustix::process::getrlimit(rustix::process::Resource::Nofile).current,
        )
    }

    /// Not Linux: nothing to read.
    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Option<Process> {
        None
    }

    /// The figures from the text of `/proc/self/stat` and `/proc/stat` (proc(5)).
    pub fn parse(
        self_stat: &str,
        stat: &str,
        ticks: u64,
        page: u64,
        open_fds: u64,
        max_fds: Option<u64>,
    ) -> Option<Process> {
        // The command name is in parentheses and may hold spaces: count fields after it.
        let rest = &self_stat[self_stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // proc(5) numbers fields from 1 with the pid; `rest` starts at field 3 (state).
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let ticks = ticks.max(1) as f64;
        let boot: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())?;
        Some(Process {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            threads: field(20)?,
            start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds,
            max_fds,
        })
    }
}

/// One scrape: the counters and the gauges read for it.
#[derive(Debug)]
struct Scrape {
    metrics: &'static Metrics,
    gauges: Gauges,
    build: BuildInfo,
    process: Option<Process>,
}

/// The exposition of `metrics` and `gauges` in the OpenMetrics text format.
pub fn encode(metrics: &'static Metrics, gauges: Gauges, build: BuildInfo) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        metrics,
        gauges,
        build,
        process: Process::read(),
    }));
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type NoExemplar = Option<&'static Exemplar<NoLabelSet, u64>>;

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Counter)?
        .encode_counter(&value, NoExemplar::None)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let m = self.metrics;
        let g = &self.gauges;
        {
            let mut e = encoder.encode_descriptor(
                "davit_http_requests",
                "HTTP requests answered, by method and status class.",
                None,
                MetricType::Counter,
            )?;
            for (method, row) in METHODS.iter().zip(&m.requests) {
                for (class, n) in CLASSES.iter().zip(row) {
                    let labels = [("method", *method), ("status_class", *class)];
                    e.encode_family(&labels)?
                        .encode_counter(&n.load(Relaxed), NoExemplar::None)?;
                }
            }
        }
        {
            let mut e = encoder.encode_descriptor(
                "davit_http_request_duration",
                "Time from a request's arrival to the end of its response, by method.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (method, h) in METHODS.iter().zip(&m.durations) {
                // Per bucket, not cumulative: the encoder sums them.
                let buckets: Vec<(f64, u64)> = BUCKETS
                    .iter()
                    .chain([&f64::MAX])
                    .zip(&h.buckets)
                    .map(|(bound, n)| (*bound, n.load(Relaxed)))
                    .collect();
                let count = buckets.iter().map(|b| b.1).sum();
                let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
                e.encode_family(&[("method", *method)])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        let bytes = Some(&Unit::Bytes);
        counter(
            &mut encoder,
            "davit_http_received",
            "Request body bytes read.",
            bytes,
            m.received.load(Relaxed),
        )?;
        counter(
            &mut encoder,
            "davit_http_sent",
            "Response body bytes sent.",
            bytes,
            m.sent.load(Relaxed),
        )?;
        gauge(
            &mut encoder,
            "davit_connections_open",
            "Connections being served.",
            g.connections_open,
        )?;
        gauge(
            &mut encoder,
            "davit_connections_max",
            "The max_connections limit.",
            g.connections_max,
        )?;
        counter(
            &mut encoder,
            "davit_connections_accepted",
            "Connections accepted.",
            None,
            m.accepted.load(Relaxed),
        )?;
        {
            let mut e = encoder.encode_descriptor(
                "davit_connections_refused",
                "Connections not served at once: limit (max_connections were open; it waited \
                 in the backlog) or tls_handshake (failed or timed out).",
                None,
                MetricType::Counter,
            )?;
            for (reason, n) in REFUSALS.iter().zip(&m.refused) {
                e.encode_family(&[("reason", *reason)])?
                    .encode_counter(&n.load(Relaxed), NoExemplar::None)?;
            }
        }
        gauge(
            &mut encoder,
            "davit_locks_active",
            "WebDAV locks granted and not expired.",
            g.locks_active,
        )?;
        gauge(
            &mut encoder,
            "davit_batch_slots",
            "Batch documents that may be in memory at once.",
            g.batch_slots,
        )?;
        gauge(
            &mut encoder,
            "davit_batch_slots_in_use",
            "Batch documents in memory.",
            g.batch_slots_in_use,
        )?;
        gauge(
            &mut encoder,
            "davit_batch_slots_waiting",
            "Batches waiting for a slot.",
            g.batch_slots_waiting,
        )?;
        counter(
            &mut encoder,
            "davit_auth_failures",
            "Requests with wrong credentials.",
            None,
            m.auth_failures.load(Relaxed),
        )?;
        counter(
            &mut encoder,
            "davit_auth_rate_limited",
            "Requests refused (429) because their address failed to log in too often.",
            None,
            m.rate_limited.load(Relaxed),
        )?;
        encoder
            .encode_descriptor(
                "davit_busy_poll",
                "Time workers spent polling for the next request instead of sleeping.",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?
            .encode_counter(
                &(m.busy_polled_micros.load(Relaxed) as f64 / 1e6),
                NoExemplar::None,
            )?;
        gauge(
            &mut encoder,
            "davit_auth_rate_limited_addresses",
            "Client addresses refused for failed logins right now.",
            g.rate_limited_addresses,
        )?;
        gauge(
            &mut encoder,
            "davit_cache_bytes",
            "Bytes the cache of listings and small files holds.",
            g.cache_bytes,
        )?;
        counter(
            &mut encoder,
            "davit_cache_hits",
            "PROPFIND and GET answers served from the cache.",
            None,
            g.cache_hits,
        )?;
        counter(
            &mut encoder,
            "davit_cache_misses",
            "Cache lookups that found nothing.",
            None,
            g.cache_misses,
        )?;
        counter(
            &mut encoder,
            "davit_cache_overflows",
            "Times the change queue overflowed and the whole cache was dropped.",
            None,
            g.cache_overflows,
        )?;
        {
            let mut e = encoder.encode_descriptor(
                "davit_backend_errors",
                "Failures of the storage or metadata backend that failed a request, by kind.",
                None,
                MetricType::Counter,
            )?;
            for (backend, row) in BACKENDS.iter().zip(&m.errors) {
                for (kind, n) in ERROR_KINDS.iter().zip(row) {
                    e.encode_family(&[("backend", *backend), ("kind", *kind)])?
                        .encode_counter(&n.load(Relaxed), NoExemplar::None)?;
                }
            }
        }
        if let Some(p) = &self.process {
            encoder
                .encode_descriptor(
                    "process_cpu",
                    "User and system CPU time spent.",
                    Some(&Unit::Seconds),
                    MetricType::Counter,
                )?
                .encode_counter(&p.cpu_seconds, NoExemplar::None)?;
            let bytes = Some(&Unit::Bytes);
            for (name, help, unit, value) in [
                (
                    "process_resident_memory",
                    "Resident memory size.",
                    bytes,
                    p.resident_bytes as f64,
                ),
                (
                    "process_virtual_memory",
                    "Virtual memory size.",
                    bytes,
                    p.virtual_bytes as f64,
                ),
                (
                    "process_open_fds",
                    "Open file descriptors.",
                    None,
                    p.open_fds as f64,
                ),
                ("process_threads", "Threads.", None, p.threads as f64),
                (
                    "process_start_time",
                    "Start time of the process since the Unix epoch.",
                    Some(&Unit::Seconds),
                    p.start_time_seconds,
                ),
            ] {
                encoder
                    .encode_descriptor(name, help, unit, MetricType::Gauge)?
                    .encode_gauge(&value)?;
            }
            if let Some(max) = p.max_fds {
                gauge(
                    &mut encoder,
                    "process_max_fds",
                    "Most open file descriptors allowed.",
                    max,
                )?;
            }
        }
        let info = [
            ("version", self.build.version.as_str()),
            ("commit", self.build.commit.as_str()),
        ];
        encoder
            .encode_descriptor(
                "davit_build",
                "The running davit's version and commit.",
                None,
                MetricType::Info,
            )?
            .encode_info(&info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(m: &'static Metrics) -> prometheus_parse::Scrape {
        let text = encode(
            m,
            Gauges {
                connections_open: 3,
                connections_max: 1024,
                locks_active: 2,
                ..Gauges::default()
            },
            BuildInfo {
                version: "1.2.3".into(),
                commit: "abc1234".into(),
            },
        );
        assert!(text.ends_with("# EOF\n"), "not OpenMetrics: {text}");
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("does not parse: {e}\n{text}"))
    }

    fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = s
            .samples
            .iter()
            .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        match &found[0].value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn the_exposition_parses_and_carries_what_was_counted() {
        static M: Metrics = Metrics::new();
        let get = MethodIndex::of(&http::Method::GET);
        M.request(get, 200, 100, Duration::from_micros(300));
        M.request(get, 206, 50, Duration::from_millis(3));
        M.request(get, 404, 10, Duration::from_secs(20));
        let propfind = MethodIndex::of(&http::Method::from_bytes(b"PROPFIND").unwrap_or_default());
        M.request(propfind, 207, 1000, Duration::from_millis(1));
        let odd = MethodIndex::of(&http::Method::from_bytes(b"BREW").unwrap_or_default());
        M.request(odd, 501, 0, Duration::ZERO);
        M.received(42);
        M.storage_error(&io::ErrorKind::StorageFull.into());
        M.storage_error(&io::ErrorKind::NotFound.into());
        M.metadata_error(false);
        M.metadata_error(true);
        M.auth_failure();
        M.refused(Refusal::Limit);

        let s = scrape(&M);
        let requests = |m: &str, c: &str| {
            value(
                &s,
                "davit_http_requests_total",
                &[("method", m), ("status_class", c)],
            )
        };
        assert_eq!(requests("GET", "2xx"), 2.0);
        assert_eq!(requests("GET", "4xx"), 1.0);
        assert_eq!(requests("GET", "5xx"), 0.0);
        assert_eq!(requests("PROPFIND", "2xx"), 1.0);
        assert_eq!(requests("other", "5xx"), 1.0);
        assert_eq!(value(&s, "davit_http_sent_bytes_total", &[]), 1160.0);
        assert_eq!(value(&s, "davit_http_received_bytes_total", &[]), 42.0);
        assert_eq!(value(&s, "davit_connections_open", &[]), 3.0);
        assert_eq!(value(&s, "davit_locks_active", &[]), 2.0);
        assert_eq!(value(&s, "davit_auth_failures_total", &[]), 1.0);
        assert_eq!(
            value(
                &s,
                "davit_connections_refused_total",
                &[("reason", "limit")]
            ),
            1.0
        );
        let errors = |b: &str, k: &str| {
            value(
                &s,
                "davit_backend_errors_total",
                &[("backend", b), ("kind", k)],
            )
        };
        assert_eq!(errors("storage", "no_space"), 1.0);
        assert_eq!(errors("storage", "other"), 0.0);
        assert_eq!(errors("metadata", "other"), 1.0);
        assert_eq!(errors("metadata", "unavailable"), 1.0);
        assert_eq!(
            value(
                &s,
                "davit_build_info",
                &[("version", "1.2.3"), ("commit", "abc1234")]
            ),
            1.0
        );

        // GET's histogram: 0.3 ms, 3 ms and 20 s, cumulative per bucket.
        let h = s
            .samples
            .iter()
            .find(|x| {
                x.metric == "davit_http_request_duration_seconds"
                    && x.labels.get("method") == Some("GET")
            })
            .map(|x| x.value.clone());
        let Some(prometheus_parse::Value::Histogram(buckets)) = h else {
            panic!("no GET histogram: {h:?}");
        };
        let at = |le: f64| {
            buckets
                .iter()
                .find(|b| b.less_than == le)
                .map(|b| b.count)
                .unwrap_or_else(|| panic!("no bucket {le}: {buckets:?}"))
        };
        assert_eq!(at(0.0005), 1.0);
        assert_eq!(at(0.0025), 1.0);
        assert_eq!(at(0.005), 2.0);
        assert_eq!(at(10.0), 2.0);
        assert_eq!(at(f64::INFINITY), 3.0);
        assert_eq!(
            value(
                &s,
                "davit_http_request_duration_seconds_count",
                &[("method", "GET")]
            ),
            3.0
        );
        let sum = value(
            &s,
            "davit_http_request_duration_seconds_sum",
            &[("method", "GET")],
        );
        assert!((sum - 20.0033).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn process_figures_come_from_proc() {
        // proc(5): a command name with a space and a parenthesis in it.
        let self_stat = "4242 (davit (x) y) S 1 4242 4242 0 -1 4194560 1030 0 0 0 \
                         250 130 0 0 20 0 9 0 1234500 805306368 2048 18446744073709551615";
        let stat = "cpu  1 2 3\nbtime 1764748800\nprocesses 99\n";
        let p = Process::parse(self_stat, stat, 100, 4096, 17, Some(65536));
        assert_eq!(
            p,
            Some(Process {
                cpu_seconds: 3.8,
                resident_bytes: 2048 * 4096,
                virtual_bytes: 805_306_368,
                threads: 9,
                open_fds: 17,
                max_fds: Some(65536),
                start_time_seconds: 1_764_748_800.0 + 12_345.0,
            })
        );
        assert_eq!(Process::parse("garbage", stat, 100, 4096, 1, None), None);
        // This process, on Linux: plausible figures.
        #[cfg(target_os = "linux")]
        {
            let me = Process::read().unwrap_or_else(|| panic!("no /proc/self"));
            assert!(
                me.resident_bytes > 0 && me.threads >= 1 && me.open_fds >= 3,
                "{me:?}"
            );
        }
    }

    #[test]
    fn methods_map_to_their_own_counters() {
        for (i, name) in METHODS[..METHODS.len() - 1].iter().enumerate() {
            let m = http::Method::from_bytes(name.as_bytes()).unwrap_or_default();
            assert_eq!(usize::from(MethodIndex::of(&m).0), i, "{name}");
        }
    }
}
