//! `--output table|json`: people get aligned text, scripts get JSON with stable field names.

use clap::ValueEnum;
use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// Prints `value` as JSON, or its `rows` as `label: value` lines.
pub fn print<T: Serialize>(output: Output, value: &T, rows: &[(&str, String)]) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).expect("plain data serialises to JSON")
        ),
        Output::Table => {
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in rows {
                println!("{k:<width$}  {v}");
            }
        }
    }
}
