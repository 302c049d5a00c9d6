//! The admin listener (`[admin] listen`): `/metrics` for Prometheus, `/healthz` and `/readyz`
//! for load balancers and orchestrators. A port of its own, so no path of the share is taken
//! and it can stay on loopback or a management network while WebDAV faces users.

use crate::body::{self, Body};
use crate::handler::Dav;
use crate::locks::LockStore;
use crate::metrics::{self, BuildInfo, METRICS};
use crate::props::PropStore;
use crate::storage::Storage;
use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long `/readyz` waits for the stores before it answers 503.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve_admin<S, P, L>(
    listener: TcpListener,
    dav: Dav<S, P, L>,
    build: BuildInfo,
    shutdown: impl Future<Output = ()>,
) where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    let shared = Arc::new((dav, build));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared.0, &shared.1, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}

/// The answer to one admin request.
pub async fn answer<S, P, L, B>(
    dav: &Dav<S, P, L>,
    build: &BuildInfo,
    req: &Request<B>,
) -> Response<Body>
where
    S: Storage + Clone,
    P: PropStore + Clone,
    L: LockStore + Clone,
{
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let body = metrics::encode(&METRICS, dav.gauges().await, build.clone());
            Response::builder()
                .header(header::CONTENT_TYPE, metrics::CONTENT_TYPE)
                .body(body::full(body))
                .unwrap_or_else(|_| body::plain(StatusCode::INTERNAL_SERVER_ERROR))
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match tokio::time::timeout(READY_TIMEOUT, dav.readiness()).await {
            Ok(Ok(())) => text(StatusCode::OK, "ready\n".into()),
            Ok(Err(why)) => {
                tracing::warn!(%why, "not ready");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                )
            }
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the stores did not answer within 5 s\n".into(),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz and /readyz are served here\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body::full(body))
        .unwrap_or_else(|_| body::plain(StatusCode::INTERNAL_SERVER_ERROR))
}
