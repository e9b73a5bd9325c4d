//! Printing answers: a table for people, JSON or YAML for programs, bare ids for scripts.

use std::io::Write;

use serde_json::Value;

use crate::args::OutputFormat;
use crate::exit::CliError;

/// Whether states are coloured, settled once per run by [`set_colour`].
static COLOUR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Settles colour for this run: `--color always|never`, or on `auto` a terminal on stdout
/// without `NO_COLOR` (set to anything but empty).
pub fn set_colour(choice: crate::args::ColorChoice) {
    use std::io::IsTerminal as _;
    let on = match choice {
        crate::args::ColorChoice::Always => true,
        crate::args::ColorChoice::Never => false,
        crate::args::ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let _ = COLOUR.set(on);
}

pub fn colour_on() -> bool {
    COLOUR.get().copied().unwrap_or(false)
}

/// `state` in its colour: green for what went well, red for what failed or was revoked,
/// yellow for what waits, cyan for what runs, dim for what was stopped or paused.
fn paint(state: &str) -> String {
    let code = match state.to_ascii_lowercase().as_str() {
        "completed" | "succeeded" | "active" | "ready" => "32",
        "failed" | "revoked" | "expired" => "31",
        "pending" | "waiting" | "scheduled" => "33",
        "running" => "36",
        "cancelled" | "skipped" | "paused" | "true" => "2",
        _ => return state.to_owned(),
    };
    format!("\x1b[{code}m{state}\x1b[0m")
}

/// Rows with a header, printed in aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// Columns holding states, coloured when colour is on.
    states: Vec<usize>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self { headers: headers.to_vec(), rows: Vec::new(), states: Vec::new() }
    }

    /// Marks the column headed `header` as holding states, for colour.
    #[must_use]
    pub fn states_in(mut self, header: &str) -> Self {
        self.states.extend(self.headers.iter().position(|h| *h == header));
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, or `nothing` when it has no rows: an empty list says so.
    pub fn render_or(&self, nothing: &str) -> String {
        if self.rows.is_empty() { nothing.to_owned() } else { self.render() }
    }

    /// The table as text, columns padded to their widest cell.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>, body: bool| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    let pad = " ".repeat(w.saturating_sub(c.chars().count()));
                    if body && colour_on() && self.states.contains(&i) {
                        format!("{}{pad}", paint(c))
                    } else {
                        format!("{c}{pad}")
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = vec![line(self.headers.clone(), false)];
        out.extend(self.rows.iter().map(|r| line(r.iter().map(String::as_str).collect(), true)));
        out.join("\n")
    }
}

/// Prints `value` in `format`; `table` and `ids` are its table and id forms.
///
/// # Errors
/// [`CliError::Local`] if YAML encoding fails.
pub fn emit(
    format: OutputFormat,
    value: &Value,
    table: impl FnOnce() -> String,
    ids: impl FnOnce() -> Vec<String>,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Table => line(table()),
        OutputFormat::Json => line(serde_json::to_string_pretty(value).unwrap_or_default()),
        OutputFormat::Yaml => {
            let text =
                serde_yaml_ng::to_string(value).map_err(|e| CliError::Local(format!("cannot print YAML: {e}")))?;
            write(text.as_bytes())
        }
        OutputFormat::Id => ids().iter().try_for_each(line),
    }
}

/// Prints `text` and a newline on stdout.
///
/// # Errors
/// [`CliError::Closed`] when the reader went away (`| head -1`): the command ends quietly.
pub fn line(text: impl std::fmt::Display) -> Result<(), CliError> {
    write(format!("{text}\n").as_bytes())
}

/// Writes `bytes` to stdout as they are.
///
/// # Errors
/// As [`line`]; another write error is a [`CliError::Local`].
pub fn write(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::Closed),
        Err(e) => Err(CliError::Local(format!("cannot write the output: {e}"))),
    }
}

/// Asks `question` on stderr and reads one line of answer from stdin; `None` if stdin ended.
pub fn ask(question: &str) -> Option<String> {
    {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{question}");
        let _ = err.flush();
    }
    let mut answer = String::new();
    match std::io::stdin().read_line(&mut answer) {
        Ok(n) if n > 0 => Some(answer),
        _ => None,
    }
}

/// Prints a note for people on stderr; a closed stderr is no reason to fail the command.
pub fn note(text: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// How long ago the RFC 3339 time in `v[key]` was, as kubectl's AGE column gives it: `42s`,
/// `5m`, `3h`, `12d`; "-" without a time.
pub fn age(v: &Value, key: &str) -> String {
    let Some(at) = v.get(key).and_then(Value::as_str).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "-".to_owned();
    };
    let secs = (chrono::Utc::now() - at.to_utc()).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A string field of a JSON object, or "-".
/// The rows of a list answer: its `items` (the list envelope), or the answer itself when it is
/// a bare array.
pub fn items(listed: &Value) -> Vec<Value> {
    listed.get("items").unwrap_or(listed).as_array().cloned().unwrap_or_default()
}

pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectls() {
        let ago = |secs: i64| {
            let at = chrono::Utc::now() - chrono::Duration::seconds(secs);
            age(&serde_json::json!({"t": at.to_rfc3339()}), "t")
        };
        assert_eq!(
            (ago(5), ago(119), ago(600), ago(3 * 3600), ago(5 * 86_400)),
            ("5s".into(), "119s".into(), "10m".into(), "3h".into(), "5d".into())
        );
        assert_eq!(age(&serde_json::json!({}), "t"), "-");
        assert_eq!(Table::new(&["A"]).render_or("no rows"), "no rows");
    }

    #[test]
    fn a_state_painted_keeps_its_column_aligned() {
        assert_eq!(paint("Failed"), "\x1b[31mFailed\x1b[0m");
        assert_eq!(paint("Completed"), "\x1b[32mCompleted\x1b[0m");
        assert_eq!(paint("nightly"), "nightly", "only states");
    }

    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let mut t = Table::new(&["ID", "NAME"]);
        t.row(vec!["1".into(), "ci-deploy".into()]);
        t.row(vec!["22".into(), "x".into()]);
        assert_eq!(t.render(), "ID  NAME\n1   ci-deploy\n22  x");
    }
}
