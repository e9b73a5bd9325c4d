//! `audit list [--follow]` and `audit verify`: a chain of the audit trail, read and checked
//! here, on the client, with the domain's own rule ([`ChainVerifier`]), so a verify trusts
//! nothing the server says about the chain but the rows themselves.
//!
//! Which chain: `--tenant T` (or a profile's tenant) names a tenant's; otherwise a tenant key
//! reads its own tenant's and an admin (god) key the deployment's control chain.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cloacina_domain::TenantName;
use cloacina_domain::audit::{Actor, AuditEntry, AuditRecord, ChainHead, ChainVerifier, RequestOrigin};
use reqwest::Method;
use serde_json::Value;

use crate::args::AuditCommand;
use crate::client::{Client, Context};
use crate::exit::CliError;
use crate::output::{Table, emit, items, line, text};

/// How often `audit list --follow` asks for new rows.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// Rows per request when reading a whole chain.
const PAGE: u32 = 1000;

/// Runs an `audit` command.
///
/// # Errors
/// The server's refusal, a transport failure, or (verify) a chain that does not verify.
pub async fn run(ctx: &Context, cmd: AuditCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let (path, name) = match ctx.explicit_tenant()? {
        Some(t) => tenant_chain(&t),
        None => {
            let me = client.whoami().await?;
            match me.tenant {
                Some(t) if !me.is_admin => tenant_chain(&t),
                _ => ("/v1/audit".to_owned(), "the deployment's control chain".to_owned()),
            }
        }
    };
    match cmd {
        AuditCommand::List { action, actor, since, until, limit, follow } => {
            let mut query = vec![format!("limit={limit}")];
            for (key, value) in [("action", action), ("actor", actor), ("since", since), ("until", until)] {
                if let Some(v) = value {
                    query.push(format!("{key}={}", encode(&v)));
                }
            }
            let query = query.join("&");
            let page = client.call(Method::GET, &format!("{path}?{query}"), None::<&()>).await?;
            let mut rows = items(&page);
            rows.reverse();
            let format = ctx.globals.format();
            if !follow {
                return emit(
                    format,
                    &page,
                    || {
                        if rows.is_empty() {
                            return format!("no audit rows in {name}");
                        }
                        format!("{}\n{} of {} shown (newest last)", table(&rows), rows.len(), text(&page, "total"))
                    },
                    || rows.iter().map(|r| text(r, "seq")).collect(),
                );
            }
            let mut last = page["head"]["seq"].as_u64().unwrap_or(0);
            print_rows(ctx, &rows, true)?;
            loop {
                tokio::time::sleep(FOLLOW_EVERY).await;
                let more = client.call(Method::GET, &format!("{path}?{query}&after={last}"), None::<&()>).await?;
                let rows = items(&more);
                if let Some(seq) = rows.last().and_then(|r| r["seq"].as_u64()) {
                    last = seq;
                }
                print_rows(ctx, &rows, false)?;
            }
        }
        AuditCommand::Verify => verify(&client, &path, &name).await,
    }
}

fn tenant_chain(t: &TenantName) -> (String, String) {
    (format!("/v1/tenants/{t}/audit"), format!("the audit chain of tenant '{t}'"))
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn table(rows: &[Value]) -> String {
    let mut t = Table::new(&["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "CLIENT"]);
    for r in rows {
        t.row(vec![
            text(r, "seq"),
            text(r, "at"),
            r["actor"].get("key_name").and_then(Value::as_str).unwrap_or("-").to_owned(),
            text(r, "action"),
            text(r, "target"),
            text(r, "outcome"),
            text(r, "client"),
        ]);
    }
    t.render()
}

/// Rows as they come while following: one line each (NDJSON with `-o json`).
fn print_rows(ctx: &Context, rows: &[Value], header: bool) -> Result<(), CliError> {
    match ctx.globals.format() {
        crate::args::OutputFormat::Json => {
            for r in rows {
                line(serde_json::to_string(r).unwrap_or_default())?;
            }
            Ok(())
        }
        _ if rows.is_empty() => Ok(()),
        _ => {
            let rendered = table(rows);
            let body = if header { rendered.as_str() } else { rendered.split_once('\n').map_or("", |(_, b)| b) };
            line(body)
        }
    }
}

/// Reads the whole chain oldest first and checks every row against its predecessor and the
/// head the first page reported (rows appended while reading are left for the next verify).
async fn verify(client: &Client, path: &str, name: &str) -> Result<(), CliError> {
    let mut after = 0u64;
    let mut verifier: Option<(ChainVerifier, ChainHead)> = None;
    loop {
        let page = client.call(Method::GET, &format!("{path}?after={after}&limit={PAGE}"), None::<&()>).await?;
        let (checker, head) = match &mut verifier {
            Some(v) => v,
            None => {
                let head = head_of(&page["head"])?;
                verifier.insert((ChainVerifier::new(&head), head))
            }
        };
        let rows = items(&page);
        let mut done = rows.is_empty();
        for row in &rows {
            let record = record_of(row)?;
            if record.seq > head.seq {
                done = true;
                break;
            }
            after = record.seq;
            checker.push(&record).map_err(|b| CliError::ChainBroken(format!("{name} does not verify: {b}")))?;
        }
        if done || after >= head.seq {
            break;
        }
    }
    let Some((checker, _)) = verifier else { return Err(CliError::Local("the server sent no chain head".into())) };
    let summary = checker.finish().map_err(|b| CliError::ChainBroken(format!("{name} does not verify: {b}")))?;
    let span = match (summary.first, summary.last) {
        (Some(first), Some(last)) => format!(" (rows {first} to {last})"),
        _ => String::new(),
    };
    line(format!("{name}: {} rows verified{span}; head hash {}", summary.rows, summary.head_hash))
}

fn bad(what: &str) -> CliError {
    CliError::Local(format!("the server sent an audit row without a valid {what}"))
}

fn head_of(v: &Value) -> Result<ChainHead, CliError> {
    let s = |k: &str| v[k].as_str().map(str::to_owned).ok_or_else(|| bad(k));
    let n = |k: &str| v[k].as_u64().ok_or_else(|| bad(k));
    Ok(ChainHead { seq: n("seq")?, hash: s("hash")?, anchor_seq: n("anchor_seq")?, anchor_hash: s("anchor_hash")? })
}

/// A row as the server sent it, every field its hash covers.
fn record_of(v: &Value) -> Result<AuditRecord, CliError> {
    let s = |k: &str| v[k].as_str().map(str::to_owned).ok_or_else(|| bad(k));
    let opt = |k: &str| v[k].as_str().map(str::to_owned);
    let actor = match v["actor"].as_object() {
        Some(a) => Some(Actor {
            key_id: a.get("key_id").and_then(Value::as_str).and_then(|k| k.parse().ok()).ok_or_else(|| bad("actor"))?,
            key_name: a.get("key_name").and_then(Value::as_str).unwrap_or_default().to_owned(),
        }),
        None => None,
    };
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339(&s("at")?).map_err(|_| bad("at"))?.with_timezone(&Utc);
    Ok(AuditRecord {
        seq: v["seq"].as_u64().ok_or_else(|| bad("seq"))?,
        entry: AuditEntry {
            at,
            actor,
            tenant: opt("tenant").map(|t| TenantName::parse(&t).map_err(|_| bad("tenant"))).transpose()?,
            action: s("action")?.parse().map_err(|_| bad("action"))?,
            target: s("target")?,
            outcome: s("outcome")?.parse().map_err(|_: String| bad("outcome"))?,
            origin: RequestOrigin { request_id: opt("request_id"), client: opt("client") },
            detail: v["detail"].as_object().cloned().ok_or_else(|| bad("detail"))?,
        },
        prev_hash: s("prev_hash")?,
        hash: s("hash")?,
    })
}
