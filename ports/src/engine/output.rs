//! A running attempt's output on its way to the store: the runner writes it into a buffer as it
//! comes, and the attempt keeps what has come about every second (sooner past 64 KiB), so the
//! output of an attempt that never reports an outcome (cancelled, its lease lost, given back,
//! its server killed) is kept up to its end, or up to the last second. What comes after the
//! last piece goes with the outcome, in the same transaction.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloacina_domain::TenantName;
use cloacina_domain::execution::{ClaimedTask, OutputPiece};
use cloacina_domain::ports::{OutputSink, OutputStream, StopSignal, TaskJob, TaskRun};
use tokio::sync::Notify;

use super::Engine;

/// How often a running attempt's new output is kept.
pub(super) const KEEP_EVERY: Duration = Duration::from_secs(1);
/// How much new output is kept at once, without waiting for the second.
const KEEP_AT: usize = 64 * 1024;
/// How long a stopped attempt's last piece may take to keep.
const LAST_PIECE_WITHIN: Duration = Duration::from_secs(5);

/// Output that has come and is not yet kept: stdout's bytes, stderr's bytes. The values of
/// the task's secrets are masked in every piece taken.
#[derive(Default)]
pub(super) struct Pending {
    both: Mutex<(Vec<u8>, Vec<u8>)>,
    full: Notify,
    masks: Vec<String>,
    /// The longest mask's length: that much less one stays behind at a take (unless `all`),
    /// so a value split between two pieces is whole in the next one.
    hold: usize,
}

impl OutputSink for Pending {
    fn write(&self, stream: OutputStream, bytes: &[u8]) {
        let mut both = self.lock();
        match stream {
            OutputStream::Stdout => both.0.extend_from_slice(bytes),
            OutputStream::Stderr => both.1.extend_from_slice(bytes),
        }
        if both.0.len() + both.1.len() >= KEEP_AT {
            self.full.notify_one();
        }
    }
}

impl Pending {
    /// Plain bytes, changed in single steps: a poisoned lock is taken over.
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<u8>, Vec<u8>)> {
        self.both.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns once there is output to keep: after `every`, or sooner when much has come.
    async fn due(&self, every: Duration) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.full.notified() => {}
            }
            let both = self.lock();
            if !(both.0.is_empty() && both.1.is_empty()) {
                return;
            }
        }
    }

    /// A buffer that masks these values (shorter than 4 bytes: left alone).
    pub(super) fn masking(values: Vec<String>) -> Self {
        let masks: Vec<String> = values.into_iter().filter(|v| v.len() >= 4).collect();
        let hold = masks.iter().map(String::len).max().map_or(0, |n| n - 1);
        Self { masks, hold, ..Self::default() }
    }

    /// What has come, as text, secrets masked. Unless `all`, a character cut in two at the
    /// end of a stream, and the bytes that may begin a secret's value, stay for the next
    /// take; with `all`, such a remnant becomes U+FFFD.
    pub(super) fn take(&self, all: bool) -> (String, String) {
        let mut both = self.lock();
        let (out, err) = &mut *both;
        let hold = if all { 0 } else { self.hold };
        let masks: Vec<&str> = self.masks.iter().map(String::as_str).collect();
        (masked(out, all, hold, &masks), masked(err, all, hold, &masks))
    }

    /// Puts text that could not be kept back in front of what came since.
    fn put_back(&self, out: String, err: String) {
        let mut both = self.lock();
        both.0.splice(0..0, out.into_bytes());
        both.1.splice(0..0, err.into_bytes());
    }
}

/// Drains `bytes` as text with every whole value in `masks` masked, leaving the last `hold`
/// bytes of the masked text (what may begin a value whose rest has not come) in front of
/// what comes next.
fn masked(bytes: &mut Vec<u8>, all: bool, hold: usize, masks: &[&str]) -> String {
    let text = cloacina_domain::secrets::mask(&text(bytes, all), masks);
    if hold == 0 {
        return text;
    }
    let mut cut = text.len().saturating_sub(hold);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    bytes.splice(0..0, text.as_bytes()[cut..].iter().copied());
    text[..cut].to_owned()
}

/// Drains `bytes` as text, up to a trailing incomplete character unless `all`.
fn text(bytes: &mut Vec<u8>, all: bool) -> String {
    let n = if all { bytes.len() } else { complete_len(bytes) };
    let text = String::from_utf8_lossy(&bytes[..n]).into_owned();
    bytes.drain(..n);
    text
}

/// The length of `b` without a UTF-8 character that starts in its last three bytes and is
/// not complete.
fn complete_len(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let i = b.len() - back;
        let c = b[i];
        if c & 0xC0 == 0x80 {
            continue;
        }
        let need = match c {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if need > back { i } else { b.len() };
    }
    b.len()
}

/// A task's output object with the values of its secrets masked in every string.
pub(super) fn mask_object(
    output: serde_json::Map<String, serde_json::Value>,
    masks: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    fn walk(v: serde_json::Value, masks: &[&str]) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(cloacina_domain::secrets::mask(&s, masks)),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| walk(v, masks)).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, walk(v, masks))).collect()),
            other => other,
        }
    }
    if masks.is_empty() {
        return output;
    }
    let masks: Vec<&str> = masks.iter().map(String::as_str).collect();
    output.into_iter().map(|(k, v)| (k, walk(v, &masks))).collect()
}

/// The note added to a stream's last piece when the runner cut it at its cap.
pub(super) fn cut_note(stream: &str, cut: u64) -> String {
    if cut == 0 { String::new() } else { format!("\n[cloacina: {cut} more bytes of {stream} were cut at the cap]\n") }
}

impl Engine {
    /// Runs `job`, keeping its output as it comes, until the runner returns. What came after
    /// the last piece kept stays in `pending`.
    pub(super) async fn run_keeping_output(
        &self,
        tenant: &TenantName,
        task: &ClaimedTask,
        job: TaskJob,
        pending: &Arc<Pending>,
        stop: StopSignal,
    ) -> TaskRun {
        let run = self.ports.runner.run(job, pending.clone(), stop);
        tokio::pin!(run);
        // One piece at a time is on its way; the run is polled all the while (a slow store
        // must not hold up its timeout or its stop), and a piece on its way when the run
        // ends gets there before the rest is taken.
        let mut on_its_way: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> = None;
        loop {
            tokio::select! {
                run = &mut run => {
                    if let Some(piece) = on_its_way.take() {
                        piece.await;
                    }
                    return run;
                }
                () = async {
                    match on_its_way.as_mut() {
                        Some(piece) => piece.await,
                        None => std::future::pending().await,
                    }
                } => on_its_way = None,
                () = pending.due(KEEP_EVERY), if on_its_way.is_none() => {
                    let (out, err) = pending.take(false);
                    let pending = pending.clone();
                    on_its_way = Some(Box::pin(async move {
                        if let Err((out, err)) = self.keep(tenant, task, out, err, false, false).await {
                            pending.put_back(out, err);
                        }
                    }));
                }
            }
        }
    }

    /// Keeps the last piece of an attempt that ended without an outcome to record, within a
    /// bounded time (past it, or if the store fails, that piece is lost and logged).
    pub(super) async fn keep_last(
        &self,
        tenant: &TenantName,
        task: &ClaimedTask,
        out: String,
        err: String,
        truncated: bool,
    ) {
        let kept = tokio::time::timeout(LAST_PIECE_WITHIN, self.keep(tenant, task, out, err, truncated, true)).await;
        if !matches!(kept, Ok(Ok(()))) {
            tracing::warn!(%tenant, execution = %task.key.execution_id, task = %task.task_id,
                "the last output of a stopped attempt could not be kept");
        }
    }

    /// Keeps one piece; on failure gives the text back.
    async fn keep(
        &self,
        tenant: &TenantName,
        task: &ClaimedTask,
        stdout: String,
        stderr: String,
        truncated: bool,
        ended: bool,
    ) -> Result<(), (String, String)> {
        if stdout.is_empty() && stderr.is_empty() && !ended {
            return Ok(());
        }
        let piece = OutputPiece {
            key: task.key,
            task_id: task.task_id.clone(),
            attempt: task.attempt,
            stdout,
            stderr,
            truncated,
            ended,
        };
        match self.ports.queue.append_output(tenant, piece.clone(), self.ports.clock.now()).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(%tenant, execution = %task.key.execution_id, task = %task.task_id, error = %e,
                    "cannot keep a running attempt's output yet; it goes with the next piece");
                Err((piece.stdout, piece.stderr))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_value_is_masked_even_split_between_two_pieces() {
        let p = Pending::masking(vec!["s3cr3t-value".into(), "ab".into()]);
        let mut kept = String::new();
        for chunk in ["log: s3cr", "3t-val", "ue done, ab ", "and s3cr3t-value again\n"] {
            p.write(OutputStream::Stdout, chunk.as_bytes());
            kept.push_str(&p.take(false).0);
            assert!(!kept.contains("s3cr3t"), "no piece holds the value or its start: {kept:?}");
        }
        kept.push_str(&p.take(true).0);
        assert_eq!(kept, "log: *** done, ab and *** again\n", "short values are left alone");
    }

    #[test]
    fn a_character_cut_in_two_waits_for_its_rest() {
        let p = Pending::default();
        let euro = "€".as_bytes();
        p.write(OutputStream::Stdout, &[b'a', euro[0], euro[1]]);
        p.write(OutputStream::Stderr, b"e");
        assert_eq!(p.take(false), ("a".to_owned(), "e".to_owned()));
        p.write(OutputStream::Stdout, &euro[2..]);
        assert_eq!(p.take(false), ("€".to_owned(), String::new()));
        p.write(OutputStream::Stdout, &euro[..1]);
        assert_eq!(p.take(true).0, "\u{FFFD}", "at the end, a remnant is replaced");
        assert_eq!(complete_len(&[0xF0, 0x9F, 0x98]), 0);
        assert_eq!(complete_len("ok😀".as_bytes()), 6);
    }

    #[test]
    fn text_that_could_not_be_kept_goes_before_what_came_since() {
        let p = Pending::default();
        p.write(OutputStream::Stdout, b"later");
        p.put_back("first ".into(), "err ".into());
        assert_eq!(p.take(true), ("first later".to_owned(), "err ".to_owned()));
    }
}
