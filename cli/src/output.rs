//! `--output table|json`: people get aligned text, scripts get JSON with stable field names.

use clap::ValueEnum;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Prints `value` as JSON, or its `rows` as `label: value` lines.
pub fn print<T: Serialize, K: AsRef<str>>(output: Output, value: &T, rows: &[(K, String)]) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).expect("plain data serialises to JSON")
        ),
        Output::Table => {
            let width = rows
                .iter()
                .map(|(k, _)| k.as_ref().len())
                .max()
                .unwrap_or(0);
            for (k, v) in rows {
                println!("{:<width$}  {v}", k.as_ref());
            }
        }
    }
}

/// Appends `value` as table rows labelled `label`: an object becomes one row per field
/// (`label.field`, nested the same way), anything else one row.
pub fn value_rows(label: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (key, field) in fields {
                let label = if label.is_empty() {
                    key.clone()
                } else {
                    format!("{label}.{key}")
                };
                value_rows(&label, field, rows);
            }
        }
        other => rows.push((label.to_owned(), text(other))),
    }
}

/// A JSON value as a table cell: strings without quotes, `null` as `none`.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "none".to_owned(),
        other => other.to_string(),
    }
}

/// How often a spinner redraws.
const SPINNER_TICK: std::time::Duration = std::time::Duration::from_millis(120);

/// A spinner on stderr showing `message`, drawn only when stderr is a terminal: scripts and
/// logs get no control characters (the hidden bar ignores every call).
pub fn spinner(message: impl Into<String>) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.into());
    bar.enable_steady_tick(SPINNER_TICK);
    bar
}
