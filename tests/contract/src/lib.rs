//! The storage contract: one suite every storage adapter runs, so a behaviour one backend has
//! and another lacks shows up as a failing test (docs/testing.md, layer 3).
//!
//! An adapter instantiates it in a test module with an async expression that yields a fresh,
//! migrated, empty store:
//! ```text
//! cloacina_contract::storage_contract!(async { Arc::new(fresh_store().await) });
//! ```
//! The store type must implement every storage port.
//!
//! # Layout
//! - [`audit`] — the `AuditStore` contract, and the rows each change appends.
//! - [`executions`] — the `ExecutionStore` contract.
//! - [`feed`] — the `EventFeed` and `TicketStore` contracts.
//! - [`queue`] — the `TaskQueue` contract.
//! - [`keys`] — the `KeyStore` contract.
//! - [`packages`] — the `PackageStore` contract.
//! - [`workflows`] — the `WorkflowStore` contract.
//! - [`triggers`] — the `TriggerStore` contract.
//! - [`secrets`] — the `SecretStore` contract.
//! - [`signing`] — the `SigningStore` contract and signed uploads.
//! - [`tenants`] — the `TenantDirectory`, `TenantStore` and `DatabaseHealth` contract.

// This crate is test code compiled as a library: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

pub mod audit;
pub mod executions;
pub mod feed;
pub mod keys;
pub mod packages;
pub mod queue;
pub mod secrets;
pub mod signing;
pub mod tenants;
pub mod triggers;
pub mod workflows;

use std::sync::Arc;

use cloacina_domain::audit::{AuditAction, AuditEntry, RequestOrigin};
use cloacina_domain::ports::{
    AuditStore, CensusStore, DatabaseHealth, EventFeed, ExecutionStore, KeyStore, PackageStore, SecretStore,
    SigningStore, TaskQueue, TenantArchive, TenantDirectory, TenantStore, TicketStore, TriggerStore, WorkflowStore,
};

/// Everything a storage adapter provides.
pub trait Storage:
    AuditStore
    + KeyStore
    + TenantDirectory
    + TenantStore
    + WorkflowStore
    + PackageStore
    + SigningStore
    + SecretStore
    + CensusStore
    + TenantArchive
    + ExecutionStore
    + TaskQueue
    + TriggerStore
    + EventFeed
    + TicketStore
    + DatabaseHealth
    + 'static
{
}
impl<T> Storage for T where
    T: AuditStore
        + KeyStore
        + TenantDirectory
        + TenantStore
        + WorkflowStore
        + PackageStore
        + SigningStore
        + SecretStore
        + CensusStore
        + TenantArchive
        + ExecutionStore
        + TaskQueue
        + TriggerStore
        + EventFeed
        + TicketStore
        + DatabaseHealth
        + 'static
{
}

/// An audit entry (in tenant `public`'s chain) for a change whose audit row the test does
/// not look at: the `audit` contract checks the rows.
pub fn noted() -> AuditEntry {
    let public = Some(cloacina_domain::TenantName::public());
    AuditEntry::new(chrono::Utc::now(), None, public, AuditAction::KeyCreate, "contract", RequestOrigin::default())
}

/// Writes `content` to a file for a [`NewPackage`](cloacina_domain::package::NewPackage)'s
/// archive: stores read uploads from files. The files sit in one folder per test process
/// under the system's temporary directory.
pub fn spool(content: &[u8]) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("cloacina-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string());
    std::fs::write(&path, content).unwrap();
    path
}

/// A fresh store for one test.
pub type Store = Arc<dyn Storage>;

/// Generates one `#[tokio::test]` per contract case.
#[macro_export]
macro_rules! storage_contract {
    ($make:expr) => {
        $crate::storage_contract!(@cases $make;
            audit::every_change_leaves_one_row_in_its_chain_and_a_change_that_does_not_happen_none,
            audit::listings_filter_and_page_by_cursor_both_ways,
            audit::tenants_created_and_deleted_are_rows_of_the_control_chain,
            audit::rows_without_a_change_are_appended_and_the_prune_keeps_the_chain_verifiable,
            secrets::secrets_are_kept_sealed_rotated_listed_and_deleted,
            signing::trusted_keys_are_added_once_listed_and_removed,
            signing::once_required_each_bad_signature_is_refused_and_a_good_one_stored,
            keys::an_inserted_key_reads_back_with_every_field,
            keys::a_duplicate_id_conflicts_and_changes_nothing,
            keys::an_unknown_id_is_not_found,
            keys::listing_is_by_tenant_oldest_first_and_includes_revoked_keys,
            keys::revoking_flags_the_key_once,
            keys::the_last_active_god_key_cannot_be_revoked,
            keys::expired_god_keys_do_not_count_as_active,
            keys::the_first_god_key_is_inserted_once_even_under_a_race,
            keys::only_active_supplied_keys_are_listed_for_argon2,
            keys::last_used_never_moves_backwards,
            keys::a_name_is_taken_once_among_a_scopes_unrevoked_keys,
            tenants::public_always_exists_and_unknown_tenants_do_not,
            tenants::a_migrated_database_is_healthy,
            tenants::a_tenant_is_created_listed_and_found_once,
            tenants::deleting_a_tenant_revokes_its_keys_and_frees_its_name,
            tenants::a_tenants_task_network_is_set_kept_and_cleared_and_an_unknown_tenant_has_none,
            tenants::a_tenants_request_limit_is_set_kept_and_cleared_apart_from_its_other_settings,
            workflows::a_tenant_without_packages_lists_no_workflows_and_an_unknown_tenant_none,
            packages::an_upload_is_stored_once_and_its_workflows_are_in_force,
            packages::versions_are_immutable_and_the_newest_is_in_force,
            packages::the_same_bytes_uploaded_eight_times_at_once_are_eight_successes_and_one_copy,
            packages::a_workflow_name_belongs_to_one_package,
            packages::a_workflow_is_found_paused_and_resumed_and_stays_paused_across_versions,
            packages::deleting_the_version_in_force_falls_back_to_the_newest_left,
            packages::an_archive_reads_back_whole_from_its_chunks_and_its_manifest_by_version,
            executions::an_execution_is_stored_with_its_tasks_and_a_repeated_key_returns_the_first,
            executions::a_paused_workflow_and_a_vanished_package_accept_nothing,
            queue::a_ready_task_is_claimed_once_and_its_success_readies_the_next_with_the_merged_context,
            queue::a_claim_carries_the_tenants_task_network_as_it_is_when_claimed,
            queue::a_running_attempts_output_is_kept_in_pieces_before_and_with_its_outcome,
            queue::a_failure_is_retried_after_its_delay_then_fails_the_execution_and_skips_what_depends_on_it,
            queue::an_expired_lease_makes_the_task_ready_again_and_its_old_holder_stale,
            queue::released_attempts_are_ready_again_at_once,
            executions::cancel_stops_what_has_not_finished_and_refuses_a_finished_execution,
            executions::retry_runs_the_unsuccessful_tasks_again_and_keeps_what_succeeded,
            executions::listing_filters_by_status_and_workflow_and_pages_newest_first_with_a_total,
            executions::events_page_after_an_id,
            feed::the_tenant_feed_is_every_executions_events_in_id_order_in_pages,
            feed::the_tenant_output_is_every_kept_piece_in_id_order_and_by_execution,
            feed::a_ticket_is_redeemed_once_before_it_expires_and_never_after,
            executions::pruning_deletes_only_executions_finished_before_the_cutoff,
            executions::a_package_version_in_use_by_an_unfinished_execution_cannot_be_deleted,
            queue::no_work_means_no_tenant_is_due,
            queue::a_batch_records_each_outcome_in_order_and_skips_stale_reports,
            triggers::an_uploaded_versions_triggers_are_in_force_and_a_newer_version_replaces_them,
            triggers::a_trigger_name_belongs_to_one_package,
            triggers::a_due_trigger_fires_once_per_scheduled_time_and_the_schedule_moves_on,
            triggers::concurrent_passes_fire_each_scheduled_time_once,
            triggers::overlap_skip_and_cancel_other_meet_an_unfinished_execution,
            triggers::a_paused_workflow_counts_each_skip_and_a_paused_trigger_resumes_from_then
        );
    };
    (@cases $make:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: $crate::Store = $make.await;
                $crate::$module::$case(store).await;
            }
        )*
    };
}
