//! The one blocking JSON-RPC 2.0 client of the CLI, for every command that talks to a node
//! (`cairn status`, `tx`, `query`, `oracle`, `testnet`, and `bench tps` with its batches).
//!
//! Owns the HTTP edge of the CLI: the `--rpc` address, timeouts, single calls and batches
//! over one kept-alive connection per client, and turning every failure into one sentence
//! that says what to do. Plain HTTP only: the node's RPC listens on
//! localhost or a trusted LAN, and this client carries no TLS stack. It never follows
//! redirects, never uses a proxy from the environment, and never reads an unbounded answer.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Where a node's RPC listens unless `--rpc` or `$CAIRN_RPC` says otherwise: the default
/// `[rpc] listen` of a node's config.toml.
pub const RPC_DEFAULT: &str = "http://127.0.0.1:26657";
/// Longest wait for the TCP connection to the node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a whole call (connect, send, answer), for every method but a commit wait.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a call waiting for a commit allows beyond the node's own bound
/// (`cairn_node::http::rpc::COMMIT_WAIT_MAX`), so the node's answer arrives before the client
/// gives up.
pub const COMMIT_CALL_MARGIN: Duration = Duration::from_secs(10);
/// Largest answer read: a block with its transaction hashes is far below this.
pub const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Requests per JSON-RPC batch: the node's default `[rpc] batch_requests_max`.
pub const BATCH_REQUESTS_MAX: usize = 50;
/// Most characters of a non-JSON answer quoted in an error.
const QUOTE_CHARS_MAX: usize = 120;

/// `--rpc`, shared by every command that talks to a node.
#[derive(Args, Clone, Debug)]
pub struct RpcArgs {
    /// The node's JSON-RPC address, http://HOST:PORT or HOST:PORT. Plain HTTP only (no TLS):
    /// the RPC is meant for localhost or a trusted LAN.
    #[arg(long, value_name = "URL", env = "CAIRN_RPC", default_value = RPC_DEFAULT)]
    pub rpc: RpcUrl,
}

/// A checked `http://host:port` address (a bare `host:port` gets the scheme).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcUrl(String);

impl FromStr for RpcUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<RpcUrl, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty; expected http://HOST:PORT or HOST:PORT".into());
        }
        let url = match s.split_once("://") {
            None => format!("http://{s}"),
            Some(("http", _)) => s.to_owned(),
            Some(("https", _)) => {
                return Err("https is not supported: the node's RPC is plain HTTP (use \
                            http://HOST:PORT, on localhost or a trusted LAN)"
                    .into());
            }
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {scheme:?} is not supported; expected http://HOST:PORT or HOST:PORT"
                ));
            }
        };
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|e| format!("not an address like http://127.0.0.1:26657: {e}"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err("no host; expected http://HOST:PORT or HOST:PORT".into());
        }
        if uri.query().is_some() {
            return Err("a query string is not expected; give http://HOST:PORT".into());
        }
        Ok(RpcUrl(url.trim_end_matches('/').to_owned()))
    }
}

impl fmt::Display for RpcUrl {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a call failed. Each `Display` is one sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "could not reach the node's RPC at {url}: {reason} (is the node running? set --rpc or \
         $CAIRN_RPC)"
    )]
    Unreachable { url: RpcUrl, reason: String },
    #[error(
        "the node's RPC at {url} did not answer {method} within {} s",
        timeout.as_secs()
    )]
    TimedOut {
        url: RpcUrl,
        method: String,
        timeout: Duration,
    },
    #[error("{method} failed: {message} (JSON-RPC error {code})")]
    Rpc {
        method: String,
        code: i64,
        message: String,
        data: Option<Value>,
    },
    #[error(
        "the answer from {url} to {method} is not JSON-RPC (HTTP {status}): {quote:?}; is this \
         a Cairn node's RPC address?"
    )]
    NotJsonRpc {
        url: RpcUrl,
        method: String,
        status: u16,
        quote: String,
    },
    #[error("the node's answer to {method} is not what this cairn expects: {problem}")]
    UnexpectedResult { method: String, problem: String },
}

/// Why a whole batch failed; each request's own refusal is its [`RpcFailure`].
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("could not reach the node's RPC at {url}: {reason}")]
    Transport { url: RpcUrl, reason: String },
    #[error("the node's RPC at {url} refused the batch: {message} (JSON-RPC error {code})")]
    Refused {
        url: RpcUrl,
        code: i64,
        message: String,
    },
    #[error("the answer from {url} is not a JSON-RPC batch answer: {problem}")]
    NotJsonRpc { url: RpcUrl, problem: String },
}

/// A JSON-RPC error object, as the node sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct RpcFailure {
    pub code: i64,
    pub message: String,
    #[serde(default)]
    pub data: Option<Value>,
}

impl RpcFailure {
    /// The node's rejection reason (`pool_full`, `nonce_gap`, …), else `rpc_error_CODE`.
    pub fn reason(&self) -> String {
        match self
            .data
            .as_ref()
            .and_then(|d| d.get("reason"))
            .and_then(Value::as_str)
        {
            Some(reason) => reason.to_owned(),
            None => format!("rpc_error_{}", -self.code),
        }
    }
}

/// One answer of a batch.
#[derive(Deserialize)]
struct Reply {
    id: Option<u64>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<RpcFailure>,
}

pub struct Client {
    url: RpcUrl,
    /// One agent per client, so repeated calls (the publisher polls, the load generator
    /// submits) reuse its kept-alive connection; each call sets its own timeouts.
    agent: ureq::Agent,
}

/// How every RPC caller of this binary talks HTTP: status codes are answers to read, not
/// errors; no redirects and no proxy (the node is addressed directly). Calls add timeouts.
fn agent_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::config::Config::builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(None)
}

impl Client {
    pub fn new(args: &RpcArgs) -> Client {
        Client::for_url(args.rpc.clone())
    }

    pub fn for_url(url: RpcUrl) -> Client {
        Client {
            url,
            agent: agent_config().build().new_agent(),
        }
    }

    pub fn url(&self) -> &RpcUrl {
        &self.url
    }

    /// Calls `method` with named `params` and decodes its result.
    pub fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, ClientError> {
        self.call_within(method, params, CALL_TIMEOUT)
    }

    /// Like [`Client::call`] with its own overall timeout (for calls the node holds, such as
    /// `submit_tx` in mode `commit`).
    pub fn call_within<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let result = self.call_value(method, params, timeout)?;
        serde_json::from_value(result).map_err(|e| ClientError::UnexpectedResult {
            method: method.to_owned(),
            problem: e.to_string(),
        })
    }

    fn call_value(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let request = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let transport = |e: ureq::Error| match e {
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                ClientError::Unreachable {
                    url: self.url.clone(),
                    reason: format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                }
            }
            ureq::Error::Timeout(_) => ClientError::TimedOut {
                url: self.url.clone(),
                method: method.to_owned(),
                timeout,
            },
            ureq::Error::Io(io) => ClientError::Unreachable {
                url: self.url.clone(),
                reason: io.to_string(),
            },
            other => ClientError::Unreachable {
                url: self.url.clone(),
                reason: other.to_string(),
            },
        };
        let (status, body) = self.post(request.to_string(), timeout).map_err(transport)?;
        self.parse_response(method, status, &body)
    }

    /// Calls `method` once per params in one batch (at most [`BATCH_REQUESTS_MAX`]);
    /// answers in the same order.
    pub fn batch(
        &self,
        method: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<Result<Value, RpcFailure>>, BatchError> {
        let requests: Vec<Value> = params
            .into_iter()
            .enumerate()
            .map(|(id, p)| json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": p }))
            .collect();
        let n = requests.len();
        self.batch_body(Value::Array(requests).to_string(), n)
    }

    /// Posts a batch body already written out, of `n` requests with ids 0..n (for callers
    /// that render requests ahead of time); answers in id order.
    pub fn batch_body(
        &self,
        body: String,
        n: usize,
    ) -> Result<Vec<Result<Value, RpcFailure>>, BatchError> {
        debug_assert!(n > 0 && n <= BATCH_REQUESTS_MAX);
        let (status, bytes) = self
            .post(body, CALL_TIMEOUT)
            .map_err(|e| BatchError::Transport {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        self.parse_batch(n, status, &bytes)
    }

    /// One HTTP POST of a JSON-RPC body: the status and the (bounded) answer.
    fn post(&self, body: String, timeout: Duration) -> Result<(u16, Vec<u8>), ureq::Error> {
        let mut response = self
            .agent
            .post(&self.url.0)
            .config()
            .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
            .timeout_global(Some(timeout))
            .build()
            .header("content-type", "application/json")
            .send(body)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_vec()?;
        Ok((status, body))
    }

    fn parse_response(&self, method: &str, status: u16, body: &[u8]) -> Result<Value, ClientError> {
        let not_json_rpc = || ClientError::NotJsonRpc {
            url: self.url.clone(),
            method: method.to_owned(),
            status,
            quote: quote(body),
        };
        let Ok(Value::Object(mut response)) = serde_json::from_slice::<Value>(body) else {
            return Err(not_json_rpc());
        };
        if let Some(error) = response.remove("error") {
            let Ok(error) = serde_json::from_value::<RpcFailure>(error) else {
                return Err(not_json_rpc());
            };
            return Err(ClientError::Rpc {
                method: method.to_owned(),
                code: error.code,
                message: error.message,
                data: error.data,
            });
        }
        match response.remove("result") {
            Some(result) if response.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {
                Ok(result)
            }
            _ => Err(not_json_rpc()),
        }
    }

    /// The answers to a batch of `n` requests with ids 0..n, in id order.
    fn parse_batch(
        &self,
        n: usize,
        status: u16,
        bytes: &[u8],
    ) -> Result<Vec<Result<Value, RpcFailure>>, BatchError> {
        let not_json_rpc = |problem: String| BatchError::NotJsonRpc {
            url: self.url.clone(),
            problem: format!("HTTP {status}, {problem}"),
        };
        let replies: Vec<Reply> = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .map_err(|e| not_json_rpc(e.to_string()))?,
            Ok(single) => {
                return Err(match serde_json::from_value::<Reply>(single) {
                    Ok(Reply {
                        error: Some(e),
                        id: None,
                        ..
                    }) => BatchError::Refused {
                        url: self.url.clone(),
                        code: e.code,
                        message: e.message,
                    },
                    _ => not_json_rpc("a single object where an array was expected".into()),
                });
            }
            Err(e) => return Err(not_json_rpc(e.to_string())),
        };
        let mut answers: Vec<Option<Result<Value, RpcFailure>>> = vec![None; n];
        for reply in replies {
            let slot = reply
                .id
                .and_then(|id| usize::try_from(id).ok())
                .and_then(|id| answers.get_mut(id))
                .ok_or_else(|| not_json_rpc("an answer with an unknown id".into()))?;
            *slot = Some(match (reply.result, reply.error) {
                (_, Some(e)) => Err(e),
                (Some(v), None) => Ok(v),
                (None, None) => return Err(not_json_rpc("an answer without a result".into())),
            });
        }
        answers
            .into_iter()
            .map(|a| a.ok_or_else(|| not_json_rpc("an answer is missing".into())))
            .collect()
    }
}

/// The start of an answer, for an error message.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(QUOTE_CHARS_MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_urls_take_a_bare_host_port_and_refuse_other_schemes() {
        let url = |s: &str| s.parse::<RpcUrl>().map(|u| u.to_string());
        assert_eq!(url("127.0.0.1:26657").unwrap(), "http://127.0.0.1:26657");
        assert_eq!(url("http://node1:80/").unwrap(), "http://node1:80");
        assert_eq!(url("localhost:1").unwrap(), "http://localhost:1");
        assert!(url("https://node:1").unwrap_err().contains("plain HTTP"));
        assert!(url("ftp://node:1").unwrap_err().contains("\"ftp\""));
        assert!(url("").unwrap_err().contains("empty"));
        assert!(url("http://").is_err());
        assert!(url("a b:1").is_err());
        assert!(url("node:1/?x=1").unwrap_err().contains("query"));
    }

    #[test]
    fn answers_are_results_errors_or_named_as_not_json_rpc() {
        let client = Client::new(&RpcArgs {
            rpc: "127.0.0.1:1".parse().unwrap(),
        });
        let ok = br#"{"jsonrpc": "2.0", "id": 1, "result": {"height": 3}}"#;
        assert_eq!(
            client.parse_response("status", 200, ok).unwrap()["height"],
            3
        );
        let error = br#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "block 9 not found"}}"#;
        let e = client.parse_response("block", 200, error).unwrap_err();
        assert!(matches!(e, ClientError::Rpc { code: -32001, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "block failed: block 9 not found (JSON-RPC error -32001)"
        );
        for (status, body) in [
            (200, &b"<html>hello</html>"[..]),
            (404, b"not found"),
            (200, b"[1, 2]"),
            (200, br#"{"jsonrpc": "2.0", "id": 1}"#),
            (200, br#"{"result": 1}"#),
            (200, br#"{"jsonrpc": "2.0", "error": {"code": "x"}}"#),
        ] {
            let e = client.parse_response("status", status, body).unwrap_err();
            let message = e.to_string();
            assert!(
                message.contains("not JSON-RPC") && message.contains(&format!("HTTP {status}")),
                "{message}"
            );
        }
        let long = "x".repeat(1000);
        let e = client
            .parse_response("status", 200, long.as_bytes())
            .unwrap_err();
        assert!(e.to_string().len() < 400, "{e}");
    }

    #[test]
    fn batch_answers_come_back_in_request_order_or_name_what_is_wrong() {
        let client = Client::for_url("127.0.0.1:1".parse().unwrap());
        let answers = client
            .parse_batch(
                2,
                200,
                br#"[{"jsonrpc": "2.0", "id": 1, "error": {"code": -32010, "message": "full",
                      "data": {"reason": "pool_full"}}},
                     {"jsonrpc": "2.0", "id": 0, "result": 7}]"#,
            )
            .unwrap();
        assert_eq!(answers[0].as_ref().unwrap(), &json!(7));
        assert_eq!(answers[1].as_ref().unwrap_err().reason(), "pool_full");
        let refused = client
            .parse_batch(
                1,
                413,
                br#"{"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": "too many"}}"#,
            )
            .unwrap_err();
        assert!(
            matches!(refused, BatchError::Refused { code: -32600, .. }),
            "{refused:?}"
        );
        for (n, body) in [
            (2, &br#"[{"jsonrpc": "2.0", "id": 0, "result": 1}]"#[..]),
            (1, br#"[{"jsonrpc": "2.0", "id": 5, "result": 1}]"#),
            (1, br#"[{"jsonrpc": "2.0", "id": 0}]"#),
            (1, b"<html>"),
        ] {
            let e = client.parse_batch(n, 200, body).unwrap_err();
            assert!(matches!(e, BatchError::NotJsonRpc { .. }), "{e:?}");
        }
        let no_reason = RpcFailure {
            code: -32603,
            message: "boom".into(),
            data: None,
        };
        assert_eq!(no_reason.reason(), "rpc_error_32603");
    }
}
