//! HTTPS: the server speaks TLS with the configured certificate, HTTP/2 by ALPN and HTTP/1.1,
//! and a reload swaps the certificate (or keeps the old one when the new files are bad).

use davit_server::{serve_with, tls::Tls, DavConfig, Server};
use std::path::Path;
use std::process::Command;

/// A self-signed certificate for 127.0.0.1, made with the openssl command.
fn make_cert(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command is needed for this test (apt-get install openssl)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_http2_and_http1_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello over tls").unwrap();
    let (cert, key) = make_cert(dir.path(), "one");
    let tls = Tls::from_files(&cert, &key).unwrap();
    let server = Server::open(
        root.path(),
        Some(&dir.path().join("state")),
        DavConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(
        listener,
        server,
        async {
            let _ = stopped.await;
        },
        Some(tls.clone()),
    ));
    let base = format!("https://127.0.0.1:{}/", addr.port());

    let client = |http1: bool| {
        let b = reqwest::Client::builder().danger_accept_invalid_certs(true);
        let b = if http1 { b.http1_only() } else { b };
        b.build().unwrap()
    };
    // HTTP/2, chosen by ALPN.
    let r = client(false)
        .get(format!("{base}hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello over tls");
    let r = client(false)
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &base)
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    // HTTP/1.1 over TLS.
    let r = client(true)
        .put(format!("{base}new.txt"))
        .body("via h1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 201);
    assert_eq!(
        std::fs::read_to_string(root.path().join("new.txt")).unwrap(),
        "via h1"
    );
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/hello.txt", addr.port()))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // A reload with broken files fails and keeps the old certificate in service.
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(
        client(false)
            .get(format!("{base}hello.txt"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A reload with good files succeeds and new connections are served.
    let (cert2, key2) = make_cert(dir.path(), "two");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    tls.reload().unwrap();
    assert_eq!(
        client(false)
            .get(format!("{base}hello.txt"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[test]
fn missing_or_bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Tls::from_files(&dir.path().join("no.crt"), &dir.path().join("no.key"));
    assert!(missing.is_err());
    std::fs::write(dir.path().join("empty.crt"), "").unwrap();
    std::fs::write(dir.path().join("empty.key"), "").unwrap();
    let err = Tls::from_files(&dir.path().join("empty.crt"), &dir.path().join("empty.key"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty.crt"), "{err}");
}
