//! The `davit` binary as a client: against the real server (in-process, ephemeral port) and
//! against a canned 207 for the partial-failure exit status.

// Test helpers outside #[test] functions: a failed setup should panic loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

fn davit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_davit"))
        .args(args)
        .env_remove("DAVIT_USER")
        .env_remove("DAVIT_PASSWORD")
        .env("NETRC", "/nonexistent")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = davit(args);
    assert!(
        o.status.success(),
        "davit {args:?}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The davit server on a runtime of its own thread; lives as long as the returned guards.
fn server() -> (
    String,
    tempfile::TempDir,
    tempfile::TempDir,
    tokio::runtime::Runtime,
) {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server =
        davit_server::Server::open(root.path(), Some(state.path()), Default::default()).unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(davit_server::serve(
        listener,
        server,
        std::future::pending(),
    ));
    (format!("http://{addr}"), root, state, rt)
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

#[test]
fn client_commands_against_davit() {
    let (u, root, _state, _rt) = server();
    let local = tempfile::tempdir().unwrap();
    let l = local.path();
    write(&l.join("hello.txt"), "hello\n");
    write(&l.join("tree/a.txt"), "a\n");
    write(&l.join("tree/sub dir/b&c.txt"), "bc\n");

    ok(&[
        "put",
        l.join("hello.txt").to_str().unwrap(),
        &format!("{u}/"),
    ]);
    ok(&[
        "put",
        l.join("tree").to_str().unwrap(),
        &format!("{u}/tree"),
    ]);
    assert_eq!(
        std::fs::read_to_string(root.path().join("tree/sub dir/b&c.txt")).unwrap(),
        "bc\n"
    );
    ok(&["mkdir", "-p", &format!("{u}/x/y/z")]);
    assert!(root.path().join("x/y/z").is_dir());
    let o = davit(&["mkdir", &format!("{u}/x")]);
    assert_eq!(o.status.code(), Some(1));

    let mut names: Vec<String> = ok(&["ls", &format!("{u}/")])
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(names, ["hello.txt", "tree/", "x/"]);
    let long = ok(&["ls", "-l", &format!("{u}/")]);
    assert!(
        long.lines()
            .any(|l| l.starts_with('-') && l.contains(" 6 ") && l.ends_with("hello.txt")),
        "{long}"
    );
    let rec = ok(&["ls", "-R", &format!("{u}/tree")]);
    assert!(rec.lines().any(|l| l == "sub dir/b&c.txt"), "{rec}");
    let json = ok(&["ls", "--json", &format!("{u}/tree/")]);
    let first: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["name"] == "a.txt")
        .unwrap();
    assert_eq!(first["size"], 2);
    assert!(ok(&["stat", &format!("{u}/hello.txt")]).contains("size: 6"));

    let back = l.join("back.txt");
    ok(&["get", &format!("{u}/hello.txt"), back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello\n");
    ok(&[
        "get",
        &format!("{u}/tree"),
        l.join("tree.back").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(l.join("tree.back/sub dir/b&c.txt")).unwrap(),
        "bc\n"
    );

    ok(&["cp", &format!("{u}/tree/"), "/tree2/"]);
    assert!(root.path().join("tree2/a.txt").is_file());
    assert_eq!(
        davit(&["cp", "-n", &format!("{u}/tree/"), "/tree2/"])
            .status
            .code(),
        Some(1)
    );
    ok(&["mv", &format!("{u}/tree2/a.txt"), "renamed.txt"]);
    assert!(root.path().join("tree2/renamed.txt").is_file());
    // A usage error (exit 2): a collection needs -r.
    assert_eq!(
        davit(&["rm", &format!("{u}/tree2/")]).status.code(),
        Some(2)
    );
    ok(&["rm", "-r", &format!("{u}/tree2/")]);
    assert!(!root.path().join("tree2").exists());

    let f = format!("{u}/hello.txt");
    ok(&["props", "set", &f, "{urn:z}color", "r<e>d"]);
    assert_eq!(
        ok(&["props", "get", &f, "{urn:z}color"]),
        "{urn:z}color: r<e>d\n"
    );
    let j = ok(&["props", "get", "--json", &f, "{urn:z}color"]);
    assert!(j.contains(r#""{urn:z}color":"r<e>d""#), "{j}");
    ok(&["props", "rm", &f, "{urn:z}color"]);
    let o = davit(&["props", "get", &f, "{urn:z}color"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("404"));
    // A protected property: the server refuses it in a 207, the CLI says so and exits 3.
    let o = davit(&["props", "set", &f, "getetag", "x"]);
    assert_eq!(o.status.code(), Some(3));

    let token = ok(&["lock", "--timeout", "60", &f]).trim().to_owned();
    assert!(!token.is_empty());
    let o = davit(&["rm", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("423 Locked (lock-token-submitted: /"));
    ok(&["lock", "--refresh", &token, &f]);
    ok(&["unlock", &f, &token]);
    ok(&["rm", &f]);

    assert_eq!(davit(&["ls", &format!("{u}/nope/")]).status.code(), Some(1));
    assert_eq!(davit(&["ls", "not a url"]).status.code(), Some(2));
}

/// A server answering DELETE with a 207 listing failed members: exit 3, each on stderr.
#[test]
fn partial_failure_exits_3() {
    let body = r#"<?xml version="1.0"?><multistatus xmlns="DAV:"><response><href>/t/a%20b</href><status>HTTP/1.1 423 Locked</status><error><lock-token-submitted/></error></response><response><href>/t/c</href><status>HTTP/1.1 403 Forbidden</status></response></multistatus>"#;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 8192];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let o = davit(&["rm", "-r", &format!("{base}/t/")]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/t/a b: 423 Locked (lock-token-submitted)"),
        "{err}"
    );
    assert!(err.contains("/t/c: 403 Forbidden"), "{err}");
    let o = davit(&["rm", "-r", "--json", &format!("{base}/t/")]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["failures"][0]["status"], 423);
}

fn davit_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_davit"))
        .args(args)
        .env_remove("DAVIT_USER")
        .env_remove("DAVIT_PASSWORD")
        .env("NETRC", "/nonexistent")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn batch_exit_statuses() {
    let (u, root, _state, _rt) = server();
    let local = tempfile::tempdir().unwrap();
    let xml = local.path().join("ops.xml");
    write(
        &xml,
        r#"<b:batch xmlns:b="urn:davit:batch" xmlns:D="DAV:" xmlns:z="urn:z">
  <b:mkcol href="notes/"/>
  <b:put href="notes/a.txt" content-type="text/plain">hello</b:put>
  <b:proppatch href="notes/a.txt"><D:set><D:prop><z:tag>red</z:tag></D:prop></D:set></b:proppatch>
  <b:propfind href="notes/a.txt"><D:prop><z:tag/></D:prop></b:propfind>
</b:batch>"#,
    );
    // Everything succeeds: exit 0, one line per operation (plus the properties read).
    let out = ok(&["batch", xml.to_str().unwrap(), &format!("{u}/")]);
    assert_eq!(
        out,
        "201 /notes/ Created\n201 /notes/a.txt Created\n200 /notes/a.txt OK\n  200 {urn:z}tag\n200 /notes/a.txt OK\n  200 {urn:z}tag: red\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("notes/a.txt")).unwrap(),
        "hello"
    );

    // JSON by the file's extension, one failing operation: exit 3, the failure on stderr.
    let json = local.path().join("ops.json");
    write(
        &json,
        r#"{"operations": [
            {"op": "put", "href": "b.txt", "content": "b"},
            {"op": "put", "href": "nope/c.txt", "content": "c"},
            {"op": "delete", "href": "a.txt"}
        ]}"#,
    );
    let o = davit(&[
        "batch",
        "--json",
        json.to_str().unwrap(),
        &format!("{u}/notes/"),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<_> = lines.iter().map(|v| v["status"].clone()).collect();
    assert_eq!(statuses, [201, 409, 204]);
    assert_eq!(lines[1]["path"], "/notes/nope/c.txt");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("operation 2 /notes/nope/c.txt: 409 Conflict"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // From stdin, type given; an atomic batch with a failure: exit 3, nothing done.
    let o = davit_stdin(
        &[
            "batch",
            "--content-type",
            "application/json",
            "-",
            &format!("{u}/notes/"),
        ],
        r#"{"mode": "atomic", "operations": [{"op": "delete", "href": "b.txt"}, {"op": "delete", "href": "gone"}]}"#,
    );
    assert_eq!(o.status.code(), Some(3));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("424 /notes/b.txt Failed Dependency"),
        "{out}"
    );
    assert!(root.path().join("notes/b.txt").is_file());

    // A batch refused as a whole (not well-formed): exit 1.
    let o = davit_stdin(&["batch", "-", &format!("{u}/")], "<b:batch");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("400 Bad Request"));
}

#[test]
fn lock_token_lets_the_holder_write() {
    let (u, root, _state, _rt) = server();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("new.txt");
    write(&src, "new\n");
    let f = format!("{u}/f.txt");
    ok(&["put", src.to_str().unwrap(), &f]);
    let token = ok(&["lock", &f]).trim().to_owned();

    let o = davit(&["put", src.to_str().unwrap(), &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("423 Locked (lock-token-submitted: /"));
    write(&src, "changed\n");
    ok(&["put", "--lock-token", &token, src.to_str().unwrap(), &f]);
    assert_eq!(
        std::fs::read_to_string(root.path().join("f.txt")).unwrap(),
        "changed\n"
    );
    // Angle brackets are fine; props set/rm, cp onto the locked file, and rm all need it.
    let bracketed = format!("<{token}>");
    assert_eq!(
        davit(&["props", "set", &f, "{urn:z}c", "red"])
            .status
            .code(),
        Some(1)
    );
    ok(&[
        "props",
        "set",
        "--lock-token",
        &bracketed,
        &f,
        "{urn:z}c",
        "red",
    ]);
    ok(&["props", "rm", "--lock-token", &token, &f, "{urn:z}c"]);
    ok(&["put", src.to_str().unwrap(), &format!("{u}/g.txt")]);
    assert_eq!(
        davit(&["cp", &format!("{u}/g.txt"), "f.txt"]).status.code(),
        Some(1)
    );
    ok(&["cp", "--lock-token", &token, &format!("{u}/g.txt"), "f.txt"]);

    let dir = format!("{u}/d/");
    ok(&["mkdir", &dir]);
    let dtoken = ok(&["lock", &dir]).trim().to_owned();
    assert_eq!(
        davit(&["mkdir", &format!("{u}/d/sub")]).status.code(),
        Some(1)
    );
    ok(&["mkdir", "--lock-token", &dtoken, &format!("{u}/d/sub")]);
    ok(&[
        "mv",
        "--lock-token",
        &dtoken,
        &format!("{u}/d/sub/"),
        "/d/moved/",
    ]);
    ok(&["rm", "-r", "--lock-token", &dtoken, &dir]);
    assert!(!root.path().join("d").exists());
    // Commands that change nothing do not take the option.
    assert_eq!(
        davit(&["ls", "--lock-token", &token, &format!("{u}/")])
            .status
            .code(),
        Some(2)
    );
}

/// Regression: `davit mv URL/t/one.txt "take #2.txt"` created `take ` (the `#` began a
/// fragment) and exited 0.
#[test]
fn mv_to_a_name_with_a_hash_keeps_the_whole_name() {
    let (u, root, _state, _rt) = server();
    write(&root.path().join("t/one.txt"), "one\n");
    ok(&["mv", &format!("{u}/t/one.txt"), "take #2.txt"]);
    let names: Vec<String> = std::fs::read_dir(root.path().join("t"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["take #2.txt".to_owned()]);
    // And the URL argument of the next command names it literally too.
    let local = tempfile::tempdir().unwrap();
    let dest = local.path().join("got");
    ok(&["get", &format!("{u}/t/take #2.txt"), dest.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(dest).unwrap(), "one\n");
}

/// Regression: `davit cp URL/hi.txt "q?x=1.txt"` created `q` (the `?` began a query).
#[test]
fn cp_to_a_name_with_a_question_mark_keeps_the_whole_name() {
    let (u, root, _state, _rt) = server();
    write(&root.path().join("hi.txt"), "hi\n");
    ok(&["cp", &format!("{u}/hi.txt"), "q?x=1.txt"]);
    assert_eq!(
        std::fs::read_to_string(root.path().join("q?x=1.txt")).unwrap(),
        "hi\n"
    );
    assert!(!root.path().join("q").exists());
}

/// Regression: a literal `%` was sent raw, which Apache, nginx and rclone refuse with 400.
#[test]
fn mkdir_p_with_a_percent_sign_creates_that_name() {
    let (u, root, _state, _rt) = server();
    ok(&["mkdir", "-p", &format!("{u}/p%q/50% off/")]);
    assert!(root.path().join("p%q/50% off").is_dir());
    // An already-encoded URL, said so.
    let o = Command::new(env!("CARGO_BIN_EXE_davit"))
        .args(["mkdir", &format!("{u}/enc%20oded/")])
        .env("DAVIT_ENCODED_URLS", "1")
        .env("NETRC", "/nonexistent")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(root.path().join("enc oded").is_dir());
}

/// Regression: `get -c` after the remote file changed produced bytes that matched neither
/// version, and exited 0.
#[test]
fn get_continue_after_the_remote_changed_downloads_the_new_version() {
    let (u, root, _state, _rt) = server();
    let v1: String = (0..50_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let v2: String = (0..60_000)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect();
    write(&root.path().join("f.txt"), &v1);
    let local = tempfile::tempdir().unwrap();
    let dest = local.path().join("f.txt");
    let d = dest.to_str().unwrap();
    ok(&["get", &format!("{u}/f.txt"), d]);
    // Interrupted after 1,000 bytes; then the file changes on the server.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&dest)
        .unwrap()
        .set_len(1000)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&root.path().join("f.txt"), &v2);
    ok(&["get", "-c", &format!("{u}/f.txt"), d]);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), v2);
    // A complete file resumed is success, and stays as it is.
    ok(&["get", "-c", &format!("{u}/f.txt"), d]);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), v2);
}

/// A server on a thread of its own that accepts connections and answers each with the next
/// of `answers` (raw HTTP), or never answers once they run out; counts the requests it read.
fn canned(answers: Vec<&'static str>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let n = counter.fetch_add(1, Ordering::SeqCst);
            match answers.get(n) {
                Some(a) => {
                    let _ = s.write_all(a.as_bytes());
                }
                // Keep it open and say nothing.
                None => held.push(s),
            }
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn a_server_that_never_answers_times_out_instead_of_hanging() {
    let (url, seen) = canned(Vec::new());
    let started = std::time::Instant::now();
    let o = davit(&["ls", "--idle-timeout", "1", &format!("{url}/")]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "{err}"
    );
    // A time-out is not retried: one request, and the command is done well before a second.
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_503_with_retry_after_is_tried_again() {
    const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const LISTING: &str = "HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: 237\r\nConnection: close\r\n\r\n<?xml version=\"1.0\"?><D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/d/f.txt</D:href><D:propstat><D:prop><D:getcontentlength>3</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>";
    assert_eq!(LISTING.split("\r\n\r\n").nth(1).unwrap().len(), 237);
    let (url, seen) = canned(vec![BUSY, BUSY, LISTING]);
    let out = ok(&["stat", &format!("{url}/d/f.txt")]);
    assert!(out.lines().any(|l| l == "size: 3"), "{out}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
    // With retries off, the 503 is the answer.
    let (url, _) = canned(vec![BUSY, LISTING]);
    let o = davit(&["stat", "--retries", "0", &format!("{url}/d/f.txt")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("503"));
}

/// A raw 207 answer holding `body`.
fn ms(body: &str) -> String {
    format!(
        "HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn usage_errors_exit_2() {
    let (url, _root, _state, _rt) = server();
    ok(&["mkdir", &format!("{url}/c/")]);
    for args in [
        vec![
            "ls".to_owned(),
            "--depth".into(),
            "2".into(),
            format!("{url}/"),
        ],
        vec![
            "props".into(),
            "get".into(),
            format!("{url}/c/"),
            "{bad".into(),
        ],
        vec!["get".into(), format!("{url}/")],
        vec!["rm".into(), format!("{url}/c/")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = davit(&args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // Nothing was removed by the refused rm.
    assert_eq!(
        ok(&["ls", "--depth", "0", &format!("{url}/c/")]).trim(),
        "c/"
    );
}

#[test]
fn ls_of_a_file_url_shows_the_file() {
    let (url, root, _state, _rt) = server();
    write(&root.path().join("f.txt"), "abc");
    assert_eq!(ok(&["ls", &format!("{url}/f.txt")]), "f.txt\n");
    let long = ok(&["ls", "-l", &format!("{url}/f.txt")]);
    assert!(
        long.starts_with('-') && long.trim_end().ends_with(" f.txt"),
        "{long}"
    );
    assert!(long.contains(" 3 "), "{long}");
}

#[test]
fn ls_recursive_falls_back_to_depth_1_on_any_refusal_of_depth_infinity() {
    const REFUSALS: [&str; 2] = [
        // dufs
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        // the dav-server crate
        "HTTP/1.1 501 Not Implemented\r\nContent-Type: application/xml\r\nContent-Length: 80\r\nConnection: close\r\n\r\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>                    ",
    ];
    for refusal in REFUSALS {
        let top = leak(ms(
            r#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/d/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:response><D:href>/d/a.txt</D:href><D:propstat><D:prop><D:resourcetype/></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:response><D:href>/d/s/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#,
        ));
        let sub = leak(ms(
            r#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/d/s/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:response><D:href>/d/s/b.txt</D:href><D:propstat><D:prop><D:resourcetype/></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#,
        ));
        let (url, seen) = canned(vec![refusal, top, sub]);
        let out = ok(&["ls", "-R", &format!("{url}/d/")]);
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["a.txt", "s/", "s/b.txt"], "after {refusal:?}");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}

#[test]
fn props_get_reports_requested_properties_missing_from_the_answer() {
    // The answer leaves out {urn:z}b and adds {urn:z}extra, which was not asked for.
    let answer = leak(ms(
        r#"<D:multistatus xmlns:D="DAV:" xmlns:Z="urn:z"><D:response><D:href>/f</D:href><D:propstat><D:prop><Z:a>1</Z:a><Z:extra>x</Z:extra></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#,
    ));
    let (url, _) = canned(vec![answer]);
    let o = davit(&["props", "get", &format!("{url}/f"), "{urn:z}a", "{urn:z}b"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{urn:z}a: 1\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim(), "davit: /f {urn:z}b: not in the server's answer");
    // A PROPPATCH answered with a 207 that mentions nothing stored nothing.
    let empty = leak(ms(
        r#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/f</D:href><D:propstat><D:prop/><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#,
    ));
    let (url, _) = canned(vec![empty]);
    let o = davit(&["props", "set", &format!("{url}/f"), "{urn:z}a", "1"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("{urn:z}a: not in the server's answer"));
}

#[test]
fn stat_ls_json_and_df_show_ids_bindings_privileges_and_quota() {
    let (url, root, _state, _rt) = server();
    write(&root.path().join("f.txt"), "abc");
    std::fs::hard_link(root.path().join("f.txt"), root.path().join("g.txt")).unwrap();
    let out = ok(&["stat", &format!("{url}/f.txt")]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    assert!(field("resource_id").starts_with("urn:uuid:"));
    assert_eq!(field("parents"), "/f.txt /g.txt");
    assert_eq!(
        field("privileges"),
        "read read-current-user-privilege-set write write-properties write-content unlock"
    );
    let g = ok(&["stat", "--json", &format!("{url}/g.txt")]);
    let g: serde_json::Value = serde_json::from_str(&g).unwrap();
    assert_eq!(
        g["resource_id"].as_str(),
        Some(field("resource_id").as_str())
    );
    // ls --json carries the ids too.
    let listing = ok(&["ls", "--json", &format!("{url}/")]);
    let ids: Vec<String> = listing
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v["resource_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "two bindings of one file");
    // df: the used bytes of the root (no quota configured: the disk's free space).
    let df = ok(&["df", "--json", &format!("{url}/")]);
    let df: serde_json::Value = serde_json::from_str(&df).unwrap();
    assert_eq!(df["used"].as_u64(), Some(6), "{df}");
    assert!(df["available"].as_u64().is_some_and(|a| a > 0), "{df}");
}

#[test]
fn df_without_quota_properties_exits_3() {
    let answer = leak(ms(
        r#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/</D:href><D:propstat><D:prop><D:quota-used-bytes/><D:quota-available-bytes/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response></D:multistatus>"#,
    ));
    let (url, _) = canned(vec![answer]);
    let o = davit(&["df", &format!("{url}/")]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "used: -\navailable: -\n"
    );
}

/// `davit sync` output lines, sorted.
fn sync_lines(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ok(args).lines().map(str::to_owned).collect();
    v.sort();
    v
}

fn lines(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[test]
fn sync_up_transfers_only_what_changed_and_deletes_only_with_delete() {
    let (url, root, _state, _rt) = server();
    let local = tempfile::tempdir().unwrap();
    let l = local.path();
    std::fs::create_dir_all(l.join("sub/deep")).unwrap();
    write(&l.join("a.txt"), "a");
    write(&l.join("sub/b c.txt"), "bc");
    write(&l.join("sub/deep/d#1.txt"), "d");
    let dest = format!("{url}/mirror/");
    let ls = l.to_str().unwrap();
    assert_eq!(
        sync_lines(&["sync", ls, &dest]),
        lines(&[
            "mkdir sub/",
            "mkdir sub/deep/",
            "put a.txt",
            "put sub/b c.txt",
            "put sub/deep/d#1.txt"
        ])
    );
    let m = root.path().join("mirror");
    assert_eq!(
        std::fs::read_to_string(m.join("sub/deep/d#1.txt")).unwrap(),
        "d"
    );
    // Nothing changed: nothing is transferred.
    assert_eq!(sync_lines(&["sync", ls, &dest]), Vec::<String>::new());
    // A local change, and a change on the server (the source wins).
    write(&l.join("a.txt"), "a, longer");
    write(&m.join("sub/b c.txt"), "changed on the server");
    assert_eq!(
        sync_lines(&["sync", ls, &dest]),
        lines(&["put a.txt", "put sub/b c.txt"])
    );
    assert_eq!(
        std::fs::read_to_string(m.join("sub/b c.txt")).unwrap(),
        "bc"
    );
    // Deleted locally: kept remotely unless --delete; --dry-run changes nothing.
    std::fs::remove_dir_all(l.join("sub/deep")).unwrap();
    assert_eq!(sync_lines(&["sync", ls, &dest]), Vec::<String>::new());
    assert_eq!(
        sync_lines(&["sync", "--delete", "--dry-run", ls, &dest]),
        lines(&["delete sub/deep (dry run)"])
    );
    assert!(m.join("sub/deep").exists());
    assert_eq!(
        sync_lines(&["sync", "--delete", ls, &dest]),
        lines(&["delete sub/deep"])
    );
    assert!(!m.join("sub/deep").exists());
    // JSON: one object per change.
    write(&l.join("new.txt"), "n");
    let json = ok(&["sync", "--json", ls, &dest]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (v["op"].as_str(), v["path"].as_str(), v["size"].as_u64()),
        (Some("put"), Some("new.txt"), Some(1))
    );
}

#[test]
fn sync_down_mirrors_resumes_and_transfers_only_what_changed() {
    let (url, root, _state, _rt) = server();
    let r = root.path();
    std::fs::create_dir_all(r.join("m/sub")).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(r.join("m/big.bin"), &big).unwrap();
    write(&r.join("m/sub/s.txt"), "s");
    let local = tempfile::tempdir().unwrap();
    let l = local.path().join("copy");
    let ls = l.to_str().unwrap();
    let src = format!("{url}/m/");
    assert_eq!(
        sync_lines(&["sync", &src, ls]),
        lines(&["get big.bin", "get sub/s.txt", "mkdir sub/"])
    );
    assert_eq!(std::fs::read(l.join("big.bin")).unwrap(), big);
    assert_eq!(sync_lines(&["sync", &src, ls]), Vec::<String>::new());
    // Changed on the server: fetched again; a local edit is put back as the server has it.
    write(&r.join("m/sub/s.txt"), "s2");
    write(&l.join("big.bin"), "edited");
    assert_eq!(
        sync_lines(&["sync", &src, ls]),
        lines(&["get big.bin", "get sub/s.txt"])
    );
    assert_eq!(std::fs::read(l.join("big.bin")).unwrap(), big);
    // An interrupted run left a partial download: the next run completes it.
    std::fs::remove_file(l.join("big.bin")).unwrap();
    std::fs::write(l.join(".big.bin.davit-part"), &big[..100_000]).unwrap();
    assert_eq!(sync_lines(&["sync", &src, ls]), lines(&["get big.bin"]));
    assert_eq!(std::fs::read(l.join("big.bin")).unwrap(), big);
    assert!(!l.join(".big.bin.davit-part").exists());
    // --delete removes what the server does not have.
    write(&l.join("extra.txt"), "x");
    assert_eq!(sync_lines(&["sync", &src, ls]), Vec::<String>::new());
    assert_eq!(
        sync_lines(&["sync", "--delete", &src, ls]),
        lines(&["delete extra.txt"])
    );
    // davit offers sync-collection: the state of the last listing is kept, and a removal
    // made directly on the server's disk reaches the next run through it.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(l.join(".davit-sync-state.json")).unwrap()).unwrap();
    assert!(state["token"]
        .as_str()
        .unwrap()
        .starts_with("urn:davit:sync:"));
    assert!(state["members"]["sub/s.txt"].is_array());
    std::fs::remove_file(r.join("m/sub/s.txt")).unwrap();
    assert_eq!(
        sync_lines(&["sync", "--delete", &src, ls]),
        lines(&["delete sub/s.txt"])
    );
    // A token the server does not know: a full listing, same result.
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(l.join(".davit-sync-state.json")).unwrap()).unwrap();
    state["token"] = "urn:davit:sync:nope:1".into();
    std::fs::write(l.join(".davit-sync-state.json"), state.to_string()).unwrap();
    write(&r.join("m/sub/t.txt"), "t");
    assert_eq!(sync_lines(&["sync", &src, ls]), lines(&["get sub/t.txt"]));
    // Two URLs, or two directories: a usage error.
    let o = davit(&["sync", &src, &src]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sync_up_of_a_file_that_changes_while_it_is_sent_fails_and_is_sent_again() {
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f.txt");
    write(&file, "first");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let touched = file.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let answer = if head.starts_with("PUT") {
                // The file changes on disk while its body is on the way.
                let f = std::fs::File::options().write(true).open(&touched).unwrap();
                f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
                    .unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                s.read_exact(&mut body).unwrap();
                "HTTP/1.1 201 Created\r\nETag: \"e1\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else if head.starts_with("MKCOL") {
                "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = s.write_all(answer.as_bytes());
        }
    });
    let o = davit(&[
        "sync",
        local.path().to_str().unwrap(),
        &format!("http://{addr}/m/"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("f.txt: changed while it was uploaded"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Nothing was recorded: the next run sends it again.
    assert_eq!(davit_client::partial::uploaded(&file), None);
}

fn fails_with(args: &[&str], code: i32) -> String {
    let o = davit(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "davit {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn smaller_commands_do_what_they_say() {
    let (url, root, _state, _rt) = server();
    let r = root.path();
    write(&r.join("f.txt"), "body of f");
    // get URL - writes to standard output.
    assert_eq!(ok(&["get", &format!("{url}/f.txt"), "-"]), "body of f");
    // A JSON batch on standard input needs no --content-type.
    let o = davit_stdin(
        &["batch", "-", &format!("{url}/")],
        r#"{"operations":[{"op":"mkcol","href":"b/"}]}"#,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(r.join("b").is_dir());
    // put --json of a tree reports the collections it creates too.
    let local = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(local.path().join("t/sub")).unwrap();
    write(&local.path().join("t/sub/x.txt"), "x");
    let json = ok(&[
        "put",
        "--json",
        local.path().join("t").to_str().unwrap(),
        &format!("{url}/t"),
    ]);
    let ops: Vec<(String, String)> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["op"].as_str().unwrap().to_owned(),
                v["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("mkdir".to_owned(), format!("{url}/t/")),
            ("mkdir".to_owned(), format!("{url}/t/sub/")),
            ("put".to_owned(), format!("{url}/t/sub/x.txt")),
        ]
    );
    // props set --xml: the value's unprefixed elements stay in no namespace.
    ok(&[
        "props",
        "set",
        "--xml",
        &format!("{url}/f.txt"),
        "{urn:z}p",
        "<b>x</b>",
    ]);
    assert_eq!(
        ok(&["props", "get", &format!("{url}/f.txt"), "{urn:z}p"]),
        "{urn:z}p: <b>x</b>\n"
    );
    // ls is sorted, and -R groups by directory.
    for name in ["z.txt", "a.txt", "m/"] {
        if let Some(dir) = name.strip_suffix('/') {
            std::fs::create_dir(r.join("t").join(dir)).unwrap();
        } else {
            write(&r.join("t").join(name), "");
        }
    }
    write(&r.join("t/m/inner.txt"), "");
    assert_eq!(
        ok(&["ls", "-R", &format!("{url}/t/")]),
        "a.txt\nm/\nsub/\nz.txt\nm/inner.txt\nsub/x.txt\n"
    );
}

#[test]
fn messages_name_what_went_wrong() {
    let (url, root, _state, _rt) = server();
    write(&root.path().join("f.txt"), "f");
    write(&root.path().join("g.txt"), "g");
    // cp -n onto an existing destination says so.
    let err = fails_with(&["cp", "-n", &format!("{url}/f.txt"), "g.txt"], 1);
    assert_eq!(
        err.trim(),
        format!("davit: {url}/g.txt exists (not replaced: -n)")
    );
    // put of a directory onto a file.
    let local = tempfile::tempdir().unwrap();
    let err = fails_with(
        &[
            "put",
            local.path().to_str().unwrap(),
            &format!("{url}/f.txt"),
        ],
        1,
    );
    assert!(err.contains("f.txt is a file: a directory"), "{err}");
    // rm of something missing reports the DELETE.
    let err = fails_with(&["rm", &format!("{url}/nope")], 1);
    assert_eq!(
        err.trim(),
        format!("davit: DELETE {url}/nope: 404 Not Found (nothing to remove)")
    );
    // A lock conflict names the locked resource.
    let token = ok(&["lock", &format!("{url}/g.txt")]);
    assert!(!token.trim().is_empty());
    let err = fails_with(&["mv", &format!("{url}/f.txt"), "g.txt"], 1);
    assert!(err.contains("(lock-token-submitted: /g.txt)"), "{err}");
    // A server without a batch endpoint (here: a plain 404).
    let (plain, _) = canned(vec![
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 62\r\nConnection: close\r\n\r\n<html><head><title>404</title></head><body>no such</body></html>",
    ]);
    let o = davit_stdin(
        &["batch", "-", &format!("{plain}/")],
        r#"{"operations":[]}"#,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no such") && err.contains("no batch endpoint"),
        "{err}"
    );
    assert!(!err.contains("<html>"), "{err}");
}

#[test]
fn a_malformed_multistatus_is_said_once() {
    let answer = leak(ms(
        r#"<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/a</D:href><D:propstat><D:prop></D:response></D:multistatus>"#,
    ));
    let (url, _) = canned(vec![answer]);
    let err = fails_with(&["stat", &format!("{url}/a")], 1);
    assert_eq!(err.matches("ill-formed document").count(), 1, "{err}");
    assert!(
        err.starts_with("davit: unreadable answer from the server: malformed XML"),
        "{err}"
    );
}

#[test]
fn completions_and_the_manual_page_cover_every_command() {
    // The bash script is valid bash and completes the subcommands.
    let bash = ok(&["completions", "bash"]);
    let check = Command::new("bash")
        .args(["-n", "-c", &bash])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for sub in ["serve", "sync", "df", "ls", "props"] {
        assert!(
            bash.split_whitespace().any(|w| w == sub),
            "bash completes {sub}"
        );
    }
    assert!(ok(&["completions", "zsh"]).starts_with("#compdef davit"));
    assert!(ok(&["completions", "fish"]).contains("complete -c davit"));
    // The manual page: a roff document with its sections, listing every subcommand.
    let man = ok(&["man"]);
    let sections: Vec<&str> = man.lines().filter_map(|l| l.strip_prefix(".SH ")).collect();
    assert_eq!(
        sections,
        [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "SUBCOMMANDS",
            "VERSION"
        ]
    );
    assert!(man.lines().any(|l| l.starts_with(".TH davit 1")));
    for sub in ["serve", "sync", "df", "completions", "man"] {
        assert!(
            man.lines().any(|l| l == format!("davit\\-{sub}(1)")),
            "man lists {sub}"
        );
    }
    assert_eq!(davit(&["completions", "tcsh"]).status.code(), Some(2));
    // `man --dir`: a page per subcommand, each with its own options (what the package installs).
    let dir = tempfile::tempdir().unwrap();
    ok(&["man", "--dir", dir.path().to_str().unwrap()]);
    let serve = std::fs::read_to_string(dir.path().join("davit-serve.1")).unwrap();
    assert!(serve.lines().any(|l| l.starts_with(".TH davit-serve 1")));
    for flag in ["admin\\-listen", "log\\-format", "config"] {
        assert!(
            serve.lines().any(|l| l.contains(&format!("\\-\\-{flag}"))),
            "davit-serve(1) has --{flag}"
        );
    }
    for page in [
        "davit.1",
        "davit-check-config.1",
        "davit-sync.1",
        "davit-props-set.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
}

/// `put --continue` over a connection that breaks: the first run fails part-way and keeps the
/// upload's URL in its state file; the second sends only the rest, and the file is whole.
#[test]
fn put_continue_resumes_an_upload_whose_connection_broke() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (u, root, _state, rt) = server();
    let upstream = u.trim_start_matches("http://").to_owned();
    // A proxy in front of the server that cuts a connection once the client has sent `cut`
    // bytes through it (0: never).
    let cut = Arc::new(AtomicU64::new(20 << 20));
    let proxy = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let cut_at = cut.clone();
    rt.spawn(async move {
        loop {
            let Ok((client, _)) = proxy.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let limit = cut_at.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut sent = 0u64;
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent += n as u64;
                    if limit > 0 && sent >= limit {
                        break;
                    }
                }
                // Both ways shut: the client sees the connection break mid-body.
                down.abort();
                drop(sw);
            });
        }
    });
    let local = tempfile::tempdir().unwrap();
    let xdg = tempfile::tempdir().unwrap();
    let src = local.path().join("big file.bin");
    let body: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &body).unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_davit"))
            .args([
                "put",
                "--continue",
                src.to_str().unwrap(),
                &format!("{proxy_url}/big file.bin"),
            ])
            .env("XDG_STATE_HOME", xdg.path())
            .env("NETRC", "/nonexistent")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(!first.status.success(), "the broken upload must fail");
    assert!(!root.path().join("big file.bin").exists());
    let state = std::fs::read_to_string(xdg.path().join("davit/uploads.json")).unwrap();
    assert!(state.contains("/.davit/uploads/"), "{state}");

    cut.store(0, Ordering::SeqCst);
    let second = run();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    let at: u64 = stderr
        .split("resuming /big%20file.bin at byte ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume reported: {stderr}"));
    assert!(at > 0 && at < body.len() as u64, "resumed at {at}");
    assert!(std::fs::read(root.path().join("big file.bin")).unwrap() == body);
    let state = std::fs::read_to_string(xdg.path().join("davit/uploads.json")).unwrap();
    assert_eq!(state.trim(), "{}");
}

/// A TCP proxy on its own threads in front of a server whose port can change (a restarted
/// `davit serve` listens elsewhere; the client keeps the proxy's URL). While `slow`, it
/// passes the client's bytes on at about 60 MB/s; `sent` counts them.
struct Proxy {
    port: u16,
    upstream: std::sync::Arc<std::sync::atomic::AtomicU16>,
    slow: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            upstream: Arc::new(AtomicU16::new(upstream)),
            slow: Arc::new(AtomicBool::new(true)),
            sent: Arc::new(AtomicU64::new(0)),
        };
        let (upstream, slow, sent) = (
            proxy.upstream.clone(),
            proxy.slow.clone(),
            proxy.sent.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream.load(Ordering::SeqCst)))
                else {
                    continue;
                };
                let (slow, sent) = (slow.clone(), sent.clone());
                std::thread::spawn(move || {
                    let (mut from_server, mut to_client) =
                        (server.try_clone().unwrap(), client.try_clone().unwrap());
                    // A server that dies closes the client's connection too.
                    let down = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from_server, &mut to_client);
                        let _ = to_client.shutdown(Shutdown::Both);
                        let _ = from_server.shutdown(Shutdown::Both);
                    });
                    let (mut from_client, mut to_server) = (client, server);
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match from_client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if to_server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent.fetch_add(n as u64, Ordering::SeqCst);
                        if slow.load(Ordering::SeqCst) {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                    }
                    let _ = to_server.shutdown(Shutdown::Both);
                    let _ = from_client.shutdown(Shutdown::Both);
                    let _ = down.join();
                });
            }
        });
        proxy
    }
}

/// `put --continue` of 200 MiB to the real `davit serve`, killed (SIGKILL) mid-upload and
/// started again on the same directory: the second run asks where the upload stands, sends
/// only the rest, and the file is the source, byte for byte.
#[test]
fn put_continue_resumes_after_the_server_is_killed() {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    const LEN: usize = 200 << 20;
    let root = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let xdg = tempfile::tempdir().unwrap();
    let src = local.path().join("big.bin");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let body: Vec<u8> = (0..LEN / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    std::fs::write(&src, &body).unwrap();
    let server = common::Server::start(root.path(), &logs.path().join("first.log"));
    let proxy = Proxy::start(server.port);
    let url = format!("http://127.0.0.1:{}/big.bin", proxy.port);
    let command = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_davit"));
        c.args(["put", "--continue", src.to_str().unwrap(), &url])
            .env("XDG_STATE_HOME", xdg.path())
            .env("NETRC", "/nonexistent")
            .env_remove("DAVIT_USER")
            .env_remove("DAVIT_PASSWORD");
        c
    };
    let mut first = command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once 40 MiB are in the upload's file.
    let uploads = root.path().join(".davit/uploads");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let staged = std::fs::read_dir(&uploads)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        if staged >= 40 << 20 {
            break;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the upload ended before the kill"
        );
        assert!(Instant::now() < deadline, "the upload never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the client did not notice");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "the interrupted run must fail");
    assert!(
        !root.path().join("big.bin").exists(),
        "nothing at the target"
    );

    // The same command against the restarted server sends only what it lacks.
    let server = common::Server::start(root.path(), &logs.path().join("second.log"));
    proxy.upstream.store(server.port, Ordering::SeqCst);
    proxy.slow.store(false, Ordering::SeqCst);
    proxy.sent.store(0, Ordering::SeqCst);
    let second = command().output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    let at: u64 = stderr
        .split("resuming /big.bin at byte ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume reported: {stderr}"));
    assert!(at >= 40 << 20 && at < LEN as u64, "resumed at {at}");
    let sent = proxy.sent.load(Ordering::SeqCst);
    assert!(
        sent >= LEN as u64 - at && sent < LEN as u64 - at + (64 << 10),
        "sent {sent} bytes to resume at {at}"
    );
    let stored = std::fs::read(root.path().join("big.bin")).unwrap();
    assert_eq!(
        Sha256::digest(&stored),
        Sha256::digest(&body),
        "the stored file is the source"
    );
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(server);
}
