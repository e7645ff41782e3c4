//! The JSON-RPC 2.0 envelope: parsing requests and batches, binding params by name or
//! position, and shaping results and errors.
//!
//! Owns the wire contract with clients (error codes are stable: scripts match on them). It
//! never trusts a field's type, never echoes unbounded client text back, and never panics.
//! The calls it dispatches ([`super::methods`]) never import it back: what both need is in
//! [`super::error`] and [`super::params`].

use serde_json::{Map, Value, json};

use super::error::{RpcError, error_response, truncate};
use super::methods::{Method, Predecoded, predecode_batch};
use super::params::Params;
use crate::http::state::{CommitWaiters, RpcState};
use crate::metrics::MethodLabel;

/// Handles one HTTP body: a request or a batch. `None` when nothing is to be returned (only
/// notifications).
pub fn handle_body(state: &RpcState, waiters: &CommitWaiters, body: &[u8]) -> Option<Value> {
    // serde_json limits nesting depth (128), so hostile nesting is a parse error, not a
    // stack overflow; the body itself is already bounded by rpc.body_bytes_max.
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(error_response(None, &RpcError::Parse(e.to_string()))),
    };
    match request {
        Value::Array(batch) => {
            let max = state.limits.batch_requests_max;
            if batch.is_empty() {
                let e = RpcError::InvalidRequest("empty batch".into());
                return Some(error_response(None, &e));
            }
            if batch.len() > max as usize {
                let e = RpcError::BatchTooLarge {
                    len: batch.len(),
                    max,
                };
                return Some(error_response(None, &e));
            }
            let predecoded = predecode_batch(&batch);
            let responses: Vec<Value> = batch
                .into_iter()
                .zip(predecoded)
                .filter_map(|(r, p)| handle_request(state, waiters, p, r))
                .collect();
            (!responses.is_empty()).then_some(Value::Array(responses))
        }
        single => handle_request(state, waiters, None, single),
    }
}

/// Handles one request object; `None` for a notification (no `id`).
fn handle_request(
    state: &RpcState,
    waiters: &CommitWaiters,
    predecoded: Option<Predecoded>,
    request: Value,
) -> Option<Value> {
    let Value::Object(mut request) = request else {
        let e = RpcError::InvalidRequest("a request must be a JSON object".into());
        return Some(error_response(None, &e));
    };
    let id = match request.remove("id") {
        None => None,
        Some(id @ (Value::Null | Value::Number(_) | Value::String(_))) => Some(id),
        Some(_) => {
            let e = RpcError::InvalidRequest("`id` must be a string, a number or null".into());
            return Some(error_response(None, &e));
        }
    };
    let notification = id.is_none();
    let result = parse_and_call(state, waiters, predecoded, request);
    if notification {
        return None;
    }
    Some(match result {
        Ok(value) => json!({ "jsonrpc": "2.0", "id": id, "result": value }),
        Err(e) => error_response(id, &e),
    })
}

fn parse_and_call(
    state: &RpcState,
    waiters: &CommitWaiters,
    predecoded: Option<Predecoded>,
    mut request: Map<String, Value>,
) -> Result<Value, RpcError> {
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RpcError::InvalidRequest(
            "`jsonrpc` must be the string \"2.0\"".into(),
        ));
    }
    let name = match request.remove("method") {
        Some(Value::String(name)) => name,
        _ => {
            return Err(RpcError::InvalidRequest("`method` must be a string".into()));
        }
    };
    let params = match request.remove("params") {
        None | Some(Value::Null) => None,
        Some(p @ (Value::Array(_) | Value::Object(_))) => Some(p),
        Some(_) => {
            return Err(RpcError::InvalidRequest(
                "`params` must be an array or an object".into(),
            ));
        }
    };
    let method = Method::from_name(&name);
    // Unknown names share one label so clients cannot grow the metrics registry.
    let label = method.map_or("unknown", Method::name);
    state
        .metrics
        .rpc_requests
        .get_or_create(&MethodLabel { method: label })
        .inc();
    let Some(method) = method else {
        return Err(RpcError::MethodNotFound {
            name: truncate(&name),
            known: Method::names(),
        });
    };
    let params = bind(method, params)?;
    method.call(state, waiters, predecoded, &params)
}

/// Binds a call's params by name, whether they came by name or by position.
fn bind(method: Method, raw: Option<Value>) -> Result<Params, RpcError> {
    let names = method.params();
    let named = match raw {
        None => Map::new(),
        Some(Value::Array(values)) => {
            let values = method.positional(values);
            if values.len() > names.len() {
                return Err(RpcError::invalid_param(
                    &format!("#{}", names.len() + 1),
                    format!(
                        "`{}` takes at most {} params ({}), got {}",
                        method.name(),
                        names.len(),
                        names.join(", "),
                        values.len()
                    ),
                ));
            }
            names
                .iter()
                .zip(values)
                .map(|(n, v)| (n.to_string(), v))
                .collect()
        }
        Some(Value::Object(named)) => named,
        Some(_) => {
            return Err(RpcError::InvalidRequest(
                "`params` must be an array or an object".into(),
            ));
        }
    };
    if let Some(unknown) = named.keys().find(|k| !names.contains(&k.as_str())) {
        let takes = if names.is_empty() {
            "no params".to_owned()
        } else {
            names.join(", ")
        };
        return Err(RpcError::invalid_param(
            unknown,
            format!("unknown param; `{}` takes {takes}", method.name()),
        ));
    }
    Ok(Params::from_named(named))
}
