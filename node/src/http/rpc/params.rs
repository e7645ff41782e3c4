//! A call's params, bound by name (see [`super::envelope`]): typed reads that turn a wrong
//! type into an `INVALID_PARAMS` naming the param.

use serde_json::{Map, Value};

use super::error::{RpcError, truncate};

/// A call's params by name, whether they came by name or by position.
pub(crate) struct Params {
    named: Map<String, Value>,
}

impl Params {
    /// Params already keyed by name.
    pub(crate) fn from_named(named: Map<String, Value>) -> Params {
        Params { named }
    }

    /// A param's value, treating `null` as absent.
    pub(super) fn get(&self, name: &str) -> Option<&Value> {
        self.named.get(name).filter(|v| !v.is_null())
    }

    pub(super) fn str(&self, name: &str) -> Result<Option<&str>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(RpcError::invalid_param(
                name,
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    }

    pub(super) fn required_str(&self, name: &str) -> Result<&str, RpcError> {
        self.str(name)?
            .ok_or_else(|| RpcError::invalid_param(name, "missing (required)"))
    }

    pub(super) fn u64(&self, name: &str) -> Result<Option<u64>, RpcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                RpcError::invalid_param(
                    name,
                    format!(
                        "expected a non-negative integer, got {}",
                        truncate(&n.to_string())
                    ),
                )
            }),
            Some(other) => Err(RpcError::invalid_param(
                name,
                format!("expected a non-negative integer, got {}", type_name(other)),
            )),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
