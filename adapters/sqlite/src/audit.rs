//! The audit trail on SQLite: every chain in one `audit_log` table, keyed by chain (`''` for
//! the control chain, else the tenant) and sequence number, with `audit_heads` saying where
//! each chain stands. The domain links each row ([`AuditEntry::link`]); this file loads the
//! head and writes what the link returns, inside the caller's transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::{Actor, AuditEntry, AuditFilter, AuditRecord, ChainHead, RequestOrigin};
use cloacina_domain::ports::{AuditPage, AuditStore, Chain, StoreError};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use crate::SqliteDb;
use crate::keys::ts;

const COLUMNS: &str = "chain, seq, at, actor_key_id, actor_name, action, target, outcome, request_id, client, detail, \
                       prev_hash, hash";

fn chain_key(chain: &Chain) -> &str {
    match chain {
        Chain::Control => "",
        Chain::Tenant(t) => t.as_str(),
    }
}

fn head(conn: &Connection, chain: &str) -> rusqlite::Result<ChainHead> {
    let found = conn
        .query_row("SELECT seq, hash, anchor_seq, anchor_hash FROM audit_heads WHERE chain = ?1", [chain], |r| {
            Ok(ChainHead {
                seq: r.get::<_, i64>(0)?.unsigned_abs(),
                hash: r.get(1)?,
                anchor_seq: r.get::<_, i64>(2)?.unsigned_abs(),
                anchor_hash: r.get(3)?,
            })
        })
        .optional()?;
    Ok(found.unwrap_or_default())
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Appends `entry` to its chain. Must run inside the caller's write transaction: the row and
/// the change it records commit together, or neither does.
pub(crate) fn append(conn: &Connection, entry: &AuditEntry) -> rusqlite::Result<()> {
    let chain = entry.tenant.as_ref().map_or("", TenantName::as_str);
    let (row, next) = entry.clone().link(&head(conn, chain)?);
    let e = &row.entry;
    conn.prepare_cached(
        "INSERT INTO audit_log (chain, seq, at, actor_key_id, actor_name, action, target, outcome, request_id, client,
                                detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        chain,
        n(row.seq),
        ts(e.at),
        e.actor.as_ref().map(|a| a.key_id.to_string()),
        e.actor.as_ref().map(|a| a.key_name.as_str()),
        e.action.as_str(),
        e.target,
        e.outcome.as_str(),
        e.origin.request_id,
        e.origin.client,
        serde_json::Value::Object(e.detail.clone()).to_string(),
        row.prev_hash,
        row.hash,
    ])?;
    conn.prepare_cached(
        "INSERT INTO audit_heads (chain, seq, hash, anchor_seq, anchor_hash) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(params![chain, n(next.seq), next.hash, n(next.anchor_seq), next.anchor_hash])?;
    Ok(())
}

fn conv(col: usize, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, e.to_string().into())
}

fn record(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let chain: String = r.get(0)?;
    let tenant = if chain.is_empty() { None } else { Some(TenantName::parse(&chain).map_err(|e| conv(0, e))?) };
    let at: String = r.get(2)?;
    let actor = match (r.get::<_, Option<String>>(3)?, r.get::<_, Option<String>>(4)?) {
        (Some(id), name) => {
            Some(Actor { key_id: id.parse().map_err(|_| conv(3, "not a key id"))?, key_name: name.unwrap_or_default() })
        }
        (None, _) => None,
    };
    let detail: String = r.get(10)?;
    let detail = match serde_json::from_str(&detail).map_err(|e| conv(10, e))? {
        serde_json::Value::Object(map) => map,
        _ => return Err(conv(10, "detail is not an object")),
    };
    Ok(AuditRecord {
        seq: r.get::<_, i64>(1)?.unsigned_abs(),
        entry: AuditEntry {
            at: DateTime::parse_from_rfc3339(&at).map_err(|e| conv(2, e))?.with_timezone(&Utc),
            actor,
            tenant,
            action: r.get::<_, String>(5)?.parse().map_err(|e| conv(5, e))?,
            target: r.get(6)?,
            outcome: r.get::<_, String>(7)?.parse().map_err(|e: String| conv(7, e))?,
            origin: RequestOrigin { request_id: r.get(8)?, client: r.get(9)? },
            detail,
        },
        prev_hash: r.get(11)?,
        hash: r.get(12)?,
    })
}

fn list(conn: &Connection, chain: &str, filter: &AuditFilter, limit: u32) -> rusqlite::Result<AuditPage> {
    let mut conds = vec!["chain = ?1".to_owned()];
    let mut args: Vec<Sql> = vec![Sql::Text(chain.to_owned())];
    let mut push = |cond: &str, v: Sql| {
        args.push(v);
        conds.push(cond.replace('?', &format!("?{}", args.len())));
    };
    if let Some(a) = filter.action {
        push("action = ?", Sql::Text(a.as_str().to_owned()));
    }
    if let Some(k) = filter.actor {
        push("actor_key_id = ?", Sql::Text(k.to_string()));
    }
    if let Some(t) = filter.since {
        push("at >= ?", Sql::Text(ts(t)));
    }
    if let Some(t) = filter.until {
        push("at < ?", Sql::Text(ts(t)));
    }
    let matching = conds.join(" AND ");
    let total: i64 =
        conn.query_row(&format!("SELECT count(*) FROM audit_log WHERE {matching}"), params_from_iter(&args), |r| {
            r.get(0)
        })?;
    let (cursor, order) = match (filter.after, filter.before) {
        (Some(after), _) => (format!(" AND seq > {}", n(after)), "ASC"),
        (None, Some(before)) => (format!(" AND seq < {}", n(before)), "DESC"),
        (None, None) => (String::new(), "DESC"),
    };
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE {matching}{cursor} ORDER BY seq {order} LIMIT {limit}");
    let items = conn.prepare(&sql)?.query_map(params_from_iter(&args), record)?.collect::<Result<Vec<_>, _>>()?;
    Ok(AuditPage { items, total: total.unsigned_abs(), head: head(conn, chain)? })
}

fn prune(conn: &mut Connection, chain: &str, before: DateTime<Utc>) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head = head(&tx, chain)?;
    // The rows to go are the chain's oldest, up to the first one not older than `before`.
    let keep_from: Option<i64> = tx.query_row(
        "SELECT min(seq) FROM audit_log WHERE chain = ?1 AND at >= ?2",
        params![chain, ts(before)],
        |r| r.get(0),
    )?;
    let last_gone: Option<AuditRecord> = tx
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM audit_log WHERE chain = ?1 AND seq < coalesce(?2, 9223372036854775807)
                 ORDER BY seq DESC LIMIT 1"
            ),
            params![chain, keep_from],
            record,
        )
        .optional()?;
    let Some(last_gone) = last_gone else { return Ok(0) };
    let anchored = head.pruned_through(&last_gone);
    tx.execute("UPDATE audit_heads SET pruning = 1 WHERE chain = ?1", [chain])?;
    let removed =
        tx.execute("DELETE FROM audit_log WHERE chain = ?1 AND seq <= ?2", params![chain, n(last_gone.seq)])?;
    tx.execute(
        "UPDATE audit_heads SET pruning = 0, anchor_seq = ?2, anchor_hash = ?3 WHERE chain = ?1",
        params![chain, n(anchored.anchor_seq), anchored.anchor_hash],
    )?;
    tx.commit()?;
    Ok(removed as u64)
}

#[async_trait]
impl AuditStore for SqliteDb {
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        // The one tenant is `public`: another tenant's entries have no chain here.
        let entries: Vec<AuditEntry> =
            entries.iter().filter(|e| e.tenant.as_ref().is_none_or(TenantName::is_public)).cloned().collect();
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for e in &entries {
                append(&tx, e)?;
            }
            tx.commit()
        })
        .await
    }

    async fn list_audit(
        &self,
        chain: &Chain,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Option<AuditPage>, StoreError> {
        if let Chain::Tenant(t) = chain
            && !t.is_public()
        {
            return Ok(None);
        }
        let (chain, filter) = (chain_key(chain).to_owned(), filter.clone());
        self.read(move |conn| list(conn, &chain, &filter, limit).map(Some)).await
    }

    async fn prune_audit(&self, chain: &Chain, before: DateTime<Utc>) -> Result<u64, StoreError> {
        if let Chain::Tenant(t) = chain
            && !t.is_public()
        {
            return Ok(0);
        }
        let chain = chain_key(chain).to_owned();
        self.write(move |conn| prune(conn, &chain, before)).await
    }
}
