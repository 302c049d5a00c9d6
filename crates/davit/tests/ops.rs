//! Running davit as a service, against the real binary: the admin listener's metrics and
//! health endpoints, request ids and JSON access logs, `check-config`, SIGHUP reloads and
//! `--version`.

mod common;

use common::{free_port, try_request, Resp, Server};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn davit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_davit"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run davit")
}

fn get(port: u16, path: &str) -> Resp {
    try_request(port, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn scrape(port: u16) -> prometheus_parse::Scrape {
    let r = get(port, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = r.text();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("metrics do not parse: {e}\n{text}"))
}

/// The one sample of `name` with `labels`.
fn sample(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
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

fn requests(s: &prometheus_parse::Scrape, method: &str, class: &str) -> f64 {
    sample(
        s,
        "davit_http_requests_total",
        &[("method", method), ("status_class", class)],
    )
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_count_what_was_served_and_health_endpoints_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let server = Server::start_with(
        &root,
        &dir.path().join("log"),
        &["--admin-listen", &admin_addr],
    );
    // Server::start_with's readiness probe was one OPTIONS with an empty 200.
    let mut sent = 0;
    let mut received = 0;
    for (i, body) in [&b"one"[..], b"second", b"third body"].iter().enumerate() {
        let r = server.request("PUT", &format!("/f{i}.txt"), &[], body);
        assert_eq!(r.status, 201);
        sent += r.body.len();
        received += body.len();
    }
    for path in ["/f0.txt", "/f1.txt", "/missing"] {
        sent += server.request("GET", path, &[], b"").body.len();
    }
    let lock = br#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let r = server.request("LOCK", "/f2.txt", &[("Timeout", "Second-600")], lock);
    assert_eq!(r.status, 200);
    sent += r.body.len();
    received += lock.len();
    let r = server.request("PROPFIND", "/", &[("Depth", "1")], b"");
    assert_eq!(r.status, 207);
    sent += r.body.len();
    // The WebDAV port has no admin paths: /metrics there is an unmapped URL.
    let r = server.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 404);
    sent += r.body.len();

    let s = scrape(admin);
    assert_eq!(requests(&s, "OPTIONS", "2xx"), 1.0);
    assert_eq!(requests(&s, "PUT", "2xx"), 3.0);
    assert_eq!(requests(&s, "GET", "2xx"), 2.0);
    assert_eq!(requests(&s, "GET", "4xx"), 2.0);
    assert_eq!(requests(&s, "LOCK", "2xx"), 1.0);
    assert_eq!(requests(&s, "PROPFIND", "2xx"), 1.0);
    assert_eq!(requests(&s, "DELETE", "2xx"), 0.0);
    assert_eq!(
        sample(&s, "davit_http_received_bytes_total", &[]),
        received as f64
    );
    assert_eq!(sample(&s, "davit_http_sent_bytes_total", &[]), sent as f64);
    assert_eq!(
        sample(
            &s,
            "davit_http_request_duration_seconds_count",
            &[("method", "GET")]
        ),
        4.0
    );
    assert_eq!(sample(&s, "davit_locks_active", &[]), 1.0);
    assert_eq!(sample(&s, "davit_connections_accepted_total", &[]), 10.0);
    assert_eq!(sample(&s, "davit_batch_slots_in_use", &[]), 0.0);
    let build = s
        .samples
        .iter()
        .find(|x| x.metric == "davit_build_info")
        .unwrap_or_else(|| panic!("no davit_build_info"));
    assert_eq!(build.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    // Every request ran on its own connection, and all of them were closed.
    wait_until("no open connections", || {
        sample(&scrape(admin), "davit_connections_open", &[]) == 0.0
    });

    let r = get(admin, "/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = get(admin, "/readyz");
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    assert_eq!(get(admin, "/").status, 404);
    let r = try_request(admin, "POST", "/metrics", &[], b"").expect("POST /metrics");
    assert_eq!(r.status, 405);
}

#[test]
fn the_admin_listener_may_not_take_the_webdav_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("0.0.0.0:{port}");
    let root = dir.path().to_str().expect("utf-8 path");
    let out = davit(&["serve", root, "--listen", &listen, "--admin-listen", &admin]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin.listen"), "{err}");
}

#[test]
fn request_ids_are_kept_or_made_and_the_access_log_is_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let server = Server::start_with(dir.path(), &log, &["--log-format", "json"]);
    let r = server.request("PUT", "/a.txt", &[("X-Request-Id", "proxy-42")], b"hello");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-request-id"), Some("proxy-42"));
    // Not a usable id (a space, and too long): replaced.
    let long = "x".repeat(200);
    let ids: Vec<String> = [
        ("X-Request-Id", "two words"),
        ("X-Request-Id", long.as_str()),
    ]
    .iter()
    .map(|h| {
        let r = server.request("GET", "/a.txt", &[*h], b"");
        assert_eq!(r.status, 200);
        r.header("x-request-id").unwrap_or_default().to_owned()
    })
    .collect();
    for id in &ids {
        assert_eq!(id.len(), 25, "{id}");
        assert!(
            id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
            "{id}"
        );
    }
    assert_ne!(ids[0], ids[1]);

    // Access lines are written out in batches, within 100 ms of their request
    // (davit_server::logbuf).
    let read = || std::fs::read_to_string(&log).expect("log");
    wait_until("the access lines", || {
        let text = read();
        text.contains("proxy-42") && text.contains(ids[1].as_str())
    });
    let text = read();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let put = lines
        .iter()
        .find(|l| l["request_id"] == "proxy-42")
        .unwrap_or_else(|| panic!("no access line for proxy-42:\n{text}"));
    assert_eq!(put["target"], "davit::access");
    assert_eq!(put["method"], "PUT");
    assert_eq!(put["path"], "/a.txt");
    assert_eq!(put["status"], 201);
    assert_eq!(put["bytes"], 0);
    assert_eq!(put["user"], "-");
    assert!(
        put["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{put}"
    );
    let get = lines
        .iter()
        .find(|l| l["request_id"] == ids[1].as_str())
        .unwrap_or_else(|| panic!("no access line for {}:\n{text}", ids[1]));
    assert_eq!(
        (get["method"].as_str(), get["bytes"].as_u64()),
        (Some("GET"), Some(5))
    );
}

fn hash(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_davit"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-password");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        format!("{password}\n").as_bytes(),
    )
    .expect("write password");
    let out = child.wait_with_output().expect("hash-password");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn basic(user: &str, password: &str) -> String {
    // base64 by hand: the test needs it once per credential.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

fn users_config(path: &Path, users: &[(&str, &str)]) {
    let mut text = String::from("[auth]\n");
    for (name, password) in users {
        text.push_str(&format!(
            "[[auth.user]]\nname = \"{name}\"\npassword_hash = \"{}\"\n",
            hash(password)
        ));
    }
    std::fs::write(path, text).expect("write config");
}

fn hup(server: &Server) {
    let ok = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(ok.success());
}

#[test]
fn sighup_reloads_users_and_keeps_them_when_the_new_file_is_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    let config = dir.path().join("davit.toml");
    let log = dir.path().join("log");
    users_config(&config, &[("ann", "first")]);
    let server = Server::start_with(
        &root,
        &log,
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--log-format",
            "json",
        ],
    );
    let status = |user: &str, password: &str| {
        server
            .request(
                "PROPFIND",
                "/",
                &[("Depth", "0"), ("Authorization", &basic(user, password))],
                b"",
            )
            .status
    };
    assert_eq!(status("ann", "first"), 207);
    assert_eq!(status("bob", "second"), 401);
    // A keep-alive connection opened before the reload, used across it.
    let mut kept = KeepAlive::open(server.port);
    assert_eq!(kept.propfind(&basic("ann", "first")), 207);

    users_config(&config, &[("ann", "changed"), ("bob", "second")]);
    hup(&server);
    let count = |needle: &str| {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().filter(|l| l.contains(needle)).count())
            .unwrap_or(0)
    };
    wait_until("the reload", || count("reloaded users and rules") == 1);
    // The remembered verification of the old password went with it.
    assert_eq!(status("ann", "first"), 401);
    assert_eq!(status("ann", "changed"), 207);
    assert_eq!(status("bob", "second"), 207);
    assert_eq!(kept.propfind(&basic("bob", "second")), 207);
    // The access log names the user (its lines are written out within 100 ms).
    wait_until("an access line naming bob", || {
        std::fs::read_to_string(&log).is_ok_and(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|l| l["user"] == "bob" && l["status"] == 207)
        })
    });

    std::fs::write(&config, "[auth\nbroken").expect("write config");
    hup(&server);
    wait_until("the refusal", || count("reload refused") == 1);
    assert_eq!(status("ann", "changed"), 207);
    assert_eq!(status("bob", "second"), 207);
}

/// One HTTP/1.1 connection kept open across requests.
struct KeepAlive {
    stream: std::net::TcpStream,
    port: u16,
}

impl KeepAlive {
    fn open(port: u16) -> KeepAlive {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(common::IO_TIMEOUT))
            .expect("timeout");
        KeepAlive { stream, port }
    }

    /// A Depth 0 PROPFIND of the root; its status. The body is read by its Content-Length or
    /// chunks, and the connection stays open.
    fn propfind(&mut self, authorization: &str) -> u16 {
        use std::io::{BufRead, BufReader, Read, Write};
        let request = format!(
            "PROPFIND / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nDepth: 0\r\nAuthorization: {authorization}\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        self.stream.write_all(request.as_bytes()).expect("send");
        let mut reader = BufReader::new(&self.stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse().expect("content-length");
            }
            chunked |= l == "transfer-encoding: chunked";
        }
        if chunked {
            loop {
                line.clear();
                reader.read_line(&mut line).expect("chunk size");
                let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).expect("chunk");
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
        }
        assert!(reader.buffer().is_empty(), "more than one response");
        status
    }
}

#[test]
fn check_config_lists_every_error_or_prints_the_effective_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"nowhere\"\n[dav]\nmax_upload = \"big\"\n[admin]\nlisten = 9\n",
    )
    .expect("write");
    let out = davit(&["check-config", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let keys: Vec<&str> = err.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(
        keys,
        ["admin", "dav.max_upload", "listen", "3 errors"],
        "{err}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "root = \"{}\"\n[admin]\nlisten = \"127.0.0.1:9918\"\n",
            dir.path().display()
        ),
    )
    .expect("write");
    let out = davit(&["check-config", good.to_str().expect("utf-8")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings: toml::Table = String::from_utf8_lossy(&out.stdout)
        .parse()
        .unwrap_or_else(|e| panic!("not TOML: {e}"));
    assert_eq!(settings["listen"].as_str(), Some("127.0.0.1:4918"));
    assert_eq!(settings["admin"]["listen"].as_str(), Some("127.0.0.1:9918"));
    assert_eq!(
        settings["dav"]["header_timeout_secs"].as_integer(),
        Some(30)
    );
}

#[test]
fn version_names_the_commit() {
    let out = davit(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let expected_start = format!("davit {} (", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected_start), "{text}");
    let commit = text
        .trim_end()
        .strip_prefix(&expected_start)
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text}"));
    // What build.rs saw: the checkout's HEAD (tests run from the source tree).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let expected = std::env::var("DAVIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or(head)
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(commit, expected);
}

#[test]
fn bad_or_unreachable_store_settings_fail_at_start_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let cases = [
        (
            "[store]\nbackend = \"postgres\"\nurl = \"host=127.0.0.1\"\n",
            "store: the postgres backend needs a [blobs] table",
        ),
        (
            // Nothing listens on port 1: refused at once, not a hang.
            "[store]\nbackend = \"postgres\"\nurl = \"host=127.0.0.1 port=1 user=x\"\ntimeout_secs = 2\n\
             [blobs]\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"b\"\n",
            "store: connecting to PostgreSQL: PostgreSQL is unavailable",
        ),
        (
            "[store]\nbackend = \"cassandra\"\n",
            "store: unknown variant `cassandra`",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&config, text).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_davit"))
            .args(["serve", "--listen", &listen, "--config"])
            .arg(&config)
            .arg(dir.path())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run davit");
        assert_eq!(out.status.code(), Some(1), "case {i}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" INFO ")).collect();
        assert_eq!(lines.len(), 1, "case {i}: {err}");
        assert!(
            lines[0].starts_with("davit: ") && lines[0].contains(expected),
            "case {i}: {err}"
        );
    }
}

/// User and system CPU time of a process so far, in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The command name may hold spaces: the fields counted here come after its ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn a_server_left_idle_after_requests_stops_polling() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("f"), b"hello").unwrap();
    // The default busy-polling window, and a long one: either way the workers must go to
    // sleep once requests stop.
    let config = dir.path().join("davit.toml");
    std::fs::write(&config, "[dav]\nbusy_poll_us = 20000\n").unwrap();
    for config in [None, Some(config.to_str().unwrap())] {
        let admin_port = free_port();
        let admin = format!("127.0.0.1:{admin_port}");
        let mut args = vec!["--admin-listen", &admin];
        if let Some(c) = config {
            args.extend(["-c", c]);
        }
        let server = Server::start_with(&root, &dir.path().join("log"), &args);
        for _ in 0..200 {
            assert_eq!(server.request("GET", "/f", &[], b"").status, 200);
        }
        std::thread::sleep(Duration::from_millis(200));
        let polled = sample(&scrape(admin_port), "davit_busy_poll_seconds_total", &[]);
        let before = cpu_ticks(server.pid());
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_ticks(server.pid()) - before;
        // A worker still spinning would use 100 ticks a second.
        assert!(used <= 3, "an idle server used {used} ticks in one second");
        // The scrape itself is served by the admin thread, which does not poll.
        let after = sample(&scrape(admin_port), "davit_busy_poll_seconds_total", &[]);
        assert_eq!(after, polled, "workers polled while the server was idle");
        server.kill();
    }
}
