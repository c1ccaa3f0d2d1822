//! Serves an axum router over any [`Listener`], with HTTP/1.1 keep-alive, a header
//! read timeout, stall timeouts on every connection and a deadline on every
//! request body (see [`super::guard`]), no `Date` header (it would read the real
//! clock) and graceful shutdown.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::guard::{BodyPace, DeadlineBody, StallGuard};
use super::Listener;
use crate::limits;

/// Limits of a server.
#[derive(Clone, Copy, Debug)]
pub struct ServerSettings {
    /// How long a client may take to send the request head.
    pub header_read_timeout_ms: u64,
    /// How long open connections get to finish after shutdown begins.
    pub shutdown_grace_ms: u64,
    /// Connections served at once; further accepts wait.
    pub connections_max: usize,
    /// A connection whose writes make no progress this long (the client stopped
    /// reading) is dropped, with the answer it held.
    pub write_stall_timeout_ms: u64,
    /// A connection whose reads wait this long is dropped. Longer than any
    /// call's timeout (30 s for a move order), since hyper may be reading while
    /// a handler works; idle connections close sooner (the head timeout).
    pub read_stall_timeout_ms: u64,
    /// The pace a request body must keep (408 otherwise).
    pub body_pace: BodyPace,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_read_timeout_ms: limits::HEADER_READ_TIMEOUT_MS_DEFAULT,
            shutdown_grace_ms: limits::SHUTDOWN_GRACE_MS_DEFAULT,
            connections_max: limits::CONNECTIONS_MAX_DEFAULT,
            write_stall_timeout_ms: limits::WRITE_STALL_TIMEOUT_MS_DEFAULT,
            read_stall_timeout_ms: limits::READ_STALL_TIMEOUT_MS_DEFAULT,
            body_pace: BodyPace {
                grace_ms: limits::BODY_GRACE_MS_DEFAULT,
                rate_bytes_per_s: limits::BODY_RATE_BYTES_PER_S_DEFAULT,
            },
        }
    }
}

/// Logs every request and its answer at debug level, target `memring::http` (the
/// simulation's trace records them; production filters them out).
async fn trace_exchange(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !tracing::enabled!(target: "memring::http", tracing::Level::DEBUG) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    tracing::debug!(target: "memring::http", "request {method} {path}");
    let response = next.run(request).await;
    tracing::debug!(target: "memring::http", "response {method} {path} {}", response.status().as_u16());
    response
}

/// Makes the request's body keep `pace` (see [`DeadlineBody`]).
fn limit_body_time(request: axum::extract::Request, pace: BodyPace) -> axum::extract::Request {
    request.map(|body| axum::body::Body::new(DeadlineBody::new(body, pace)))
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets open
/// connections finish their current request (up to the grace period).
pub async fn serve(
    mut listener: Box<dyn Listener>,
    router: Router,
    settings: ServerSettings,
    shutdown: CancellationToken,
) {
    let body_pace = settings.body_pace;
    let router =
        router
            .layer(axum::middleware::map_request(
                move |request: axum::extract::Request| async move {
                    limit_body_time(request, body_pace)
                },
            ))
            .layer(axum::middleware::from_fn(trace_exchange));
    let spawner = listener.spawner();
    let tracker = TaskTracker::new();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(settings.connections_max));
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (io, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                // Back off briefly: accept errors (e.g. too many open files) repeat.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        spawner.spawn(
            tracker.track_future(
                async move {
                    let _permit = permit;
                    let mut builder = http1::Builder::new();
                    builder
                        .keep_alive(true)
                        .auto_date_header(false)
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_millis(
                            settings.header_read_timeout_ms,
                        ));
                    let io = StallGuard::new(
                        io,
                        Duration::from_millis(settings.read_stall_timeout_ms),
                        Duration::from_millis(settings.write_stall_timeout_ms),
                    );
                    let connection = builder.serve_connection(TokioIo::new(io), service);
                    tokio::pin!(connection);
                    let outcome = tokio::select! {
                        biased;
                        outcome = connection.as_mut() => outcome,
                        _ = shutdown.cancelled() => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    };
                    if let Err(error) = outcome {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                }
                .in_current_span(),
            ),
        );
    }
    tracker.close();
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}
