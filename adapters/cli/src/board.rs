//! The status board `execution watch` and `workflow run --watch` draw on a terminal, redrawn in
//! place (the model is `gh run watch`): a line per task with its state, attempt and time, a
//! `done/total` bar, and a summary at the end; on failure, the end of the failing task's stderr
//! and the command that shows all of it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::exit::CliError;
use crate::output::{line, text};

/// One task's line.
struct Row {
    name: String,
    status: &'static str,
    attempt: u64,
    started: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
    bar: ProgressBar,
}

/// The board. Dropping it leaves what it drew on the screen.
pub struct Board {
    _lines: MultiProgress,
    total: ProgressBar,
    rows: Vec<Row>,
    width: usize,
    colour: bool,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").field("tasks", &self.rows.len()).finish_non_exhaustive()
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// `1.2s`, `3m04s`.
fn span(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

fn is_done(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Skipped" | "Cancelled")
}

impl Board {
    /// A board for the tasks route's answer (`{"tasks": [...]}`), drawn on stdout.
    pub fn new(tasks: &Value, colour: bool) -> Self {
        let lines = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let listed = tasks["tasks"].as_array().cloned().unwrap_or_default();
        let width = listed.iter().map(|t| text(t, "task_name").len()).max().unwrap_or(4).max(4);
        let total = lines.add(ProgressBar::new(listed.len() as u64));
        total.set_style(
            ProgressStyle::with_template(if colour {
                "{bar:30.green/dim} {pos}/{len} tasks done  {elapsed}"
            } else {
                "{bar:30} {pos}/{len} tasks done  {elapsed}"
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("█▉ "),
        );
        let rows = listed
            .iter()
            .map(|t| {
                let bar = lines.add(ProgressBar::new_spinner());
                let status = match t["status"].as_str().unwrap_or("NotStarted") {
                    "Ready" => "Ready",
                    "Running" => "Running",
                    "Completed" => "Completed",
                    "Failed" => "Failed",
                    "Skipped" => "Skipped",
                    "Cancelled" => "Cancelled",
                    _ => "Waiting",
                };
                Row {
                    name: text(t, "task_name"),
                    status,
                    attempt: t["attempt"].as_u64().unwrap_or(0),
                    started: time(&t["started_at"]),
                    finished: time(&t["completed_at"]),
                    bar,
                }
            })
            .collect();
        let mut board = Self { _lines: lines, total, rows, width, colour };
        for i in 0..board.rows.len() {
            board.draw(i);
        }
        board.count();
        board
    }

    /// Takes one event (the events route's fields).
    pub fn event(&mut self, e: &Value) {
        let at = time(&e["created_at"]);
        let Some(i) = e["task_name"].as_str().and_then(|t| self.rows.iter().position(|r| r.name == t)) else {
            return;
        };
        let row = &mut self.rows[i];
        match e["event_type"].as_str().unwrap_or("") {
            "task_started" => {
                row.status = "Running";
                row.attempt = e["detail"]["attempt"].as_u64().unwrap_or(row.attempt + 1);
                row.started = at;
                row.finished = None;
            }
            "task_succeeded" => (row.status, row.finished) = ("Completed", at),
            "task_failed" => (row.status, row.finished) = ("Failed", at),
            "task_retrying" => (row.status, row.finished) = ("Retrying", at),
            "task_skipped" => (row.status, row.finished) = ("Skipped", at),
            "task_cancelled" => (row.status, row.finished) = ("Cancelled", at),
            "task_ready" | "task_lease_expired" | "task_released" => row.status = "Ready",
            "task_waiting" => row.status = "Waiting",
            _ => return,
        }
        self.draw(i);
        self.count();
    }

    fn count(&self) {
        self.total.set_position(self.rows.iter().filter(|r| is_done(r.status)).count() as u64);
    }

    fn draw(&mut self, i: usize) {
        let (width, colour) = (self.width, self.colour);
        let row = &self.rows[i];
        let (mark, paint) = match row.status {
            "Completed" => ("✓", "32"),
            "Failed" => ("✗", "31"),
            "Retrying" => ("↻", "33"),
            "Running" => ("", "36"),
            "Ready" => ("·", "33"),
            "Skipped" | "Cancelled" => ("-", "2"),
            _ => ("·", "2"),
        };
        let state =
            if colour { format!("\x1b[{paint}m{:<9}\x1b[0m", row.status) } else { format!("{:<9}", row.status) };
        let attempt = if row.attempt > 0 { format!("attempt {}", row.attempt) } else { String::new() };
        let line = format!("{:<width$}  {state}  {attempt:<10}", row.name);
        if row.status == "Running" {
            let since = row.started.map_or(Duration::ZERO, |s| (Utc::now() - s).to_std().unwrap_or_default());
            let bar = &row.bar;
            bar.set_style(
                ProgressStyle::with_template(if colour {
                    "{spinner:.cyan} {msg} {elapsed}"
                } else {
                    "{spinner} {msg} {elapsed}"
                })
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_elapsed(since);
            bar.set_message(line);
            bar.enable_steady_tick(Duration::from_millis(200));
        } else {
            let took = match (row.started, row.finished) {
                (Some(s), Some(f)) => span(f - s),
                _ => String::new(),
            };
            row.bar.disable_steady_tick();
            row.bar
                .set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            row.bar.set_message(format!("{mark} {line} {took}"));
        }
    }

    /// Stops redrawing, leaving the board as it ended, then prints the summary line for the
    /// finished `execution`, and for a failed task the end of its stderr.
    ///
    /// # Errors
    /// [`CliError`] if stdout cannot be written.
    pub fn finish(&mut self, execution: &Value, failed: Option<(String, String)>) -> Result<(), CliError> {
        for i in 0..self.rows.len() {
            if self.rows[i].status == "Running" {
                self.rows[i].status = "Cancelled";
            }
            self.draw(i);
            self.rows[i].bar.finish();
        }
        self.count();
        self.total.finish();
        let status = text(execution, "status");
        let took = match (time(&execution["started_at"]), time(&execution["completed_at"])) {
            (Some(s), Some(f)) => format!(" in {}", span(f - s)),
            _ => String::new(),
        };
        let done = self.rows.iter().filter(|r| r.status == "Completed").count();
        let (mark, paint) = if status == "Completed" { ("✓", "32") } else { ("✗", "31") };
        let head = format!("{mark} {status}{took}");
        let head = if self.colour { format!("\x1b[{paint}m{head}\x1b[0m") } else { head };
        let mut out = format!("{head}: {done} of {} tasks succeeded", self.rows.len());
        if let Some(error) = execution["error"].as_str() {
            out.push_str(&format!(" ({error})"));
        }
        line(out)?;
        if let Some((task, stderr)) = failed {
            let tail: Vec<&str> = stderr.lines().collect();
            let tail = &tail[tail.len().saturating_sub(10)..];
            if !tail.is_empty() {
                line(format!("\nthe end of {task}'s stderr:"))?;
                for l in tail {
                    line(format!("  {l}"))?;
                }
            }
            line(format!("\nall of it: cloacinactl execution logs {} {task}", text(execution, "execution_id")))?;
        }
        Ok(())
    }
}
