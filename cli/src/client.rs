//! A small blocking JSON-RPC 2.0 client for the node's RPC (`cairn status`, `tx`, `query`).
//!
//! Owns the HTTP edge of the CLI: the `--rpc` address, timeouts, and turning every failure
//! into one sentence that says what to do. Plain HTTP only: the node's RPC listens on
//! localhost or a trusted LAN, and this client carries no TLS stack. It never follows
//! redirects, never uses a proxy from the environment, and never reads an unbounded answer.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
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

pub struct Client {
    url: RpcUrl,
    /// One agent per client, so repeated calls (the publisher polls) reuse its connection;
    /// each call sets its own timeouts.
    agent: ureq::Agent,
}

/// How every RPC caller of this binary talks HTTP: status codes are answers to read, not
/// errors; no redirects and no proxy (the node is addressed directly). Callers add timeouts.
pub fn agent_config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::config::Config::builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(None)
}

impl Client {
    pub fn new(args: &RpcArgs) -> Client {
        Client {
            url: args.rpc.clone(),
            agent: agent_config().build().new_agent(),
        }
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
        let mut response = self
            .agent
            .post(&self.url.0)
            .config()
            .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
            .timeout_global(Some(timeout))
            .build()
            .header("content-type", "application/json")
            .send(request.to_string())
            .map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_vec()
            .map_err(transport)?;
        self.parse_response(method, status, &body)
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
            let code = error.get("code").and_then(Value::as_i64);
            let message = error.get("message").and_then(Value::as_str);
            let (Some(code), Some(message)) = (code, message) else {
                return Err(not_json_rpc());
            };
            return Err(ClientError::Rpc {
                method: method.to_owned(),
                code,
                message: message.to_owned(),
                data: error.get("data").cloned(),
            });
        }
        match response.remove("result") {
            Some(result) if response.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {
                Ok(result)
            }
            _ => Err(not_json_rpc()),
        }
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
}
