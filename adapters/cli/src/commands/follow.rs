//! Following an execution until it finishes (`execution watch`, `workflow run --wait` and
//! `--watch`): its events over the live socket as they are committed, the events route polled
//! where no socket can be had, and through a server restart either way.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::execution::{event_line, is_terminal};
use crate::board::Board;
use crate::client::Client;
use crate::exit::CliError;
use crate::socket::Received;

/// How often the events route is polled when there is no socket.
const POLL: Duration = Duration::from_millis(300);

/// How many times in a row a lost socket is opened again before polling takes over.
const RECONNECTS: u32 = 5;

/// How many times a follow takes to the socket: at the start, then after outages.
const SOCKET_TRIES: u32 = 3;

/// How long `follow` keeps trying through a server it cannot reach (a restart, a rolling
/// deploy), unless its own timeout comes first.
const OUTAGE: Duration = Duration::from_secs(300);

/// How `follow` prints the events it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Prints nothing; returns the finished execution.
    Quiet,
    /// One line per event.
    Lines,
    /// One JSON object per event, then the finished execution: NDJSON.
    Json,
    /// A status board redrawn in place, for a terminal ([`Board`]).
    Board,
}

impl Follow {
    /// Lines, or on a terminal the board.
    pub fn for_people() -> Self {
        use std::io::IsTerminal as _;
        if std::io::stdout().is_terminal() { Follow::Board } else { Follow::Lines }
    }
}

/// Prints what `follow` sees as its [`Follow`] says.
struct Printer {
    how: Follow,
    board: Option<Board>,
}

impl Printer {
    async fn new(client: &Client, base: &str, id: &str, how: Follow) -> Result<Self, CliError> {
        let board = if how == Follow::Board {
            let tasks = client.call(Method::GET, &format!("{base}/{id}/tasks"), None::<&()>).await?;
            Some(Board::new(&tasks, crate::output::colour_on()))
        } else {
            None
        };
        Ok(Self { how, board })
    }

    fn event(&mut self, e: &Value) -> Result<(), CliError> {
        match (self.how, &mut self.board) {
            (Follow::Lines, _) => crate::output::line(event_line(e)),
            (Follow::Json, _) => crate::output::line(e),
            (Follow::Board, Some(board)) => {
                board.event(e);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The execution has finished: NDJSON's last line, or the board's summary (with the end
    /// of the failed task's stderr).
    async fn done(&mut self, client: &Client, base: &str, id: &str, e: &Value) -> Result<(), CliError> {
        match (self.how, &mut self.board) {
            (Follow::Json, _) => crate::output::line(e),
            (Follow::Board, Some(board)) => {
                let failed = if e["status"] == "Completed" { None } else { failed_stderr(client, base, id).await };
                board.finish(e, failed)
            }
            _ => Ok(()),
        }
    }
}

/// The first failed task of the execution and its last attempt's stderr, if it can be read.
async fn failed_stderr(client: &Client, base: &str, id: &str) -> Option<(String, String)> {
    let tasks = client.call(Method::GET, &format!("{base}/{id}/tasks"), None::<&()>).await.ok()?;
    let task = tasks["tasks"].as_array()?.iter().find(|t| t["status"] == "Failed")?;
    let name = task["task_name"].as_str()?.to_owned();
    let logs = client.call(Method::GET, &format!("{base}/{id}/tasks/{name}/logs"), None::<&()>).await.ok()?;
    let stderr = logs["attempts"].as_array()?.last()?["stderr"].as_str().unwrap_or_default().to_owned();
    Some((name, stderr))
}

/// Follows an execution until it finishes, printing its events as `how` says; returns the
/// finished execution. The events come over the execution's live socket; where no socket can
/// be had (a proxy that does not pass upgrades), or it is lost for good, the events route is
/// polled from the last event printed. Through a server that cannot be reached or answers 429,
/// 502, 503 or 504 (a restart, a rolling deploy) it keeps trying, for up to five minutes, and
/// goes on from the last event it printed, over the socket again once the server answers.
///
/// # Errors
/// [`CliError::WaitTimedOut`] once `timeout` has passed; the error of a request that fails
/// otherwise, or that still fails after the outage allowance.
pub async fn follow(
    client: &Client,
    base: &str,
    id: &str,
    timeout: Option<Duration>,
    how: Follow,
) -> Result<Value, CliError> {
    let started = Instant::now();
    let mut since = 0i64;
    let deadline = timeout.map(|t| started + t);
    let mut printer = Printer::new(client, base, id, how).await?;
    let how = &mut printer;
    // The socket at the start, and again each time the server answers after an outage.
    let mut sockets_left = SOCKET_TRIES;
    loop {
        if sockets_left > 0 {
            sockets_left -= 1;
            match over_socket(client, base, id, &mut since, how, deadline).await? {
                Live::Finished(e) => return Ok(e),
                Live::TimedOut => return Err(timed_out(id, started, timeout)),
                Live::Unavailable => {}
            }
        }
        let mut outage: Option<Instant> = None;
        let mut backoff = POLL;
        loop {
            let step = follow_step(client, base, id, &mut since, &mut *how).await;
            match step {
                Ok(Some(e)) => return Ok(e),
                Ok(None) => {
                    if outage.take().is_some() {
                        crate::output::note("the server answers again; following on");
                        if sockets_left > 0 {
                            break;
                        }
                    }
                    backoff = POLL;
                }
                Err(e) if transient(&e) && outage.is_none_or(|at| at.elapsed() < OUTAGE) => {
                    if outage.is_none() {
                        crate::output::note(format!("{e}; trying again"));
                        outage = Some(Instant::now());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
            if timeout.is_some_and(|t| started.elapsed() >= t) {
                return Err(timed_out(id, started, timeout));
            }
            tokio::time::sleep(backoff).await;
        }
    }
}

/// Whether a failed request is worth trying again through an outage.
fn transient(e: &CliError) -> bool {
    match e {
        CliError::Unreachable { .. } => true,
        CliError::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
        _ => false,
    }
}

/// One look: prints the events after `since` (moving it on), then reads the execution;
/// returns it once it has finished, with the events written with its final status.
async fn follow_step(
    client: &Client,
    base: &str,
    id: &str,
    since: &mut i64,
    how: &mut Printer,
) -> Result<Option<Value>, CliError> {
    print_events(client, base, id, since, how).await?;
    let e = client.call(Method::GET, &format!("{base}/{id}"), None::<&()>).await?;
    if !is_terminal(e["status"].as_str().unwrap_or("")) {
        return Ok(None);
    }
    print_events(client, base, id, since, how).await?;
    how.done(client, base, id, &e).await?;
    Ok(Some(e))
}

async fn print_events(
    client: &Client,
    base: &str,
    id: &str,
    since: &mut i64,
    how: &mut Printer,
) -> Result<(), CliError> {
    if how.how == Follow::Quiet {
        return Ok(());
    }
    loop {
        let page =
            client.call(Method::GET, &format!("{base}/{id}/events?since={since}&limit=1000"), None::<&()>).await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            how.event(e)?;
        }
        *since = page["next"].as_i64().unwrap_or(*since);
        if events.len() < 1000 {
            return Ok(());
        }
    }
}

fn timed_out(id: &str, started: Instant, timeout: Option<Duration>) -> CliError {
    CliError::WaitTimedOut(format!(
        "execution {id} has not finished after {}s (--wait-timeout {})",
        started.elapsed().as_secs(),
        timeout.unwrap_or_default().as_secs()
    ))
}

/// How following over the socket ended.
enum Live {
    Finished(Value),
    TimedOut,
    /// No socket could be had, or it was lost too often: poll from `since`.
    Unavailable,
}

/// Follows over `/v1/ws/tenants/{t}/executions/{id}?since=`, printing each event and moving
/// `since` on; a lost socket is opened again from `since`, so nothing is printed twice.
async fn over_socket(
    client: &Client,
    base: &str,
    id: &str,
    since: &mut i64,
    how: &mut Printer,
    deadline: Option<Instant>,
) -> Result<Live, CliError> {
    let Some(tenant_path) = base.strip_prefix("/v1") else { return Ok(Live::Unavailable) };
    let mut failures = 0;
    loop {
        let path = format!("/v1/ws{tenant_path}/{id}?since={since}");
        let Ok(mut socket) = client.socket(&path).await else {
            failures += 1;
            if failures >= RECONNECTS || *since == 0 {
                return Ok(Live::Unavailable);
            }
            tokio::time::sleep(POLL * failures).await;
            continue;
        };
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d.into(), socket.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        socket.close().await;
                        return Ok(Live::TimedOut);
                    }
                },
                None => socket.next().await,
            };
            match next {
                Received::Event(e) => {
                    failures = 0;
                    *since = e["sequence_num"].as_i64().unwrap_or(*since);
                    how.event(&e)?;
                }
                Received::Closed(1000) => {
                    let e = client.call(Method::GET, &format!("{base}/{id}"), None::<&()>).await?;
                    if is_terminal(e["status"].as_str().unwrap_or("")) {
                        how.done(client, base, id, &e).await?;
                        return Ok(Live::Finished(e));
                    }
                    break;
                }
                Received::Output(_) => {}
                // Revoked, deleted, refused: the events route says why, in its own words.
                Received::Closed(1008) => return Ok(Live::Unavailable),
                Received::Closed(_) | Received::Lost => {
                    failures += 1;
                    break;
                }
            }
        }
        if failures >= RECONNECTS {
            return Ok(Live::Unavailable);
        }
        tokio::time::sleep(POLL * failures).await;
    }
}
