//! No data lost: `kill -9` of the real `davit` binary while many clients upload (some slowly,
//! so that bodies are mid-flight), overwrite, move, copy, delete and change properties, then a
//! restart on the same root, three times over.
//!
//! Every body written is self-describing (a header with a version id, the length and a hash of
//! the rest), so any file found anywhere can be checked on its own: complete and uncorrupted.
//! Each client works alone in its own collection and keeps a model of it (files with their
//! version, collections, dead properties); at most one request per client is in flight at the
//! kill, so after the restart its collection must equal the model before or after that
//! request (a DELETE of a collection may also stop part-way: what remains is unchanged). One
//! client works inside a collection under a depth-infinity lock, with the token. Around them,
//! resources nobody touches keep their properties, and the locks taken at the start survive,
//! are still reported and still enforced.

mod common;

use common::{child, status_code, try_request, z_props, Resp, Server};
use davit_proto::xml::{parse_document, Limits};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 5;
const ROUNDS: usize = 3;
const PROP_NAMES: [&str; 2] = ["tag", "note"];

// ---- self-describing bodies ----

fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `davit-crash <version> <len> <hash>\n` followed by `len` bytes of filler.
fn body(version: &str, len: usize) -> Vec<u8> {
    let mut x = fnv(version.as_bytes()) | 1;
    let rest: Vec<u8> = (0..len)
        .map(|i| {
            if i % 64 == 63 {
                return b'\n';
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect();
    let mut out = format!("davit-crash {version} {len} {:016x}\n", fnv(&rest)).into_bytes();
    out.extend_from_slice(&rest);
    out
}

/// The version a file holds, or why it is not a whole, uncorrupted body.
fn version_of(data: &[u8]) -> Result<String, String> {
    let nl = data
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("no header line")?;
    let head = std::str::from_utf8(&data[..nl]).map_err(|_| "header not UTF-8")?;
    let f: Vec<&str> = head.split(' ').collect();
    if f.len() != 4 || f[0] != "davit-crash" {
        return Err(format!("bad header {head:?}"));
    }
    let rest = &data[nl + 1..];
    let len: usize = f[2].parse().map_err(|_| "bad length")?;
    if rest.len() != len {
        return Err(format!(
            "{}: {} bytes of {len} (truncated or overlong)",
            f[1],
            rest.len()
        ));
    }
    if format!("{:016x}", fnv(rest)) != f[3] {
        return Err(format!("{}: content hash mismatch", f[1]));
    }
    Ok(f[1].to_owned())
}

// ---- the model ----

/// What a client's collection holds: paths relative to the server root, no slashes at the ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct State {
    files: BTreeMap<String, String>,
    dirs: BTreeSet<String>,
    props: BTreeMap<String, BTreeMap<String, String>>,
}

fn under(p: &str, root: &str) -> bool {
    p == root || p.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

fn moved(p: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &p[from.len()..])
}

impl State {
    fn exists(&self, p: &str) -> bool {
        self.files.contains_key(p) || self.dirs.contains(p)
    }

    fn remove_tree(&mut self, p: &str) {
        self.files.retain(|k, _| !under(k, p));
        self.dirs.retain(|k| !under(k, p));
        self.props.retain(|k, _| !under(k, p));
    }

    fn copy_tree(&mut self, from: &str, to: &str) {
        let files: Vec<_> = self
            .files
            .iter()
            .filter(|(k, _)| under(k, from))
            .map(|(k, v)| (moved(k, from, to), v.clone()))
            .collect();
        let dirs: Vec<_> = self
            .dirs
            .iter()
            .filter(|k| under(k, from))
            .map(|k| moved(k, from, to))
            .collect();
        let props: Vec<_> = self
            .props
            .iter()
            .filter(|(k, _)| under(k, from))
            .map(|(k, v)| (moved(k, from, to), v.clone()))
            .collect();
        self.files.extend(files);
        self.dirs.extend(dirs);
        self.props.extend(props);
    }

    /// True when `self` is what a DELETE of `gone` may leave of `before` after a crash: some
    /// of the tree removed, the rest unchanged (properties included).
    fn partial_delete_of(&self, before: &State, gone: &str) -> bool {
        let mut rest = self.clone();
        rest.remove_tree(gone);
        let mut outside = before.clone();
        outside.remove_tree(gone);
        rest == outside
            && self
                .files
                .iter()
                .all(|(k, v)| before.files.get(k) == Some(v))
            && self.dirs.is_subset(&before.dirs)
            && self
                .props
                .iter()
                .all(|(k, v)| before.props.get(k) == Some(v))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        path: String,
        version: String,
        len: usize,
        slow: bool,
    },
    Mkcol(String),
    Proppatch {
        path: String,
        name: &'static str,
        value: String,
    },
    CopyMove {
        is_move: bool,
        from: String,
        to: String,
        overwrite: bool,
    },
    Delete(String),
}

impl Op {
    /// The state after the operation, and the status it must be answered with.
    fn apply(&self, s: &State) -> (State, u16) {
        let mut n = s.clone();
        let status = match self {
            Op::Put { path, version, .. } => {
                let existed = n.files.insert(path.clone(), version.clone()).is_some();
                if existed {
                    204
                } else {
                    n.props.remove(path);
                    201
                }
            }
            Op::Mkcol(p) => {
                n.dirs.insert(p.clone());
                n.props.remove(p);
                201
            }
            Op::Proppatch { path, name, value } => {
                n.props
                    .entry(path.clone())
                    .or_default()
                    .insert((*name).to_owned(), value.clone());
                207
            }
            Op::CopyMove {
                is_move,
                from,
                to,
                overwrite,
            } => {
                let existed = n.exists(to);
                if existed && !overwrite {
                    return (n, 412);
                }
                n.remove_tree(to);
                n.copy_tree(from, to);
                if *is_move {
                    n.remove_tree(from);
                }
                if existed {
                    204
                } else {
                    201
                }
            }
            Op::Delete(p) => {
                n.remove_tree(p);
                204
            }
        };
        (n, status)
    }
}

// ---- HTTP ----

fn href(rel: &str, dir: bool) -> String {
    if dir {
        format!("/{rel}/")
    } else {
        format!("/{rel}")
    }
}

/// A PUT whose body goes out in pieces with pauses, so that a kill finds it mid-upload.
fn slow_put(port: u16, path: &str, headers: &[(&str, &str)], data: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(common::IO_TIMEOUT))?;
    s.set_write_timeout(Some(common::IO_TIMEOUT))?;
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        data.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    for piece in data.chunks(32 * 1024) {
        s.write_all(piece)?;
        std::thread::sleep(Duration::from_millis(4));
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    common::parse_response(&raw)
}

fn proppatch_body(name: &str, value: &str) -> String {
    format!(
        r#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:{name}>{value}</Z:{name}></D:prop></D:set></D:propertyupdate>"#
    )
}

/// Sends `op`; `Ok(status)` when answered (a 207 to PROPPATCH counts only if the property was
/// set), `Err` when the server was gone.
fn send(port: u16, op: &Op, dirs: &BTreeSet<String>, token: Option<&str>) -> std::io::Result<u16> {
    let iff = token.map(|t| format!("(<{t}>)"));
    let mut h: Vec<(&str, &str)> = Vec::new();
    if let Some(i) = &iff {
        h.push(("If", i));
    }
    let r = match op {
        Op::Put {
            path,
            version,
            len,
            slow,
        } => {
            let data = body(version, *len);
            if *slow {
                slow_put(port, &href(path, false), &h, &data)?
            } else {
                try_request(port, "PUT", &href(path, false), &h, &data)?
            }
        }
        Op::Mkcol(p) => try_request(port, "MKCOL", &href(p, true), &h, b"")?,
        Op::Proppatch { path, name, value } => {
            h.push(("Content-Type", "application/xml"));
            let r = try_request(
                port,
                "PROPPATCH",
                &href(path, dirs.contains(path)),
                &h,
                proppatch_body(name, value).as_bytes(),
            )?;
            if r.status == 207 && !r.text().contains("HTTP/1.1 200") {
                return Ok(0);
            }
            r
        }
        Op::CopyMove {
            is_move,
            from,
            to,
            overwrite,
        } => {
            let dir = dirs.contains(from);
            let dest = format!("http://127.0.0.1:{port}{}", href(to, dir));
            h.push(("Destination", &dest));
            h.push(("Overwrite", if *overwrite { "T" } else { "F" }));
            let m = if *is_move { "MOVE" } else { "COPY" };
            try_request(port, m, &href(from, dir), &h, b"")?
        }
        Op::Delete(p) => try_request(port, "DELETE", &href(p, dirs.contains(p)), &h, b"")?,
    };
    Ok(r.status)
}

// ---- clients ----

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn fresh(client: &str) -> String {
    format!("{client}.{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// A random operation that makes sense on `s` (rooted at `base`).
fn choose(rng: &mut Rng, s: &State, base: &str, client: &str) -> Op {
    let dirs: Vec<&String> = s.dirs.iter().collect();
    let members: Vec<String> = s
        .files
        .keys()
        .chain(s.dirs.iter().filter(|d| d.as_str() != base))
        .cloned()
        .collect();
    loop {
        let roll = rng.below(100);
        if roll < 30 || members.is_empty() {
            let dir = rng.pick(&dirs);
            let path = format!("{dir}/f{}.txt", rng.below(5));
            if s.dirs.contains(&path) {
                continue;
            }
            let slow = rng.below(3) == 0;
            let len = if slow {
                256 * 1024 + rng.below(768 * 1024)
            } else {
                rng.below(8 * 1024)
            };
            return Op::Put {
                path,
                version: fresh(client),
                len,
                slow,
            };
        }
        let target = rng.pick(&members).clone();
        match roll {
            30..=39 => {
                let dir = rng.pick(&dirs);
                if dir.matches('/').count() > 3 {
                    continue;
                }
                let p = format!("{dir}/d{}", rng.below(3));
                if s.exists(&p) {
                    continue;
                }
                return Op::Mkcol(p);
            }
            40..=57 => {
                return Op::Proppatch {
                    path: if rng.below(4) == 0 {
                        (*rng.pick(&dirs)).clone()
                    } else {
                        target
                    },
                    name: PROP_NAMES[rng.below(PROP_NAMES.len())],
                    value: fresh(client),
                }
            }
            58..=89 => {
                let is_dir = s.dirs.contains(&target);
                let parent = rng.pick(&dirs);
                let name = if is_dir {
                    format!("d{}", rng.below(3))
                } else {
                    format!("f{}.txt", rng.below(5))
                };
                let to = format!("{parent}/{name}");
                if to == target
                    || under(&to, &target)
                    || under(&target, &to)
                    || to.matches('/').count() > 5
                    || s.dirs.contains(&to) != is_dir && s.exists(&to)
                {
                    continue;
                }
                return Op::CopyMove {
                    is_move: roll < 74,
                    from: target,
                    to,
                    overwrite: rng.below(3) != 0,
                };
            }
            _ => return Op::Delete(target),
        }
    }
}

/// What a client did in one round: the model before its last operation, and that operation
/// when the kill left it unanswered.
struct Outcome {
    state: State,
    in_flight: Option<Op>,
    done: usize,
}

#[allow(clippy::too_many_arguments)]
fn run_client(
    port: u16,
    client: String,
    base: String,
    mut state: State,
    token: Option<String>,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> Result<Outcome, String> {
    let mut rng = Rng(seed | 1);
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        let op = choose(&mut rng, &state, &base, &client);
        let (next, want) = op.apply(&state);
        match send(port, &op, &state.dirs, token.as_deref()) {
            Ok(got) if got == want => {
                state = next;
                done += 1;
            }
            Ok(got) => {
                return Err(format!(
                    "{client}: {op:?} answered {got}, expected {want} (after {done} operations)"
                ))
            }
            Err(_) => {
                return Ok(Outcome {
                    state,
                    in_flight: Some(op),
                    done,
                })
            }
        }
    }
    Ok(Outcome {
        state,
        in_flight: None,
        done,
    })
}

// ---- observing the server ----

fn rel_of(href: &str) -> String {
    href.trim_matches('/').to_owned()
}

/// The state of `base` as the restarted server shows it: files and collections from disk,
/// each file checked whole; dead properties by PROPFIND.
fn observe(srv: &Server, root: &Path, base: &str) -> Result<State, String> {
    let mut s = State::default();
    let mut pending = vec![base.to_owned()];
    while let Some(dir) = pending.pop() {
        s.dirs.insert(dir.clone());
        for e in std::fs::read_dir(root.join(&dir)).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            let rel = format!("{dir}/{}", e.file_name().to_string_lossy());
            if e.file_type().map_err(|e| e.to_string())?.is_dir() {
                pending.push(rel);
            } else {
                let data = std::fs::read(e.path()).map_err(|e| e.to_string())?;
                let v = version_of(&data).map_err(|why| format!("{rel}: {why}"))?;
                s.files.insert(rel, v);
            }
        }
    }
    for dir in s.dirs.clone() {
        for ((h, name), value) in z_props(srv, &href(&dir, true), &PROP_NAMES) {
            s.props.entry(rel_of(&h)).or_default().insert(name, value);
        }
    }
    Ok(s)
}

fn lock(srv: &Server, path: &str, scope: &str, depth: &str) -> String {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>crash test</D:owner></D:lockinfo>"#
    );
    let r = srv.request(
        "LOCK",
        path,
        &[
            ("Depth", depth),
            ("Timeout", "Second-86400"),
            ("Content-Type", "application/xml"),
        ],
        body.as_bytes(),
    );
    assert!(
        r.status == 200 || r.status == 201,
        "LOCK {path}: {}",
        r.text()
    );
    r.header("lock-token")
        .expect("Lock-Token")
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned()
}

/// The lock tokens PROPFIND reports in `DAV:lockdiscovery` of `path`.
fn discovered_tokens(srv: &Server, path: &str) -> BTreeSet<String> {
    let r = srv.request(
        "PROPFIND",
        path,
        &[("Depth", "0"), ("Content-Type", "application/xml")],
        br#"<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#,
    );
    assert_eq!(r.status, 207, "PROPFIND {path}: {}", r.text());
    let root = parse_document(&r.body, &Limits::default()).expect("207 parses");
    let resp = child(&root, "response");
    let ps = child(resp, "propstat");
    assert_eq!(status_code(&child(ps, "status").text()), 200);
    child(child(ps, "prop"), "lockdiscovery")
        .elements()
        .filter(|e| e.name.is_dav("activelock"))
        .map(|a| {
            child(child(a, "locktoken"), "href")
                .text()
                .trim()
                .to_owned()
        })
        .collect()
}

/// Names anywhere under `dir` that look like davit's temporary files.
fn debris(dir: &Path, state: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p == state {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".davit") || name.starts_with("put-") || name.contains(".tmp") {
            out.push(p.display().to_string());
        }
        if p.is_dir() {
            debris(&p, state, out);
        }
    }
}

fn put_ok(srv: &Server, path: &str, version: &str) {
    let r = srv.request("PUT", path, &[], &body(version, 300));
    assert!(
        r.status == 201 || r.status == 204,
        "PUT {path}: {}",
        r.status
    );
}

fn names(dir: &Path) -> Vec<String> {
    common::entries(dir)
}

#[test]
fn kill_9_during_uploads_moves_and_copies_loses_nothing() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let logs = tempfile::tempdir().expect("log dir");
    std::fs::create_dir_all(&root).expect("mkdir root");
    let state_dir = root.join(".davit");
    let mut srv = Server::start(&root, &logs.path().join("start-0.log"));

    // Resources nobody touches once set up: their properties must come through every crash.
    assert_eq!(srv.request("MKCOL", "/still/", &[], b"").status, 201);
    assert_eq!(srv.request("MKCOL", "/still/sub/", &[], b"").status, 201);
    for i in 0..4 {
        put_ok(&srv, &format!("/still/s{i}.txt"), &format!("still.{i}"));
        common::proppatch(
            &srv,
            &format!("/still/s{i}.txt"),
            &[("tag", &format!("s{i}"))],
            &[],
        );
    }
    put_ok(&srv, "/still/sub/deep.txt", "still.deep");
    common::proppatch(&srv, "/still/", &[("tag", "still-dir"), ("note", "n")], &[]);
    common::proppatch(&srv, "/still/sub/", &[("note", "sub-dir")], &[]);
    common::proppatch(&srv, "/still/sub/deep.txt", &[("tag", "deep")], &[]);

    // Locks: a depth-infinity exclusive lock on a collection one client works in (with the
    // token), a depth-0 exclusive lock on a file, two shared depth-0 locks on a collection.
    assert_eq!(srv.request("MKCOL", "/locked/", &[], b"").status, 201);
    assert_eq!(srv.request("MKCOL", "/shared/", &[], b"").status, 201);
    put_ok(&srv, "/lk-file.txt", "lk.0");
    common::proppatch(&srv, "/lk-file.txt", &[("tag", "locked file")], &[]);
    let tok_tree = lock(&srv, "/locked/", "exclusive", "infinity");
    let tok_file = lock(&srv, "/lk-file.txt", "exclusive", "0");
    let tok_shared = [
        lock(&srv, "/shared/", "shared", "0"),
        lock(&srv, "/shared/", "shared", "0"),
    ];
    let mut shared_files: BTreeMap<String, String> = BTreeMap::new();

    // Each client's collection, seeded with files and properties.
    let mut models: Vec<(String, State, Option<String>)> = Vec::new();
    for c in 0..CLIENTS {
        let base = format!("w{c}");
        assert_eq!(
            srv.request("MKCOL", &href(&base, true), &[], b"").status,
            201
        );
        let mut s = State::default();
        s.dirs.insert(base.clone());
        models.push((base, s, None));
    }
    models.push((
        "locked".to_owned(),
        {
            let mut s = State::default();
            s.dirs.insert("locked".into());
            s
        },
        Some(tok_tree.clone()),
    ));
    for (i, (base, s, token)) in models.iter_mut().enumerate() {
        let mut rng = Rng(0xfeed + i as u64);
        for k in 0..6 {
            let op = if k == 3 {
                Op::Mkcol(format!("{base}/d0"))
            } else {
                let dir = if k > 3 {
                    format!("{base}/d0")
                } else {
                    base.clone()
                };
                Op::Put {
                    path: format!("{dir}/f{k}.txt"),
                    version: fresh(&format!("seed{i}")),
                    len: 500 + rng.below(3000),
                    slow: false,
                }
            };
            let (next, want) = op.apply(s);
            assert_eq!(
                send(srv.port, &op, &s.dirs, token.as_deref()).expect("seed"),
                want
            );
            *s = next;
        }
        for p in [
            format!("{base}/f0.txt"),
            format!("{base}/d0"),
            format!("{base}/d0/f4.txt"),
        ] {
            let op = Op::Proppatch {
                path: p,
                name: "tag",
                value: fresh("seedprop"),
            };
            let (next, want) = op.apply(s);
            assert_eq!(
                send(srv.port, &op, &s.dirs, token.as_deref()).expect("seed"),
                want
            );
            *s = next;
        }
    }
    let still_before = observe(&srv, &root, "still").expect("still");
    assert_eq!(still_before.files.len(), 5);
    assert_eq!(still_before.props.len(), 7, "{still_before:?}");

    let mut total_done = 0;
    let (mut uploads_cut, mut journals_cut) = (0, 0);
    let mut interrupted = Vec::new();
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = models
            .iter()
            .enumerate()
            .map(|(i, (base, s, token))| {
                let (port, base, s, token, stop) = (
                    srv.port,
                    base.clone(),
                    s.clone(),
                    token.clone(),
                    stop.clone(),
                );
                let seed = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul((round * 31 + i + 1) as u64)
                    ^ u64::from(started.elapsed().subsec_nanos());
                std::thread::spawn(move || {
                    run_client(port, format!("c{i}r{round}"), base, s, token, seed, stop)
                })
            })
            .collect();
        // A random-ish moment: long enough for a few dozen operations each.
        let pause = 700 + (started.elapsed().subsec_nanos() % 900) as u64;
        std::thread::sleep(Duration::from_millis(pause));
        srv.kill();
        stop.store(true, Ordering::Relaxed);
        uploads_cut += names(&state_dir.join("tmp")).len();
        journals_cut += names(&state_dir.join("journal")).len();
        let outcomes: Vec<Outcome> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("client thread")
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();

        // What the crash left in the state directory is settled at the restart.
        srv = Server::start(&root, &logs.path().join(format!("start-{}.log", round + 1)));
        assert_eq!(
            names(&state_dir.join("tmp")),
            Vec::<String>::new(),
            "tmp emptied"
        );
        assert_eq!(
            names(&state_dir.join("journal")),
            Vec::<String>::new(),
            "journals settled"
        );
        assert_eq!(
            names(&state_dir.join("stash")),
            Vec::<String>::new(),
            "stashes settled"
        );
        let mut junk = Vec::new();
        debris(&root, &state_dir, &mut junk);
        assert_eq!(
            junk,
            Vec::<String>::new(),
            "temporary files left in the tree"
        );

        for ((base, model, _), o) in models.iter_mut().zip(outcomes) {
            total_done += o.done;
            let seen = observe(&srv, &root, base).unwrap_or_else(|e| panic!("round {round}: {e}"));
            let ok = match &o.in_flight {
                None => seen == o.state,
                Some(op) => {
                    let (after, _) = op.apply(&o.state);
                    seen == o.state
                        || seen == after
                        || matches!(op, Op::Delete(p) if seen.partial_delete_of(&o.state, p))
                }
            };
            assert!(
                ok,
                "round {round}, {base}: the restarted server shows neither the state before \
                 nor after the interrupted {:?}\nseen:   {seen:?}\nbefore: {:?}",
                o.in_flight, o.state
            );
            if let Some(op) = o.in_flight {
                interrupted.push(op);
            }
            *model = seen;
        }

        // Untouched resources: the same files and the same properties.
        assert_eq!(observe(&srv, &root, "still").expect("still"), still_before);
        // Locks: still there, still reported, still enforced.
        assert_eq!(
            discovered_tokens(&srv, "/locked/"),
            BTreeSet::from([tok_tree.clone()])
        );
        assert_eq!(
            discovered_tokens(&srv, "/lk-file.txt"),
            BTreeSet::from([tok_file.clone()])
        );
        assert_eq!(
            discovered_tokens(&srv, "/shared/"),
            tok_shared.iter().cloned().collect::<BTreeSet<_>>()
        );
        let v = format!("lk.{}", round + 1);
        let r = srv.request("PUT", "/lk-file.txt", &[], &body(&v, 100));
        assert_eq!(r.status, 423, "PUT without the token");
        let r = srv.request("PUT", "/locked/intruder.txt", &[], &body("x", 10));
        assert_eq!(r.status, 423, "PUT into the locked tree without the token");
        let r = srv.request("DELETE", "/locked/", &[], b"");
        assert_eq!(r.status, 423, "DELETE of the locked tree without the token");
        let name = format!("/shared/s{round}.txt");
        let r = srv.request("PUT", &name, &[], &body(&v, 100));
        assert_eq!(
            r.status, 423,
            "PUT into a shared-locked collection without a token"
        );
        let iff = format!("(<{tok_file}>)");
        let r = srv.request("PUT", "/lk-file.txt", &[("If", &iff)], &body(&v, 100));
        assert_eq!(r.status, 204, "PUT with the token");
        // The lock is on the collection: the token is submitted for it (a tagged list).
        let iff = format!(
            "<http://127.0.0.1:{}/shared/> (<{}>)",
            srv.port,
            tok_shared[round % 2]
        );
        let r = srv.request("PUT", &name, &[("If", &iff)], &body(&v, 100));
        assert_eq!(r.status, 201, "PUT with one of the shared tokens");
        shared_files.insert(name, v.clone());
        let lk = std::fs::read(root.join("lk-file.txt")).expect("lk-file");
        assert_eq!(version_of(&lk).as_deref(), Ok(v.as_str()));
        let props = z_props(&srv, "/", &PROP_NAMES);
        assert_eq!(
            props
                .get(&("/lk-file.txt".to_owned(), "tag".to_owned()))
                .map(String::as_str),
            Some("locked file")
        );
    }

    // Every file anywhere is a whole body that was written.
    let all = common::tree(&root);
    for (path, data) in &all {
        if !path.ends_with('/') {
            if let Err(why) = version_of(data) {
                panic!("{path}: {why}");
            }
        }
    }
    for (name, v) in &shared_files {
        let data = &all[name.trim_start_matches('/')];
        assert_eq!(version_of(data).as_deref(), Ok(v.as_str()));
    }
    // The test did real work: many operations, and the kills interrupted some of them.
    assert!(total_done >= 100, "only {total_done} operations completed");
    assert!(
        interrupted.len() >= ROUNDS,
        "only {} operations were interrupted",
        interrupted.len()
    );
    assert!(uploads_cut > 0, "no kill found an upload in progress");
    eprintln!(
        "{total_done} operations answered; at the kills {uploads_cut} uploads in progress, \
         {journals_cut} journaled operations unsettled; {} interrupted: {:?}; {:.1} s",
        interrupted.len(),
        interrupted
            .iter()
            .map(|o| match o {
                Op::Put { slow: true, .. } => "slow PUT",
                Op::Put { .. } => "PUT",
                Op::Mkcol(_) => "MKCOL",
                Op::Proppatch { .. } => "PROPPATCH",
                Op::CopyMove { is_move: true, .. } => "MOVE",
                Op::CopyMove { .. } => "COPY",
                Op::Delete(_) => "DELETE",
            })
            .collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
}
