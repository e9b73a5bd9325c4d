//! How a tenant's tasks reach the network: the deployment's default (`--task-network`) and a
//! tenant's own setting, which a god key may give it (docs/postgres.md, docs/engine.md).

use std::fmt;
use std::str::FromStr;

/// A network a task attempt runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskNetwork {
    /// The host's network. The task still holds no credential of the server's.
    Host,
    /// None: a network namespace of its own with only a loopback interface.
    None,
}

/// Why a string names no network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is neither \"host\" nor \"none\"")]
pub struct TaskNetworkError(pub String);

impl TaskNetwork {
    /// The network an attempt of a tenant runs with: the tenant's own setting where it has
    /// one, the deployment's default otherwise.
    pub fn for_tenant(setting: Option<Self>, deployment_default: Self) -> Self {
        setting.unwrap_or(deployment_default)
    }

    /// The name, as flags, requests and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::None => "none",
        }
    }
}

impl FromStr for TaskNetwork {
    type Err = TaskNetworkError;
    fn from_str(s: &str) -> Result<Self, TaskNetworkError> {
        match s {
            "host" => Ok(Self::Host),
            "none" => Ok(Self::None),
            other => Err(TaskNetworkError(other.to_owned())),
        }
    }
}

impl fmt::Display for TaskNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change to a tenant's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantChange {
    pub task_network: Setting<TaskNetwork>,
    /// Authenticated requests a second each of the tenant's keys may send (0: no limit).
    pub rate_limit_per_key: Setting<u32>,
}

impl TenantChange {
    /// Whether the change changes nothing.
    pub fn is_empty(&self) -> bool {
        self.task_network == Setting::Keep && self.rate_limit_per_key == Setting::Keep
    }
}

/// What a change does to one setting (a JSON merge patch's three cases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Setting<T> {
    /// Left as it is (the field was absent).
    #[default]
    Keep,
    /// Back to the deployment's default (the field was `null`).
    Default,
    Set(T),
}

impl<T> Setting<T> {
    /// The same change of a value converted by `f`.
    ///
    /// # Errors
    /// Whatever `f` refuses.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Setting<U>, E> {
        Ok(match self {
            Setting::Keep => Setting::Keep,
            Setting::Default => Setting::Default,
            Setting::Set(v) => Setting::Set(f(v)?),
        })
    }

    /// The value stored after the change, given the one stored before (`None`: the default).
    pub fn applied_to(self, stored: Option<T>) -> Option<T> {
        match self {
            Setting::Keep => stored,
            Setting::Default => None,
            Setting::Set(v) => Some(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_setting_wins_over_the_deployment_default_and_its_absence_does_not() {
        assert_eq!(TaskNetwork::for_tenant(Some(TaskNetwork::Host), TaskNetwork::None), TaskNetwork::Host);
        assert_eq!(TaskNetwork::for_tenant(Some(TaskNetwork::None), TaskNetwork::Host), TaskNetwork::None);
        assert_eq!(TaskNetwork::for_tenant(None, TaskNetwork::Host), TaskNetwork::Host);
        assert_eq!(TaskNetwork::for_tenant(None, TaskNetwork::None), TaskNetwork::None);
    }

    #[test]
    fn names_round_trip_and_anything_else_is_refused_by_name() {
        for n in [TaskNetwork::Host, TaskNetwork::None] {
            assert_eq!(n.as_str().parse::<TaskNetwork>(), Ok(n));
        }
        let err = "bridge".parse::<TaskNetwork>().unwrap_err();
        assert_eq!(err.to_string(), "'bridge' is neither \"host\" nor \"none\"");
        assert!("Host".parse::<TaskNetwork>().is_err());
    }

    #[test]
    fn an_empty_change_says_so() {
        assert!(TenantChange::default().is_empty());
        assert!(!TenantChange { task_network: Setting::Default, ..TenantChange::default() }.is_empty());
        assert!(!TenantChange { rate_limit_per_key: Setting::Set(5), ..TenantChange::default() }.is_empty());
    }
}
