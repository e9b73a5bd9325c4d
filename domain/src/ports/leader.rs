//! One leader among the replicas for singleton background work (the retention prune).

use async_trait::async_trait;

use super::StoreError;

/// A lock at most one process holds at a time, which the holder loses when it dies.
///
/// [`LeaderLock::hold`] is called again and again by one task; between calls the holder
/// keeps the lock. A process that dies, or whose hold on the lock is broken (its database
/// session ended), MUST lose it within seconds, so that another can take it.
///
/// # Errors
/// [`StoreError::Unavailable`] when the lock's keeper (the database) cannot be reached:
/// the caller then counts itself as not leading.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait LeaderLock: Send + Sync {
    /// Takes the lock if it is free, or checks that this process still holds it. `true`
    /// while this process holds it.
    async fn hold(&self) -> Result<bool, StoreError>;
    /// Gives the lock up (at shutdown), so that another process takes it at once.
    async fn release(&self);
}
