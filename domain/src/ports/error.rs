//! Storage failures, and what a lookup inside a tenant found, as the use cases see them.

/// A storage failure, as the use cases see it. Business refusals are never errors here: each
/// port method that can refuse returns an outcome saying so (for example
/// [`crate::package::PackageStored::Refused`]). Every text is for logs, never for clients
/// (except [`StoreError::Unsupported`]'s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is shutting down: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A rule of the schema refused a write the domain's checks let through (a race the
    /// checks could not see, or a rule an operator added). Adapters tell it by SQLSTATE and
    /// constraint name on PostgreSQL, by extended result code on SQLite, never by message text.
    #[error("{0}")]
    Constraint(Constraint),
    /// This backend cannot do it (multi-tenancy on SQLite). The text is for the client.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else.
    #[error("unexpected storage error: {0}")]
    Unexpected(String),
}

/// Which rule of the schema refused a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub kind: ConstraintKind,
    /// The constraint's name, where the database gives it (PostgreSQL does; SQLite names no
    /// constraint in its result codes).
    pub name: Option<String>,
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} constraint '{name}' refused the write", self.kind.as_str()),
            None => write!(f, "a {} constraint refused the write", self.kind.as_str()),
        }
    }
}

/// The kinds of schema rule, as both databases classify them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    Unique,
    ForeignKey,
    Check,
    NotNull,
    /// Any other (an exclusion constraint, a trigger's refusal).
    Other,
}

impl ConstraintKind {
    /// The word clients see in a `409`'s message.
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintKind::Unique => "unique",
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::Check => "check",
            ConstraintKind::NotNull => "not-null",
            ConstraintKind::Other => "database",
        }
    }
}

impl StoreError {
    /// A uniqueness violation of the constraint named `name`.
    pub fn is_unique_violation_of(&self, name: &str) -> bool {
        matches!(self, StoreError::Constraint(Constraint { kind: ConstraintKind::Unique, name: Some(n) }) if n == name)
    }
}

/// What looking up one item inside a tenant found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Lookup<T> {
    Found(T),
    /// The tenant exists; the item does not.
    Missing,
    /// There is no such tenant.
    NoTenant,
}

impl<T> Lookup<T> {
    /// [`Lookup::Found`] for `Some`, [`Lookup::Missing`] for `None`: an item looked for in a
    /// tenant known to exist.
    pub fn from_option(item: Option<T>) -> Self {
        item.map_or(Lookup::Missing, Lookup::Found)
    }

    /// The item, or the error each absence is for the caller.
    ///
    /// # Errors
    /// `no_tenant()` or `missing()`, whichever absence this is.
    pub fn found<E>(self, no_tenant: impl FnOnce() -> E, missing: impl FnOnce() -> E) -> Result<T, E> {
        match self {
            Lookup::Found(t) => Ok(t),
            Lookup::Missing => Err(missing()),
            Lookup::NoTenant => Err(no_tenant()),
        }
    }

    /// The item, if it was found.
    pub fn into_found(self) -> Option<T> {
        match self {
            Lookup::Found(t) => Some(t),
            Lookup::Missing | Lookup::NoTenant => None,
        }
    }
}
