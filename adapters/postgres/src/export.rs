//! A tenant exported as JSON lines and imported back (docs/tenants.md). Every table of the
//! tenant's schema but its secrets goes, row by row as PostgreSQL renders it
//! (`row_to_json`), from one repeatable-read snapshot; an import provisions the tenant and
//! puts each row back (`json_populate_record`) in the same transaction, as the tenant's
//! role, then wakes the schedulers and workers for what it brought.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::AuditEntry;
use cloacina_domain::ports::{ExportSink, ExportSource, ExportSummary, StoreError, TenantArchive, TenantImported};
use cloacina_domain::{NewTenant, TenantRecord};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};

use crate::PgDb;
use crate::db::{ident, translate};
use crate::executions::queue::{DueTable, wake_in};
use crate::migrate::{TENANT, latest};
use crate::tenant_scope::enter_tenant;
use crate::tenants::{COLUMNS, NAME_TAKEN, provision, record as tenant_record};

/// The export format's name, in its header line.
pub const FORMAT: &str = "cloacina-tenant-export-v1";

/// The tenant's tables in the order an import can put them back (what rows point at first),
/// each with its order (for a stable export) and how many rows a fetch takes (archive chunks
/// are a MiB each). Secrets stay behind: their data key opens only with this deployment's
/// master key, and their values never leave it.
pub const TABLES: &[(&str, &str, u32)] = &[
    ("packages", "id", 200),
    ("package_chunks", "package_id, seq", 4),
    ("package_signatures", "package_id", 200),
    ("signing_keys", "id", 200),
    ("signature_policy", "singleton", 1),
    ("workflows", "name", 500),
    ("triggers", "name", 500),
    ("executions", "id", 500),
    ("execution_tasks", "execution_id, position", 500),
    ("execution_events", "id", 500),
    ("task_logs", "id", 200),
    ("audit_head", "singleton", 1),
    ("audit_log", "seq", 500),
];

/// The tenant tables an export leaves out on purpose.
pub const LEFT_OUT: &[&str] = &["_cloacina_migrations", "secret_key", "secrets"];

/// Tables made with one row by the migrations, replaced by the imported one.
const SINGLETONS: &[&str] = &["signature_policy", "audit_head"];

/// Identity columns, whose sequences follow the imported ids.
const IDENTITIES: &[(&str, &str)] = &[("execution_events", "id"), ("task_logs", "id")];

fn line(table: &str, row: &str) -> String {
    format!("{{\"table\":{},\"row\":{row}}}", Value::from(table))
}

#[async_trait]
impl TenantArchive for PgDb {
    async fn export_tenant(
        &self,
        tenant: &TenantName,
        sink: &mut dyn ExportSink,
    ) -> Result<Option<ExportSummary>, StoreError> {
        let Some(place) = self.place(tenant).await? else { return Ok(None) };
        let mut tx = self.pool.begin().await.map_err(translate)?;
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        let registry = sqlx::query(
            "SELECT row_to_json(t)::text, now() FROM (SELECT name, description, created_at, task_network,
                 rate_limit_per_key FROM tenants WHERE name = $1) t",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(translate)?;
        let Some(registry) = registry else { return Ok(None) };
        let (tenant_row, at): (String, DateTime<Utc>) =
            (registry.try_get(0).map_err(translate)?, registry.try_get(1).map_err(translate)?);
        // Keys as metadata: never the hash.
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT row_to_json(k)::text FROM (SELECT id, name, role, created_at, created_by, revoked, revoked_at,
                 expires_at, last_used_at FROM api_keys WHERE tenant = $1 ORDER BY created_at, id) k",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(translate)?;
        let header = serde_json::json!({
            "format": FORMAT,
            "schema_version": latest(TENANT),
            "exported_at": at.to_rfc3339(),
            "tenant": serde_json::from_str::<Value>(&tenant_row).unwrap_or(Value::Null),
        });
        if !sink.line(header.to_string()).await {
            return Ok(Some(ExportSummary::default()));
        }
        enter_tenant(&mut tx, &place.schema, &place.role).await.map_err(translate)?;
        let mut summary = ExportSummary::default();
        for (table, order, page) in TABLES {
            let declare = format!(
                "DECLARE rows NO SCROLL CURSOR FOR SELECT row_to_json(t)::text FROM {} t ORDER BY {order}",
                ident(table)
            );
            sqlx::raw_sql(AssertSqlSafe(declare)).execute(&mut *tx).await.map_err(translate)?;
            loop {
                let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!("FETCH {page} FROM rows")))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(translate)?;
                if rows.is_empty() {
                    break;
                }
                for row in rows {
                    summary.rows += 1;
                    if !sink.line(line(table, &row)).await {
                        return Ok(Some(summary));
                    }
                }
            }
            sqlx::raw_sql("CLOSE rows").execute(&mut *tx).await.map_err(translate)?;
        }
        for key in keys {
            summary.keys += 1;
            if !sink.line(line("api_keys", &key)).await {
                return Ok(Some(summary));
            }
        }
        // The end line says the stream is whole: an import refuses one without it.
        let end = serde_json::json!({"end": {"rows": summary.rows, "keys": summary.keys}});
        sink.line(end.to_string()).await;
        tx.rollback().await.map_err(translate)?;
        Ok(Some(summary))
    }

    async fn import_tenant(
        &self,
        new: &NewTenant,
        source: &mut dyn ExportSource,
        audit: &AuditEntry,
    ) -> Result<TenantImported, StoreError> {
        let invalid = |n: u64, why: String| Ok(TenantImported::Invalid(n, why));
        let header = match source.next_line().await {
            Some(Ok(text)) => text,
            Some(Err(e)) => return invalid(1, e),
            None => return invalid(1, "the export is empty".into()),
        };
        let header: Value = match serde_json::from_str(&header) {
            Ok(v) => v,
            Err(e) => return invalid(1, format!("the header is not JSON: {e}")),
        };
        if header["format"] != FORMAT {
            return invalid(1, format!("not a Cloacina tenant export (format {})", header["format"]));
        }
        if header["schema_version"].as_i64() != Some(latest(TENANT)) {
            return invalid(
                1,
                format!(
                    "exported at tenant schema version {}; this server is at {}: import with the same release",
                    header["schema_version"],
                    latest(TENANT)
                ),
            );
        }
        let mut tx = self.pool.begin().await.map_err(translate)?;
        match provision(&mut tx, &new.name, new.description.as_ref(), Some(&new.db_password), Some(new.created_at))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_unique_violation_of(NAME_TAKEN) => return Ok(TenantImported::NameTaken),
            Err(e) => return Err(e),
        }
        // The registry row as it was: its creation time, description (unless the import names
        // one), task network and rate limit.
        sqlx::query(
            "UPDATE tenants t SET created_at = coalesce(h.created_at, t.created_at),
                 description = coalesce(t.description, h.description),
                 task_network = coalesce(h.task_network, t.task_network),
                 rate_limit_per_key = h.rate_limit_per_key
             FROM json_populate_record(NULL::tenants, $2::json) h WHERE t.name = $1",
        )
        .bind(new.name.as_str())
        .bind(header["tenant"].to_string())
        .execute(&mut *tx)
        .await
        .map_err(translate)?;
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM tenants WHERE name = $1")))
            .bind(new.name.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(translate)?;
        let record: TenantRecord = tenant_record(&row).map_err(translate)?;
        // Provisioning leaves the tenant; the rows go in as its role, in its schema.
        let role = record.db_role.as_deref().unwrap_or_default();
        enter_tenant(&mut tx, &record.schema, role).await.map_err(translate)?;
        let truncate = format!("TRUNCATE {}", SINGLETONS.iter().map(|t| ident(t)).collect::<Vec<_>>().join(", "));
        sqlx::raw_sql(AssertSqlSafe(truncate)).execute(&mut *tx).await.map_err(translate)?;
        let mut summary = ExportSummary::default();
        let mut n = 1u64;
        let mut ended = false;
        while let Some(next) = source.next_line().await {
            n += 1;
            let text = match next {
                Ok(text) => text,
                Err(e) => return invalid(n, e),
            };
            if text.trim().is_empty() {
                continue;
            }
            if ended {
                return invalid(n, "a line after the end line".into());
            }
            let parsed: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => return invalid(n, format!("not JSON: {e}")),
            };
            if let Some(end) = parsed.get("end") {
                if end["rows"].as_u64() != Some(summary.rows) {
                    return invalid(n, format!("the end line counts {} rows; {} came", end["rows"], summary.rows));
                }
                ended = true;
                continue;
            }
            let table = parsed["table"].as_str().unwrap_or_default();
            if table == "api_keys" {
                summary.keys += 1;
                continue;
            }
            if !TABLES.iter().any(|(t, _, _)| *t == table) {
                return invalid(n, format!("unknown table '{table}'"));
            }
            let insert = format!(
                "INSERT INTO {t} OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_record(NULL::{t}, $1::json)",
                t = ident(table)
            );
            if let Err(e) = sqlx::query(AssertSqlSafe(insert)).bind(parsed["row"].to_string()).execute(&mut *tx).await {
                return invalid(n, format!("a row of {table} was refused: {}", translate(e)));
            }
            summary.rows += 1;
        }
        if !ended {
            return invalid(n, "the export is cut off: it has no end line".into());
        }
        for (table, column) in IDENTITIES {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), coalesce(max({column}), 0) + 1, false) FROM {table}"
            );
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await.map_err(translate)?;
        }
        let trigger_due: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT min(due_at) FROM triggers").fetch_one(&mut *tx).await.map_err(translate)?;
        let work_due: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT min(ready_at) FROM execution_tasks WHERE status = 'ready'")
                .fetch_one(&mut *tx)
                .await
                .map_err(translate)?;
        sqlx::raw_sql("SET LOCAL ROLE NONE; SET LOCAL search_path TO DEFAULT")
            .execute(&mut *tx)
            .await
            .map_err(translate)?;
        crate::audit::append(&mut tx, &audit.clone().with("rows", summary.rows)).await?;
        if let Some(due) = trigger_due {
            wake_in(&mut tx, DueTable::Triggers, &new.name, due).await?;
        }
        if let Some(due) = work_due {
            wake_in(&mut tx, DueTable::Work, &new.name, due).await?;
        }
        tx.commit().await.map_err(translate)?;
        Ok(TenantImported::Imported(record, summary))
    }
}
