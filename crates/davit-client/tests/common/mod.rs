//! Test harness: the real davit server in-process on an ephemeral port, and a fake server that
//! answers every request with one canned response (for 207s davit never sends).

// Test helpers outside #[test] functions: a failed setup should panic loudly.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use tempfile::TempDir;

/// A running davit server over a temporary directory.
pub struct Davit {
    pub url: String,
    pub root: PathBuf,
    _dirs: (TempDir, TempDir),
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn start_davit() -> Davit {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let server = davit_server::Server::open(
        root.path(),
        Some(state.path()),
        davit_server::DavConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(davit_server::serve(listener, server, async move {
        let _ = rx.await;
    }));
    Davit {
        url: format!("http://{addr}"),
        root: root.path().to_path_buf(),
        _dirs: (root, state),
        _stop: tx,
    }
}

/// Serves `response` (a whole HTTP/1.1 response, headers and body) to every connection, on a
/// plain thread, so it works from any test. Returns the base URL.
pub fn canned(status: &str, content_type: &str, body: &str) -> String {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            // Read the request head (and whatever body came with it) before answering.
            let mut buf = [0u8; 65536];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(response.as_bytes());
        }
    });
    url
}
