//! The probes on the RPC port: `GET /health` (the process answers), `GET /ready` (the driver
//! says the node is synced and peered) and `GET /metrics` (Prometheus text).
//!
//! Never blocks on consensus work: each reads what the driver last posted.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::RpcState;
use crate::host::status::Readiness;
use crate::metrics::METRICS_CONTENT_TYPE;

pub(super) async fn health() -> &'static str {
    "ok"
}

pub(super) async fn ready(State(state): State<RpcState>) -> Response {
    match state.node.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready").into_response(),
        Readiness::NotReady(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        )
            .into_response(),
    }
}

pub(super) async fn metrics(State(state): State<RpcState>) -> Response {
    state.refresh_gauges();
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}
