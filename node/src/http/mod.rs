//! The node's HTTP server: JSON-RPC 2.0 on `POST /`, and `GET /health`, `GET /ready`,
//! `GET /metrics`, all on one listener (`config.rpc.listen`).
//!
//! Owns the HTTP edge: it bounds every request (body bytes, batch length), turns every bad
//! input into a JSON-RPC error, and reads the store, the mempool and the driver's status.
//! It must never panic on any input, never write to the store, and never hold the mempool
//! lock across anything slower than one admission. What the driver knows (round, leader,
//! peers, readiness) comes in through [`NodeView`](crate::host::status::NodeView), so the
//! server runs before the driver exists and tests give it a
//! [`StatusBoard`](crate::host::status::StatusBoard). Admitted transactions go out on
//! [`RpcState::admitted`] for the driver to gossip.
//!
//! This file is the accept loop and its limits; [`health`] has the probes, [`rpc`] the
//! JSON-RPC calls, and [`state`] what they all read (a leaf, so nothing imports back here).

mod health;
pub mod rpc;
pub mod state;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use rpc::envelope;
use rpc::error::{RpcError, error_response};
use rpc::methods::COMMIT_WAITERS_MAX;
use state::CommitWaiters;
pub use state::RpcState;

/// What the HTTP handlers share: the caller's [`RpcState`] and the server's own bounds.
#[derive(Clone)]
struct Server {
    state: RpcState,
    commit_waiters: Arc<CommitWaiters>,
}

/// The probes read the state alone.
impl axum::extract::FromRef<Server> for RpcState {
    fn from_ref(server: &Server) -> RpcState {
        server.state.clone()
    }
}

impl Server {
    fn new(state: RpcState) -> Server {
        Server {
            state,
            commit_waiters: Arc::new(CommitWaiters::new(COMMIT_WAITERS_MAX)),
        }
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
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
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
            return (status, axum::Json(error_response(None, &error))).into_response();
        }
        Err(_) => {
            let error = RpcError::BodyTimeout {
                ms: limits.io_timeout_ms,
            };
            return (
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(error_response(None, &error)),
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
                axum::Json(error_response(None, &error)),
            )
                .into_response()
        }
    }
}
