//! End-to-end tests: the real `cloacinactl` binary, started on port 0 in a throwaway home
//! folder, driven over HTTP and through its own CLI the way the seed guides do it.
//!
//! # Layout
//! - [`harness`] — starting, stopping and signalling a server; running the CLI.
//! - [`audit`] — the audit trail: one row per action, no key in any row, `audit verify` finding
//!   an edited or deleted row; failed logins as one row per address a minute.
//! - [`secrets`] — tenant secrets: exactly the declared ones in a task, masked everywhere,
//!   rewrapped under a new master key; 503 and a failed task without one.
//! - [`seed_001`] — "Deploying the API Server", step by step, on the embedded SQLite database.
//! - [`bad_requests`] — requests hyper refuses before routing: their bare statuses.
//! - [`cli`] — the client commands, profiles, key references and exit codes.
//! - [`cli_habits`] — closed pipes, silent and foreign servers, retries, profiles that keep
//!   only their flags, ids that round-trip.
//! - [`connections`] — slow and idle connections closed by their timeouts; the connection cap.
//! - [`deploy`] — `deploy/` and `.angreal/` checked by docker-compose, hadolint and
//!   kubernetes-validate.
//! - [`executions`] — running workflows: the documented flow, retries, timeouts, cancel, retry,
//!   idempotency, isolation; two replicas and `kill -9` on PostgreSQL.
//! - [`metrics`] — executions and the queue by state per tenant (bounded), task duration,
//!   claim latency and pool use read from `/metrics`.
//! - [`packages`] — packages through the CLI: scaffold, pack, upload, list, on both backends.
//! - [`proxies`] — nginx and Caddy with the shipped files in front of the binary, in a
//!   namespace of the test's own: requests, an upload, a forged header, a socket.
//! - [`purge`] — a deleted tenant's unpacked packages gone from every replica, nothing of it
//!   in the database, one audit row saying so.
//! - [`postgres`] — seed 002 on PostgreSQL, replicas, the bootstrap race, outages, `migrate`.
//! - [`reliability`] — scoreboard rows: the bootstrap race, the canary key.
//! - [`sandbox`] — hostile tasks against the task sandbox, its start-up refusal, long names,
//!   expiring keys' children.
//! - [`signing`] — signed packages: keygen, sign, trust, require; each refusal by its code.
//! - [`tenant_delete`] — tenants deleted while their executions run, on PostgreSQL.
//! - [`task_network`] — a tenant's own task network, set and cleared by a god key.
//! - [`transfer`] — a tenant exported from one deployment and imported into another, the same.
//! - [`trigger_policies`] — `catchup` after every server was down, `overlap` against a task
//!   that outlives its interval, on both backends.
//! - [`triggers`] — cron triggers firing by themselves: once per scheduled time on SQLite and
//!   with three PostgreSQL replicas, the leader killed; leader failover.
//! - [`triggers_cli`] — `trigger list|inspect|pause|resume|fire` and `workflow inspect`'s
//!   triggers, in every output format.
//! - [`wire`] — the wire contract: every reference route's fields and types, on both backends.
//! - [`schemathesis`] — the served OpenAPI document checked against the server by schemathesis.
//! - [`readme`] — the README's quick start, run as written.
//! - [`seed_verbatim`] — the seeds' shell commands run as written (sh, curl, jq, sqlite3).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod audit;
mod bad_requests;
mod cli;
mod cli_habits;
mod connections;
mod deploy;
mod executions;
mod harness;
mod live;
mod metrics;
mod packages;
mod pg_restart;
mod postgres;
mod proxies;
mod purge;
mod readme;
mod reliability;
mod replicas;
mod sandbox;
mod schemathesis;
mod secrets;
mod seed_001;
mod seed_verbatim;
mod signing;
mod task_network;
mod tenant_delete;
mod transfer;
mod trigger_policies;
mod triggers;
mod triggers_cli;
mod watch;
mod wire;
