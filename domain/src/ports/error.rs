//! Storage failures, as the use cases see them.

/// A storage failure, as the use cases see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is shutting down: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (the constraint is named).
    #[error("conflict: {0}")]
    Conflict(String),
    /// This backend cannot do it (multi-tenancy on SQLite). The text is for the client.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else. The text is for logs, never for clients.
    #[error("unexpected storage error: {0}")]
    Unexpected(String),
}
