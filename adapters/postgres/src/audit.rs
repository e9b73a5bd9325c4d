//! The audit trail on PostgreSQL: each tenant's chain in its own schema (`audit_log`,
//! `audit_head`), written by its role; the control chain in `public`. The domain links each
//! row ([`AuditEntry::link`]); this file locks the head, and writes the row and the new head.
//! Table names are unqualified: the transaction's scope (the tenant's `search_path`, or the
//! login role's) picks the chain.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::{Actor, AuditEntry, AuditFilter, AuditRecord, ChainHead, RequestOrigin};
use cloacina_domain::ports::{AuditPage, AuditStore, Chain, StoreError};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder, Row};

use crate::PgDb;
use crate::db::{TenantPlace, translate};
use crate::tenant_scope::enter_tenant;

const COLUMNS: &str =
    "seq, at, actor_key_id, actor_name, action, target, outcome, request_id, client, detail, prev_hash, hash";

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn head(tx: &mut PgConnection, lock: bool) -> Result<ChainHead, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let (seq, hash, anchor_seq, anchor_hash): (i64, String, i64, String) =
        sqlx::query_as(AssertSqlSafe(format!("SELECT seq, hash, anchor_seq, anchor_hash FROM audit_head{lock}")))
            .fetch_one(&mut *tx)
            .await?;
    Ok(ChainHead { seq: seq.unsigned_abs(), hash, anchor_seq: anchor_seq.unsigned_abs(), anchor_hash })
}

/// Appends `entry` to the chain of the transaction's scope: the tenant's, once the
/// transaction has entered it; the control chain, as the login role. The head's row lock
/// orders concurrent appends, and is held to the commit: append last.
pub(crate) async fn append(tx: &mut PgConnection, entry: &AuditEntry) -> Result<(), StoreError> {
    let head = head(tx, true).await.map_err(translate)?;
    let (row, next) = entry.clone().link(&head);
    let e = &row.entry;
    sqlx::query(
        "WITH stored AS (
             INSERT INTO audit_log (seq, at, actor_key_id, actor_name, action, target, outcome, request_id, client,
                                    detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12))
         UPDATE audit_head SET seq = $1, hash = $12",
    )
    .bind(n(row.seq))
    .bind(e.at)
    .bind(e.actor.as_ref().map(|a| a.key_id.as_uuid()))
    .bind(e.actor.as_ref().map(|a| a.key_name.as_str()))
    .bind(e.action.as_str())
    .bind(&e.target)
    .bind(e.outcome.as_str())
    .bind(e.origin.request_id.as_deref())
    .bind(e.origin.client.as_deref())
    .bind(Json(&e.detail))
    .bind(&row.prev_hash)
    .bind(&row.hash)
    .execute(&mut *tx)
    .await
    .map_err(translate)?;
    debug_assert_eq!(next.seq, row.seq);
    Ok(())
}

impl PgDb {
    /// The tenant whose chain `entry` goes to, looked up before the transaction that appends
    /// it begins: a lookup from inside would want a second pool connection while holding one.
    pub(crate) async fn audit_place(&self, entry: &AuditEntry) -> Result<Option<TenantPlace>, StoreError> {
        let Some(tenant) = &entry.tenant else { return Ok(None) };
        let place = self
            .place(tenant)
            .await?
            .ok_or_else(|| StoreError::Unexpected(format!("tenant '{tenant}' is gone: its audit chain with it")))?;
        Ok(Some(place))
    }
}

/// Appends `entry` to the chain of `place` (from [`PgDb::audit_place`]) from a transaction
/// running as the login role (a key of the tenant made or revoked in `api_keys`): enters the
/// tenant for the rest of the transaction. Must come last.
pub(crate) async fn append_to_tenant(
    tx: &mut PgConnection,
    place: Option<&TenantPlace>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    if let Some(place) = place {
        enter_tenant(tx, &place.schema, &place.role).await.map_err(translate)?;
    }
    append(tx, entry).await
}

fn record(r: &PgRow, tenant: Option<&TenantName>) -> Result<AuditRecord, sqlx::Error> {
    let actor = match (r.try_get::<Option<uuid::Uuid>, _>(2)?, r.try_get::<Option<String>, _>(3)?) {
        (Some(id), name) => {
            Some(Actor { key_id: cloacina_domain::ApiKeyId::from_uuid(id), key_name: name.unwrap_or_default() })
        }
        (None, _) => None,
    };
    let bad = |e: String| sqlx::Error::Decode(e.into());
    let detail: Json<serde_json::Map<String, serde_json::Value>> = r.try_get(9)?;
    Ok(AuditRecord {
        seq: r.try_get::<i64, _>(0)?.unsigned_abs(),
        entry: AuditEntry {
            at: r.try_get(1)?,
            actor,
            tenant: tenant.cloned(),
            action: r
                .try_get::<String, _>(4)?
                .parse()
                .map_err(|e: cloacina_domain::audit::UnknownAction| bad(e.to_string()))?,
            target: r.try_get(5)?,
            outcome: r.try_get::<String, _>(6)?.parse().map_err(bad)?,
            origin: RequestOrigin { request_id: r.try_get(7)?, client: r.try_get(8)? },
            detail: detail.0,
        },
        prev_hash: r.try_get(10)?,
        hash: r.try_get(11)?,
    })
}

/// The filter's conditions (not its cursor), after `WHERE true`.
fn conditions(q: &mut QueryBuilder<Postgres>, filter: &AuditFilter) {
    if let Some(a) = filter.action {
        q.push(" AND action = ").push_bind(a.as_str());
    }
    if let Some(k) = filter.actor {
        q.push(" AND actor_key_id = ").push_bind(k.as_uuid());
    }
    if let Some(t) = filter.since {
        q.push(" AND at >= ").push_bind(t);
    }
    if let Some(t) = filter.until {
        q.push(" AND at < ").push_bind(t);
    }
}

async fn list(
    tx: &mut PgConnection,
    tenant: Option<&TenantName>,
    filter: &AuditFilter,
    limit: u32,
) -> Result<AuditPage, sqlx::Error> {
    let mut count = QueryBuilder::new("SELECT count(*) FROM audit_log WHERE true");
    conditions(&mut count, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_log WHERE true"));
    conditions(&mut q, filter);
    let order = match (filter.after, filter.before) {
        (Some(after), _) => {
            q.push(" AND seq > ").push_bind(n(after));
            "ASC"
        }
        (None, Some(before)) => {
            q.push(" AND seq < ").push_bind(n(before));
            "DESC"
        }
        (None, None) => "DESC",
    };
    q.push(format!(" ORDER BY seq {order} LIMIT ")).push_bind(i64::from(limit));
    let rows = q.build().fetch_all(&mut *tx).await?;
    let items = rows.iter().map(|r| record(r, tenant)).collect::<Result<_, _>>()?;
    Ok(AuditPage { items, total: total.unsigned_abs(), head: head(tx, false).await? })
}

async fn prune(tx: &mut PgConnection, tenant: Option<&TenantName>, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let head = head(tx, true).await?;
    let last_gone = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_log
         WHERE seq < coalesce((SELECT min(seq) FROM audit_log WHERE at >= $1), 9223372036854775807)
         ORDER BY seq DESC LIMIT 1"
    )))
    .bind(before)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(last_gone) = last_gone.map(|r| record(&r, tenant)).transpose()? else { return Ok(0) };
    let anchored = head.pruned_through(&last_gone);
    sqlx::raw_sql("SET LOCAL cloacina.audit_prune = 'on'").execute(&mut *tx).await?;
    let gone = sqlx::query("DELETE FROM audit_log WHERE seq <= $1").bind(n(last_gone.seq)).execute(&mut *tx).await?;
    sqlx::raw_sql("SET LOCAL cloacina.audit_prune = 'off'").execute(&mut *tx).await?;
    sqlx::query("UPDATE audit_head SET anchor_seq = $1, anchor_hash = $2")
        .bind(n(anchored.anchor_seq))
        .bind(&anchored.anchor_hash)
        .execute(&mut *tx)
        .await?;
    Ok(gone.rows_affected())
}

#[async_trait]
impl AuditStore for PgDb {
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        for entry in entries {
            let mut tx = match &entry.tenant {
                None => self.pool.begin().await.map_err(translate)?,
                Some(t) => match self.begin_tenant(t).await? {
                    Some(tx) => tx,
                    None => continue,
                },
            };
            append(&mut tx, entry).await?;
            tx.commit().await.map_err(translate)?;
        }
        Ok(())
    }

    async fn list_audit(
        &self,
        chain: &Chain,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Option<AuditPage>, StoreError> {
        let (mut tx, tenant) = match chain {
            Chain::Control => (self.pool.begin().await.map_err(translate)?, None),
            Chain::Tenant(t) => match self.begin_tenant(t).await? {
                Some(tx) => (tx, Some(t)),
                None => return Ok(None),
            },
        };
        let page = list(&mut tx, tenant, filter, limit).await.map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(Some(page))
    }

    async fn prune_audit(&self, chain: &Chain, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let (mut tx, tenant) = match chain {
            Chain::Control => (self.pool.begin().await.map_err(translate)?, None),
            Chain::Tenant(t) => match self.begin_tenant(t).await? {
                Some(tx) => (tx, Some(t)),
                None => return Ok(0),
            },
        };
        let removed = prune(&mut tx, tenant, before).await.map_err(translate)?;
        tx.commit().await.map_err(translate)?;
        Ok(removed)
    }
}
