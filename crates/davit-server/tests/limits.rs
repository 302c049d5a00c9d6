//! Connection and request limits from `DavConfig`: stalled bodies, oversized heads, too many
//! headers, the connection cap, silent and idle connections, and the drain at shutdown. Each
//! refusal is a clear 4xx (or a wait, or a close), and the server keeps serving.

#[path = "server/common.rs"]
#[allow(dead_code)]
mod common;

use common::*;
use davit_server::DavConfig;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_dropped_with_408_and_leaves_nothing() {
    let s = TestServer::with_config(DavConfig {
        body_idle_timeout_secs: 1,
        ..Default::default()
    })
    .await;
    s.put("/f", "old").await;
    for (method, path) in [("PUT", "/f"), ("PROPFIND", "/")] {
        let mut c = s.connect().await;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a start"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let out = read_to_close(&mut c).await;
        let r = RawResp::parse(&out);
        assert_eq!(r.status, 408, "{method}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{method} took too long"
        );
    }
    assert_eq!(&s.get("/f").await.body[..], b"old");
    assert!(std::fs::read_dir(s.state_dir().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

/// Sends a PUT of `total` bytes to `path`, `chunk` bytes every 300 ms, and returns what the
/// server answered. A write the server refuses (it closed the connection) ends the sending.
async fn paced_put(s: &TestServer, path: &str, total: usize, chunk: usize) -> RawResp {
    let mut c = s.connect().await;
    let head = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n");
    c.write_all(head.as_bytes())
        .await
        .expect("the head is sent");
    let mut sent = 0;
    while sent < total {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = chunk.min(total - sent);
        if c.write_all(&vec![b'x'; n]).await.is_err() {
            break;
        }
        sent += n;
    }
    RawResp::parse(&read_until(&mut c, b"\r\n\r\n").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_dropped_once_it_falls_behind_the_minimum_rate() {
    let s = TestServer::with_config(DavConfig {
        body_idle_timeout_secs: 1,
        body_min_rate: 100,
        ..Default::default()
    })
    .await;
    s.put("/f", "old").await;
    // 10 bytes every 300 ms is never silent for the idle time-out, but averages 33 bytes/s:
    // behind 1 s + 1 s per 100 bytes after about 1.5 s.
    let started = Instant::now();
    let r = paced_put(&s, "/f", 10_000, 10).await;
    assert_eq!(r.status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(&s.get("/f").await.body[..], b"old");
    assert!(std::fs::read_dir(s.state_dir().join("tmp"))
        .unwrap()
        .next()
        .is_none());
    // The same pauses carrying 1,000 bytes each (3,333 bytes/s) keep up, and the upload lands.
    let r = paced_put(&s, "/f", 5_000, 1_000).await;
    assert_eq!(r.status, 204);
    assert_eq!(s.get("/f").await.body.len(), 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_too_many_headers_are_refused() {
    let s = TestServer::with_config(DavConfig {
        max_header_bytes: 16 * 1024,
        max_headers: 20,
        ..Default::default()
    })
    .await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let r = s.raw_resp(big.as_bytes()).await;
    assert_eq!(r.status, 431);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let r = s.raw_resp(many.as_bytes()).await;
    assert_eq!(r.status, 431);
    // Within the limits all is well.
    assert_eq!(s.get("/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let s = TestServer::with_config(DavConfig {
        max_connections: 2,
        ..Default::default()
    })
    .await;
    // Two idle keep-alive connections take both slots.
    let mut a = s.connect().await;
    let mut b = s.connect().await;
    for c in [&mut a, &mut b] {
        c.write_all(b"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_until(c, b"\r\n\r\n").await;
    }
    // A third is accepted by the kernel but not served while they stay open.
    let third = queued_options(&s).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "served beyond max_connections");
    drop(a);
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a slot was free")
        .unwrap();
    assert_eq!(status, 200);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_lose_their_slot_after_the_header_timeout() {
    let s = TestServer::with_config(DavConfig {
        max_connections: 2,
        header_timeout_secs: 1,
        ..Default::default()
    })
    .await;
    // One connection says nothing, the other half of the HTTP/2 preface: neither tells the
    // protocol, which is before hyper's own header timeout starts.
    let mut silent = s.connect().await;
    let mut half = s.connect().await;
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let third = queued_options(&s).await;
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the silent connections held both slots past the header timeout")
        .unwrap();
    assert_eq!(status, 200);
    // Both were closed by the server.
    for c in [&mut silent, &mut half] {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf))
            .await
            .expect("closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_header_timeout() {
    let s = TestServer::with_config(DavConfig {
        header_timeout_secs: 1,
        ..Default::default()
    })
    .await;
    // HTTP/2 with prior knowledge; hyper's client answers the server's pings, so only an idle
    // time-out can end this connection.
    let (resp, _send, conn) = h2_request(&s, "OPTIONS", "/").await;
    assert_eq!(resp.status(), 200);
    drop(resp);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the idle HTTP/2 connection stayed open")
        .unwrap()
        .unwrap();
    // Not before the time-out either.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_progress_finish_and_accepts_no_more() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server =
        davit_server::Server::open(root.path(), Some(state.path()), DavConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(davit_server::serve(listener, server, async {
        let _ = stopped.await;
    }));
    // An upload half sent when shutdown begins.
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"PUT /f.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!serving.is_finished(), "stopped with a request in progress");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown began"
    );
    // The upload completes and is answered; then the server is done.
    c.write_all(b"world").await.unwrap();
    let resp = RawResp::parse(&read_to_close(&mut c).await);
    assert_eq!(resp.status, 201);
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returned once the request was done")
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("f.txt")).unwrap(),
        "helloworld"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_slot_after_the_send_timeout() {
    let s = TestServer::with_config(DavConfig {
        max_connections: 1,
        send_timeout_secs: 1,
        ..Default::default()
    })
    .await;
    std::fs::write(s.root().join("big.bin"), vec![7u8; 64 << 20]).unwrap();
    // A download whose client reads nothing: far more than the socket buffers can hold.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(s.addr).await.unwrap();
    stalled
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // It holds the only slot until the server gives up on it.
    let next = queued_options(&s).await;
    let status = tokio::time::timeout(Duration::from_secs(15), next)
        .await
        .expect("the stalled download kept the slot past the send timeout")
        .unwrap();
    assert_eq!(status, 200);
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_download_the_client_grants_no_window_is_dropped_after_the_send_timeout() {
    let s = TestServer::with_config(DavConfig {
        header_timeout_secs: 2,
        send_timeout_secs: 1,
        ..Default::default()
    })
    .await;
    std::fs::write(s.root().join("big.bin"), vec![7u8; 8 << 20]).unwrap();
    // The body is never read, so the client never widens its window; its pings are answered
    // and the socket never blocks.
    let (resp, _send, conn) = h2_request(&s, "GET", "/big.bin").await;
    assert_eq!(resp.status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(
        ended.is_ok(),
        "the stalled HTTP/2 download kept its connection"
    );
    drop(resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http2_download_that_progresses_completes() {
    use http_body_util::BodyExt;
    let s = TestServer::with_config(DavConfig {
        header_timeout_secs: 1,
        send_timeout_secs: 1,
        ..Default::default()
    })
    .await;
    std::fs::write(s.root().join("two.bin"), vec![7u8; 2 << 20]).unwrap();
    let (resp, _send, _conn) = h2_request(&s, "GET", "/two.bin").await;
    let mut body = resp.into_body();
    // Half a second between every 256 KiB taken, over four seconds in all: slow, never stalled.
    let (mut got, mut since_pause) = (0usize, 0usize);
    while let Some(frame) = body.frame().await {
        let n = frame.unwrap().into_data().map_or(0, |d| d.len());
        got += n;
        since_pause += n;
        if since_pause >= 256 << 10 {
            since_pause = 0;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert_eq!(got, 2 << 20);
}

/// An OPTIONS request on a new connection, answered once the server serves it; its status.
async fn queued_options(s: &TestServer) -> tokio::task::JoinHandle<u16> {
    let mut c = s.connect().await;
    tokio::spawn(async move {
        c.write_all(b"OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("send OPTIONS");
        RawResp::parse(&read_to_close(&mut c).await).status
    })
}

/// One request over a new HTTP/2 connection (prior knowledge): the response head, the
/// request sender (while it lives, the client keeps the connection open), and the
/// connection's task, which then ends only when the server closes it.
async fn h2_request(
    s: &TestServer,
    method: &str,
    path: &str,
) -> (
    http::Response<hyper::body::Incoming>,
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let io = hyper_util::rt::TokioIo::new(s.connect().await);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("HTTP/2 handshake");
    let conn = tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", s.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    (resp, send, conn)
}
