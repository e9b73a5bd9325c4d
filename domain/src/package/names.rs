//! Names declared by a manifest. Each is a newtype built by `parse`.

use std::fmt;

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must start with a lowercase letter")]
    BadStart,
    #[error("may hold only {0}")]
    BadCharacter(&'static str),
}

fn check(input: &str, max: usize, allow_underscore: bool) -> Result<(), NameError> {
    let first = input.chars().next().ok_or(NameError::Empty)?;
    if input.len() > max {
        return Err(NameError::TooLong(max));
    }
    if !first.is_ascii_lowercase() {
        return Err(NameError::BadStart);
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (allow_underscore && c == '_');
    if !input.chars().all(ok) {
        return Err(NameError::BadCharacter(if allow_underscore {
            "lowercase letters, digits, '-' and '_'"
        } else {
            "lowercase letters, digits and '-'"
        }));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $underscore:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The longest accepted name.
            pub const MAX_LEN: usize = $max;

            /// Checks a name.
            ///
            /// # Errors
            /// A [`NameError`] naming the broken rule.
            pub fn parse(input: &str) -> Result<Self, NameError> {
                check(input, $max, $underscore)?;
                Ok(Self(input.to_owned()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

name_type!(
    /// A package name: lowercase letters, digits and `-`, starting with a letter, at most 64.
    PackageName, 64, false
);
name_type!(
    /// A workflow name, unique within a tenant: lowercase letters, digits, `-`, `_`.
    WorkflowName, 64, true
);
name_type!(
    /// A task id, unique within a workflow: lowercase letters, digits, `-`, `_`.
    TaskId, 64, true
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn package_names_take_no_underscore_and_tasks_do() {
        assert!(PackageName::parse("acme-etl").is_ok());
        assert_eq!(PackageName::parse("acme_etl"), Err(NameError::BadCharacter("lowercase letters, digits and '-'")));
        assert!(TaskId::parse("load_2").is_ok());
        assert_eq!(TaskId::parse("2load"), Err(NameError::BadStart));
        assert_eq!(WorkflowName::parse(""), Err(NameError::Empty));
        assert_eq!(WorkflowName::parse(&"a".repeat(65)), Err(NameError::TooLong(64)));
    }

    proptest! {
        #[test]
        fn an_accepted_name_is_never_empty_long_or_odd(s in "\\PC{0,80}") {
            if let Ok(n) = TaskId::parse(&s) {
                let b = n.as_str().as_bytes();
                prop_assert!(!b.is_empty() && b.len() <= 64 && b[0].is_ascii_lowercase());
                prop_assert!(b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_'));
            }
        }
    }
}
