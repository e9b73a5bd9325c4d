//! Recording attempts' outcomes, a batch of them in one transaction.

use chrono::{DateTime, Utc};
use cloacina_domain::execution::{AttemptReport, Hold, Recorded, TaskStatus};
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
    let held: Option<(TaskStatus, i64, Option<String>)> = tx
        .query_row(
            "SELECT status, attempts, lease_owner FROM execution_tasks WHERE execution_id = ?1 AND position = ?2",
            params![id.to_string(), pos],
            |r| Ok((task_status(r, 0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(translate)?;
    let holds = held.as_ref().is_some_and(|(status, attempts, owner)| {
        let attempts = u32::try_from(*attempts).unwrap_or(0);
        report.holds(worker, Hold { status: *status, attempts, owner: owner.as_deref() })
    });
    if !holds {
        return Ok(Recorded::Stale);
    }
    let Some(mut loaded) = load(tx, id)? else { return Ok(Recorded::Stale) };
    let rec = loaded.plan.record(&mut loaded.progress, report);
    let output = rec.output.map(|o| Value::Object(o).to_string());
    tx.execute(
        "UPDATE execution_tasks SET output = ?3, error = ?4 WHERE execution_id = ?1 AND position = ?2",
        params![id.to_string(), pos, output, rec.error],
    )
    .map_err(translate)?;
    tx.execute(
        "INSERT INTO task_logs (execution_id, position, task_id, attempt, stdout, stderr, truncated, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![id.to_string(), pos, rec.task, report.attempt, report.stdout, report.stderr, report.truncated, ts(now)],
    )
    .map_err(translate)?;
    write_settled(tx, &loaded, &rec.settled, Some(report.key.position), now).map_err(translate)?;
    Ok(Recorded::Done { readied: rec.settled.readied() })
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
