//! Recording attempts' outcomes, a batch of them in one transaction.

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{Attempt, AttemptReport, Recorded, TaskStatus};
use cloacina_domain::ports::StoreError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use crate::db::translate;
use crate::keys::ts;

use super::*;

pub(super) fn record_one(
    tx: &Connection,
    worker: &str,
    report: &AttemptReport,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let id = report.key.execution_id;
    let pos = i64::try_from(report.key.position).unwrap_or(i64::MAX);
    let held: Option<(String, i64, Option<String>)> = tx
        .query_row(
            "SELECT status, attempts, lease_owner FROM execution_tasks WHERE execution_id = ?1 AND position = ?2",
            params![id.to_string(), pos],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(translate)?;
    let ours =
        matches!(&held, Some((s, a, Some(o))) if s == "running" && *a == i64::from(report.attempt) && o == worker);
    if !ours {
        return Ok(Recorded::Stale);
    }
    let Some(mut loaded) = load(tx, id)? else { return Ok(Recorded::Stale) };
    let mut progress = loaded.progress.clone();
    let settled = loaded.plan.settle(&mut progress, report.key.position, &report.outcome);
    let task_name = loaded.plan.tasks.get(report.key.position).map(|t| t.id.to_string()).unwrap_or_default();
    let (output, error) = match &report.outcome {
        Attempt::Succeeded => (report.output.as_ref().map(|o| Value::Object(o.clone()).to_string()), None),
        Attempt::Failed(reason) => (None, Some(reason.clone())),
    };
    tx.execute(
        "UPDATE execution_tasks SET output = ?3, error = ?4 WHERE execution_id = ?1 AND position = ?2",
        params![id.to_string(), pos, output, error],
    )
    .map_err(translate)?;
    tx.execute(
        "INSERT INTO task_logs (execution_id, position, task_id, attempt, stdout, stderr, truncated, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id.to_string(),
            pos,
            task_name,
            report.attempt,
            report.stdout,
            report.stderr,
            report.truncated,
            ts(now)
        ],
    )
    .map_err(translate)?;
    let failed_for_good =
        settled.changes.iter().any(|c| c.position == report.key.position && c.status == TaskStatus::Failed);
    let execution_error = match &report.outcome {
        Attempt::Failed(reason) if failed_for_good => {
            Some(format!("task '{task_name}' failed after {} attempt(s): {reason}", report.attempt))
        }
        _ => None,
    };
    loaded.progress = progress;
    write_settled(tx, &loaded, &settled, Some(report.key.position), execution_error, now).map_err(translate)?;
    Ok(Recorded::Done { readied: settled.readied() })
}

/// Records a batch of outcomes in one transaction.
pub(super) fn record(
    conn: &mut Connection,
    worker: &str,
    reports: &[AttemptReport],
    now: DateTime<Utc>,
) -> Result<Vec<Recorded>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(translate)?;
    let recorded = reports.iter().map(|r| record_one(&tx, worker, r, now)).collect::<Result<Vec<_>, _>>()?;
    tx.commit().map_err(translate)?;
    Ok(recorded)
}
