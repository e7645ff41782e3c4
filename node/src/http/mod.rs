//! The node's HTTP server: JSON-RPC 2.0 on `POST /`, and `GET /health`, `GET /ready`,
//! `GET /metrics`, all on one listener (`config.rpc.listen`).
//!
//! Owns the HTTP edge: it bounds every request (body bytes, batch length), turns every bad
//! input into a JSON-RPC error, and reads the store, the mempool and the driver's status.
//! It must never panic on any input, never write to the store, and never hold the mempool
//! lock across anything slower than one admission. What the driver knows (round, leader,
//! peers, readiness) comes in through [`NodeView`], so the server runs before the driver
//! exists and tests give it a [`StatusBoard`]. Admitted transactions go out on
//! [`RpcState::admitted`] for the driver to gossip.

pub mod rpc;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_ledger::genesis::Validator;
use cairn_ledger::store::Store;
use cairn_ledger::tx::Transaction;

use crate::config::RpcSection;
use crate::host::status::{NodeView, Readiness};
use crate::metrics::{METRICS_CONTENT_TYPE, Metrics};
use crate::txpool::mempool::Mempool;
use rpc::envelope::{self, RpcError};
use rpc::methods::COMMIT_WAITERS_MAX;

/// Everything the server reads. Cheap to clone (all shared).
#[derive(Clone)]
pub struct RpcState {
    pub store: Arc<Store>,
    pub mempool: Arc<Mutex<Mempool>>,
    pub node: Arc<dyn NodeView>,
    pub metrics: Arc<Metrics>,
    /// The validator set reported by `validators`: genesis's until validator-set changes
    /// exist.
    pub validators: Arc<[Validator]>,
    pub limits: RpcSection,
    /// Where each transaction this server admits to the mempool is sent, for the driver to
    /// gossip; `None` when no driver runs (tests, tools). Sent with `try_send`: when the
    /// channel is full the transaction stays in the mempool un-gossiped (it still reaches a
    /// block when this node leads) and the call still succeeds.
    pub admitted: Option<tokio::sync::mpsc::Sender<Transaction>>,
}

/// What the HTTP handlers share: the caller's [`RpcState`] and the server's own bounds.
#[derive(Clone)]
struct Server {
    state: RpcState,
    commit_waiters: Arc<CommitWaiters>,
}

impl Server {
    fn new(state: RpcState) -> Server {
        Server {
            state,
            commit_waiters: Arc::new(CommitWaiters::new(COMMIT_WAITERS_MAX)),
        }
    }
}

/// Counts `submit_tx` calls in mode `commit` that are waiting for their transaction to
/// commit. Each waits on a thread of tokio's blocking pool, so the count is bounded
/// ([`COMMIT_WAITERS_MAX`]) well below that pool's size: the other requests, and any blocking
/// work of the driver on the same runtime, always find a thread. When the server is told to
/// stop, waiting calls answer at once, so a graceful shutdown does not wait out their commits.
pub(crate) struct CommitWaiters {
    waiting: AtomicUsize,
    max: usize,
    stopping: AtomicBool,
}

/// A place among the commit waiters, given back when dropped (also on a panic).
pub(crate) struct CommitWaiter<'a>(&'a CommitWaiters);

impl CommitWaiters {
    pub(crate) fn new(max: usize) -> CommitWaiters {
        CommitWaiters {
            waiting: AtomicUsize::new(0),
            max,
            stopping: AtomicBool::new(false),
        }
    }

    /// A place, or `None` when `max` calls are already waiting.
    pub(crate) fn try_enter(&self) -> Option<CommitWaiter<'_>> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| CommitWaiter(self))
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Tells waiting calls (and any later one) to stop waiting.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

impl Drop for CommitWaiter<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The routes, with the body limit applied. `serve` runs this; exposed for embedding.
pub fn router(state: RpcState) -> Router {
    router_for(Server::new(state))
}

fn router_for(server: Server) -> Router {
    let body_max = usize::try_from(server.state.limits.body_bytes_max).unwrap_or(usize::MAX);
    Router::new()
        .route("/", post(rpc))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_max))
        .with_state(server)
}

/// Connections the server keeps open at once; further clients wait in the kernel's accept
/// queue until one closes, instead of each costing a socket and a task. A connection that
/// stalls or idles for `rpc.io_timeout_ms` is closed, so idle clients cannot keep every slot.
pub const CONNECTIONS_MAX: usize = 256;

/// How long the server stops accepting after the listener fails (out of file descriptors,
/// say), instead of spinning on the error.
const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves until `shutdown` completes, then finishes in-flight requests and returns. Calls
/// waiting for a commit then answer at once that the node is stopping.
///
/// Its own accept loop rather than `axum::serve`, which sets no header read timeout: with it,
/// clients that connect and send nothing would keep every connection slot for good.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: RpcState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let io_timeout = std::time::Duration::from_millis(state.limits.io_timeout_ms);
    let server = Server::new(state);
    let waiters = Arc::clone(&server.commit_waiters);
    let app = router_for(server);
    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The header timer also runs while a kept-alive connection waits for its next request.
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(io_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the RPC listener cannot accept connections");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // A client that stops reading its answer would otherwise hold the slot forever.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(io_timeout));
        let io = hyper_util::rt::TokioIo::new(Box::pin(stream));
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = connections.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "RPC connection closed");
            }
            drop(permit);
        });
    }
    waiters.stop();
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// Errors that concern one incoming connection, not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

async fn rpc(State(server): State<Server>, request: axum::extract::Request) -> Response {
    let limits = &server.state.limits;
    let read = Bytes::from_request(request, &());
    let io_timeout = std::time::Duration::from_millis(limits.io_timeout_ms);
    let body = match tokio::time::timeout(io_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(rejection)) => {
            let status = rejection.status();
            let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
                RpcError::BodyTooLarge {
                    max: limits.body_bytes_max,
                }
            } else {
                RpcError::InvalidRequest(format!(
                    "could not read the request body: {}",
                    rejection.body_text()
                ))
            };
            return (status, axum::Json(envelope::error_response(None, &error))).into_response();
        }
        Err(_) => {
            let error = RpcError::BodyTimeout {
                ms: limits.io_timeout_ms,
            };
            return (
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(envelope::error_response(None, &error)),
            )
                .into_response();
        }
    };
    // Store reads are blocking RocksDB calls and admission verifies a signature: keep them
    // off the async workers. A panic in there (a bug) becomes a JoinError, not a dead server.
    // `submit_tx` in mode `commit` waits here too, at most COMMIT_WAITERS_MAX at a time.
    let handler = server.clone();
    let handle = move || envelope::handle_body(&handler.state, &handler.commit_waiters, &body);
    match tokio::task::spawn_blocking(handle).await {
        Ok(Some(response)) => axum::Json(response).into_response(),
        // Only notifications: JSON-RPC says nothing is returned.
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            let error = RpcError::Internal(format!("request handler failed: {e}"));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(envelope::error_response(None, &error)),
            )
                .into_response()
        }
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(server): State<Server>) -> Response {
    match server.state.node.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready").into_response(),
        Readiness::NotReady(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        )
            .into_response(),
    }
}

async fn metrics(State(server): State<Server>) -> Response {
    server.state.refresh_gauges();
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        server.state.metrics.render(),
    )
        .into_response()
}

impl RpcState {
    /// Sets the gauges this server has the authoritative source for, so a scrape is current
    /// even between driver updates.
    fn refresh_gauges(&self) {
        let height = self.store.tip().height.0;
        self.metrics
            .height
            .set(i64::try_from(height).unwrap_or(i64::MAX));
        if let Ok(pool) = self.mempool.lock() {
            self.set_mempool_gauges(&pool);
        }
        if let Some((at, oracle)) = self.store.oracle_at() {
            self.metrics.oracle.observe(at, &oracle);
        }
    }

    fn set_mempool_gauges(&self, pool: &Mempool) {
        self.metrics
            .mempool_size
            .set(i64::try_from(pool.len()).unwrap_or(i64::MAX));
        self.metrics
            .mempool_bytes
            .set(i64::try_from(pool.bytes()).unwrap_or(i64::MAX));
    }
}
