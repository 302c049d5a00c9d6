//! Log lines written in batches: the access log's lines are formatted here, without
//! `tracing`'s per-field machinery, and collected in one buffer that a thread writes out
//! every [`FLUSH_EVERY`] (or at once past [`FLUSH_AT`]), as nginx's `access_log ... buffer=`
//! does. Formatting and writing one line per request through `tracing` took about a fifth of
//! a small GET's throughput (docs/benchmarks.md, session 17).
//!
//! Every other log line goes through a [`LogWriter`] (the `tracing` subscriber's writer): it
//! writes out what is buffered before it, so lines keep their order and a warning is never
//! held back. The lines the access log printed in the last [`FLUSH_EVERY`] before a crash can
//! be lost; [`LogBuffer::flush`] runs on a normal stop.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

/// How long an access-log line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Buffered bytes written out at once, without waiting.
pub const FLUSH_AT: usize = 32 * 1024;

/// How log lines look, as the binary's `--log-format` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// `tracing`'s default text lines.
    Text,
    /// One JSON object per line, fields flattened, as `tracing`'s JSON format writes them.
    Json,
}

/// The fields of one access-log line.
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub user: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
}

/// Where the lines go.
type Out = Box<dyn Fn(&[u8]) -> io::Result<()> + Send + Sync>;

struct Shared {
    buf: Mutex<Vec<u8>>,
    /// Signalled when the buffer stops being empty.
    filled: Condvar,
    out: Out,
}

/// The buffer, shared by the access log and the `tracing` writer.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
    format: LineFormat,
}

static ACCESS: OnceLock<LogBuffer> = OnceLock::new();

/// The installed access log, if the binary installed one ([`LogBuffer::install`]); without
/// it, access lines go through `tracing` one by one.
pub(crate) fn access() -> Option<&'static LogBuffer> {
    ACCESS.get()
}

impl LogBuffer {
    /// A buffer writing to standard error.
    pub fn stderr(format: LineFormat) -> LogBuffer {
        LogBuffer::new(format, |bytes| io::stderr().lock().write_all(bytes))
    }

    /// A buffer writing with `out` (tests collect the bytes).
    pub fn new(
        format: LineFormat,
        out: impl Fn(&[u8]) -> io::Result<()> + Send + Sync + 'static,
    ) -> LogBuffer {
        LogBuffer {
            shared: Arc::new(Shared {
                buf: Mutex::new(Vec::with_capacity(FLUSH_AT)),
                filled: Condvar::new(),
                out: Box::new(out),
            }),
            format,
        }
    }

    /// Makes this buffer the access log of the process and starts the thread that writes it
    /// out. Once per process: `false` when one was installed already.
    pub fn install(&self) -> bool {
        if ACCESS.get().is_some() {
            return false;
        }
        // The thread first: without it, lines would wait until 32 KiB gathered.
        let shared = Arc::clone(&self.shared);
        let started = std::thread::Builder::new()
            .name("davit-log".into())
            .spawn(move || loop {
                {
                    let mut buf = lock(&shared.buf);
                    while buf.is_empty() {
                        buf = shared
                            .filled
                            .wait(buf)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                }
                std::thread::sleep(FLUSH_EVERY);
                let mut buf = lock(&shared.buf);
                write_out(&shared, &mut buf);
            })
            .is_ok();
        started && ACCESS.set(self.clone()).is_ok()
    }

    /// A writer for another log line (the `tracing` subscriber's writer makes one per event).
    pub fn writer(&self) -> LogWriter<'_> {
        LogWriter {
            shared: &self.shared,
        }
    }

    /// Writes out everything buffered.
    pub fn flush(&self) {
        let mut buf = lock(&self.shared.buf);
        write_out(&self.shared, &mut buf);
    }

    /// Appends one access-log line.
    pub(crate) fn access(&self, line: &AccessLine<'_>) {
        let mut text = Vec::with_capacity(256);
        let ts = humantime::format_rfc3339_micros(SystemTime::now());
        // Writing into a Vec cannot fail.
        let _ = match self.format {
            LineFormat::Text => writeln!(
                text,
                "{ts}  INFO davit::access: request_id={:?} user={:?} method={} path={} \
                 status={} bytes={} duration_ms={}",
                line.request_id,
                line.user,
                line.method,
                line.path,
                line.status,
                line.bytes,
                line.duration_ms
            ),
            LineFormat::Json => {
                let _ = write!(
                    text,
                    "{{\"timestamp\":\"{ts}\",\"level\":\"INFO\",\"request_id\":"
                );
                let _ = serde_json::to_writer(&mut text, line.request_id);
                text.extend_from_slice(b",\"user\":");
                let _ = serde_json::to_writer(&mut text, line.user);
                text.extend_from_slice(b",\"method\":");
                let _ = serde_json::to_writer(&mut text, line.method);
                text.extend_from_slice(b",\"path\":");
                let _ = serde_json::to_writer(&mut text, line.path);
                let _ = write!(
                    text,
                    ",\"status\":{},\"bytes\":{},\"duration_ms\":",
                    line.status, line.bytes
                );
                let _ = serde_json::to_writer(&mut text, &line.duration_ms);
                text.extend_from_slice(b",\"target\":\"davit::access\"}\n");
                Ok(())
            }
        };
        let mut buf = lock(&self.shared.buf);
        if buf.is_empty() {
            self.shared.filled.notify_one();
        }
        buf.extend_from_slice(&text);
        if buf.len() >= FLUSH_AT {
            write_out(&self.shared, &mut buf);
        }
    }
}

fn lock(m: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    // A panic while the lock was held leaves whole lines (or none) behind: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes the buffer out (with the lock held, so lines keep their order) and empties it. A
/// failed write drops the lines, as a failed write to standard error always did.
fn write_out(shared: &Shared, buf: &mut Vec<u8>) {
    if !buf.is_empty() {
        let _ = (shared.out)(buf);
        buf.clear();
    }
}

/// Writes a line out at once, after what the access log buffered before it.
pub struct LogWriter<'a> {
    shared: &'a Shared,
}

impl Write for LogWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buf = lock(&self.shared.buf);
        buf.extend_from_slice(bytes);
        write_out(self.shared, &mut buf);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting(format: LineFormat) -> (LogBuffer, Arc<Mutex<Vec<u8>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        let log = LogBuffer::new(format, move |b| {
            sink.lock().unwrap().extend_from_slice(b);
            Ok(())
        });
        (log, got)
    }

    fn line<'a>(path: &'a str, user: &'a str) -> AccessLine<'a> {
        AccessLine {
            request_id: "f3630728-0000000000000001",
            user,
            method: "GET",
            path,
            status: 200,
            bytes: 4096,
            duration_ms: 0.445,
        }
    }

    #[test]
    fn text_lines_look_like_tracing_s() {
        let (log, got) = collecting(LineFormat::Text);
        log.access(&line("/a.txt", "-"));
        assert!(got.lock().unwrap().is_empty(), "held until flushed");
        log.flush();
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        let (ts, rest) = text.split_once("  ").unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(ts.len(), "2026-12-04T19:30:50.248587Z".len());
        assert_eq!(
            rest,
            "INFO davit::access: request_id=\"f3630728-0000000000000001\" user=\"-\" \
             method=GET path=/a.txt status=200 bytes=4096 duration_ms=0.445\n"
        );
    }

    #[test]
    fn json_lines_parse_with_every_field() {
        let (log, got) = collecting(LineFormat::Json);
        log.access(&line("/a%20\"b.txt", "ann \"x\"\n"));
        log.flush();
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "davit::access");
        assert_eq!(v["request_id"], "f3630728-0000000000000001");
        assert_eq!(v["user"], "ann \"x\"\n");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/a%20\"b.txt");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 4096);
        assert_eq!(v["duration_ms"], 0.445);
        assert!(humantime::parse_rfc3339(v["timestamp"].as_str().unwrap()).is_ok());
    }

    /// Another log line writes out the access lines before it, then itself.
    #[test]
    fn other_lines_keep_their_order_and_are_not_held() {
        let (log, got) = collecting(LineFormat::Text);
        log.access(&line("/first", "-"));
        log.writer().write_all(b"a warning\n").unwrap();
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("path=/first "), "{}", lines[0]);
        assert_eq!(lines[1], "a warning");
    }

    /// Past [`FLUSH_AT`] bytes the buffer goes out without waiting for the thread.
    #[test]
    fn a_full_buffer_is_written_at_once() {
        let (log, got) = collecting(LineFormat::Text);
        let mut n = 0;
        while got.lock().unwrap().is_empty() {
            log.access(&line("/x", "-"));
            n += 1;
            assert!(n <= FLUSH_AT / 100, "nothing written after {n} lines");
        }
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), n);
        assert!(text.len() >= FLUSH_AT);
    }
}
