//! Where PostgreSQL's time went, statement by statement, when the bench's cluster loads
//! `pg_stat_statements` (`CLOACINA_TEST_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements
//! -c pg_stat_statements.track_planning=on -c pg_stat_statements.max=20000"`): reset before
//! each measured minute and printed after its last fire. Without the library nothing is
//! printed.

use cloacina_testpg::TestPg;

/// Whether the cluster has the library loaded; if so the extension is made in `db`.
pub async fn enable(pg: &TestPg, db: &str) -> anyhow::Result<bool> {
    let mut c = pg.admin_of(db).await;
    let loaded: String =
        sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')").fetch_one(&mut c).await?;
    if !loaded.split(',').any(|l| l.trim() == "pg_stat_statements") {
        return Ok(false);
    }
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&mut c).await?;
    Ok(true)
}

/// Forgets what was counted so far.
pub async fn reset(pg: &TestPg, db: &str) -> anyhow::Result<()> {
    let mut c = pg.admin_of(db).await;
    sqlx::query("SELECT pg_stat_statements_reset()").execute(&mut c).await?;
    Ok(())
}

/// The statements that took most of the time since the reset, the same statement of every
/// tenant's schema counted as one (its text with the schema's name taken out): calls, time
/// executing and planning (ms), plans made, and the first words of the text.
pub async fn top(pg: &TestPg, db: &str, n: i64) -> anyhow::Result<Vec<String>> {
    let mut c = pg.admin_of(db).await;
    let rows: Vec<(String, i64, f64, f64, i64)> = sqlx::query_as(
        "SELECT q, sum(calls)::bigint, sum(total_exec_time), sum(total_plan_time), sum(plans)::bigint
         FROM (SELECT regexp_replace(regexp_replace(query, '\"tenant_[^\"]*\"', 'T', 'g'), '\\s+', ' ', 'g') AS q,
                      calls, total_exec_time, total_plan_time, plans
               FROM pg_stat_statements) s
         GROUP BY q ORDER BY sum(total_exec_time + total_plan_time) DESC LIMIT $1",
    )
    .bind(n)
    .fetch_all(&mut c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(q, calls, exec, plan, plans)| {
            let text: String = q.chars().take(110).collect();
            format!("{calls:>8} calls {exec:>9.1} ms exec {plan:>8.1} ms plan {plans:>7} plans  {text}")
        })
        .collect())
}

/// How many autovacuum and autoanalyze runs have finished on `db`'s tables so far (the
/// statistics lag up to a second behind).
pub async fn vacuums(pg: &TestPg, db: &str) -> anyhow::Result<i64> {
    let mut c = pg.admin_of(db).await;
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut c).await?;
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)::bigint FROM pg_stat_all_tables",
    )
    .fetch_one(&mut c)
    .await?)
}
