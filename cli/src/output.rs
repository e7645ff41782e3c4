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

/// How a printed hint names this binary, so that a copied line runs the same `cairn`: plain
/// `cairn` when that is what the PATH finds first, else the path of the running executable
/// (quoted for a POSIX shell where it needs it), as on a fresh machine before `make install`.
pub fn cairn_command() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "cairn".to_owned();
    };
    let exe = exe.canonicalize().unwrap_or(exe);
    let first_on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("cairn"))
            .find(|candidate| candidate.is_file())
    });
    match first_on_path.and_then(|found| found.canonicalize().ok()) {
        Some(found) if found == exe => "cairn".to_owned(),
        _ => shell_word(&exe.to_string_lossy()),
    }
}

/// `line`, a `cairn …` command line, naming this binary as [`cairn_command`] does.
pub fn runnable(line: &str) -> String {
    match line.strip_prefix("cairn ") {
        Some(rest) => format!("{} {rest}", cairn_command()),
        None => line.to_owned(),
    }
}

/// `word` as one POSIX shell word: unchanged when it has nothing the shell would read
/// specially, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_the_shell_would_split_or_expand_them() {
        assert_eq!(
            shell_word("/home/a/cairn/target/release/cairn"),
            "/home/a/cairn/target/release/cairn"
        );
        assert_eq!(shell_word("/home/a b/cairn"), "'/home/a b/cairn'");
        assert_eq!(shell_word("/tmp/it's/cairn"), r"'/tmp/it'\''s/cairn'");
        assert_eq!(shell_word("/x/$HOME/cairn"), "'/x/$HOME/cairn'");
        assert_eq!(shell_word(""), "''");
    }
}
