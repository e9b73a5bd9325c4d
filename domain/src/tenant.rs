//! Tenants: their names, their registry rows, and what creating one needs.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::secret::Secret;
use crate::task_network::TaskNetwork;

/// The tenant every deployment has, on SQLite the only one.
pub const PUBLIC_TENANT: &str = "public";

/// A validated tenant name: `^[a-z][a-z0-9_-]{0,47}$`.
///
/// [`TenantName::parse`] accepts `public` (it names the built-in tenant);
/// [`TenantName::parse_new`] is for names a create may take, and refuses it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantName(String);

/// Why a string is not a tenant name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantNameError {
    #[error("tenant name is empty")]
    Empty,
    #[error("tenant name is longer than 48 characters")]
    TooLong,
    #[error("tenant name must start with a lowercase letter")]
    BadStart,
    #[error("tenant name may hold only lowercase letters, digits, '_' and '-'")]
    BadCharacter,
    #[error("tenant name 'public' is reserved")]
    Reserved,
}

impl TenantName {
    /// The maximum length in bytes (all characters are ASCII).
    pub const MAX_LEN: usize = 48;

    /// Parses a name that refers to an existing or built-in tenant.
    ///
    /// # Errors
    /// A [`TenantNameError`] naming the first rule the input breaks.
    pub fn parse(input: &str) -> Result<Self, TenantNameError> {
        let mut chars = input.chars();
        let first = chars.next().ok_or(TenantNameError::Empty)?;
        if input.len() > Self::MAX_LEN {
            return Err(TenantNameError::TooLong);
        }
        if !first.is_ascii_lowercase() {
            return Err(TenantNameError::BadStart);
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
            return Err(TenantNameError::BadCharacter);
        }
        Ok(Self(input.to_owned()))
    }

    /// Parses a name for a tenant to be created: as [`TenantName::parse`], but not `public`.
    ///
    /// # Errors
    /// As [`TenantName::parse`], plus [`TenantNameError::Reserved`].
    pub fn parse_new(input: &str) -> Result<Self, TenantNameError> {
        let name = Self::parse(input)?;
        if name.is_public() {
            return Err(TenantNameError::Reserved);
        }
        Ok(name)
    }

    /// The built-in tenant.
    pub fn public() -> Self {
        Self(PUBLIC_TENANT.to_owned())
    }

    /// Whether this is the built-in tenant.
    pub fn is_public(&self) -> bool {
        self.0 == PUBLIC_TENANT
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantName({})", self.0)
    }
}

/// A tenant's free-text description: at most 256 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantDescription(String);

/// Why a description is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantDescriptionError {
    #[error("description must be at most 256 characters")]
    TooLong,
    #[error("description must not contain control characters")]
    ControlCharacter,
}

impl TenantDescription {
    /// Checks a description.
    ///
    /// # Errors
    /// A [`TenantDescriptionError`] naming the broken rule.
    pub fn parse(input: &str) -> Result<Self, TenantDescriptionError> {
        if input.chars().count() > 256 {
            return Err(TenantDescriptionError::TooLong);
        }
        if input.chars().any(char::is_control) {
            return Err(TenantDescriptionError::ControlCharacter);
        }
        Ok(Self(input.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One row of the tenant registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    pub name: TenantName,
    /// The database schema holding the tenant's data (`main` on SQLite).
    pub schema: String,
    /// The database role its transactions run as (none on SQLite).
    pub db_role: Option<String>,
    pub description: Option<TenantDescription>,
    pub created_at: DateTime<Utc>,
    /// The tenant's own task network, set by a god key; `None` follows the deployment's.
    pub task_network: Option<TaskNetwork>,
    /// The requests a second each of its keys may send, set by a god key (0: no limit);
    /// `None` follows the servers' `--rate-limit-per-key`.
    pub rate_limit_per_key: Option<u32>,
}

impl TenantRecord {
    /// Whether this is the built-in tenant, which always exists and cannot be deleted.
    pub fn is_builtin(&self) -> bool {
        self.name.is_public()
    }
}

/// A tenant role's password from 32 random bytes: URL-safe base64, so it can never break
/// out of the SQL literal DDL needs it in.
pub fn role_password(random: [u8; 32]) -> Secret {
    use base64::Engine;
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random))
}

/// A password an operator chose for a tenant's database role: 16 to 256 visible ASCII
/// characters, as a supplied bootstrap key. It never prints.
#[derive(Clone, Debug)]
pub struct TenantPassword(Secret);

/// Why a chosen password is refused. The text never holds the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantPasswordError {
    #[error("password must be at least 16 characters")]
    TooShort,
    #[error("password must be at most 256 characters")]
    TooLong,
    #[error("password may hold only visible ASCII characters, without spaces")]
    BadCharacter,
}

impl TenantPassword {
    /// Checks a chosen password.
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn parse(text: Secret) -> Result<Self, TenantPasswordError> {
        let pw = text.expose();
        if pw.len() < 16 {
            return Err(TenantPasswordError::TooShort);
        }
        if pw.len() > 256 {
            return Err(TenantPasswordError::TooLong);
        }
        if !pw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TenantPasswordError::BadCharacter);
        }
        Ok(Self(text))
    }

    pub fn into_secret(self) -> Secret {
        self.0
    }
}

/// What creating a tenant needs. The schema and role names are the adapter's to generate.
#[derive(Clone, Debug)]
pub struct NewTenant {
    pub name: TenantName,
    pub description: Option<TenantDescription>,
    /// The password of the tenant's database role: random unless the operator chose one, set
    /// once, never returned.
    pub db_password: Secret,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_password_is_visible_ascii_of_16_to_256_characters_and_errors_never_show_it() {
        let ok = "c0rrect-h0rse'battery\\staple";
        assert_eq!(TenantPassword::parse(Secret::new(ok)).unwrap().into_secret().expose(), ok);
        for (bad, why) in [
            ("short-pw", TenantPasswordError::TooShort),
            (&"x".repeat(257)[..], TenantPasswordError::TooLong),
            ("sixteen chars pw", TenantPasswordError::BadCharacter),
            ("tab\tinside-the-password", TenantPasswordError::BadCharacter),
        ] {
            let err = TenantPassword::parse(Secret::new(bad)).unwrap_err();
            assert_eq!(err, why, "{bad}");
            assert!(!err.to_string().contains(bad), "{err}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn ordinary_names_are_accepted() {
        for ok in ["acme", "globex-prod", "a", "t_1", &format!("a{}", "b".repeat(47))] {
            assert!(TenantName::parse_new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn public_refers_to_the_built_in_tenant_but_cannot_be_created() {
        assert!(TenantName::parse("public").unwrap().is_public());
        assert_eq!(TenantName::parse_new("public"), Err(TenantNameError::Reserved));
    }

    #[test]
    fn injection_payloads_are_refused() {
        let long = "a".repeat(49);
        let cases: [(&str, TenantNameError); 8] = [
            ("", TenantNameError::Empty),
            ("Acme", TenantNameError::BadStart),
            ("1acme", TenantNameError::BadStart),
            ("acme\"; drop schema public; --", TenantNameError::BadCharacter),
            ("acme'", TenantNameError::BadCharacter),
            ("acmé", TenantNameError::BadCharacter),
            ("acme\0", TenantNameError::BadCharacter),
            (&long, TenantNameError::TooLong),
        ];
        for (input, err) in cases {
            assert_eq!(TenantName::parse(input), Err(err), "{input:?}");
        }
    }

    #[test]
    fn descriptions_are_bounded_and_printable() {
        assert!(TenantDescription::parse("Acme Corp, EU region").is_ok());
        assert_eq!(TenantDescription::parse(&"x".repeat(257)), Err(TenantDescriptionError::TooLong));
        assert_eq!(TenantDescription::parse("a\u{0}b"), Err(TenantDescriptionError::ControlCharacter));
    }

    proptest! {
        #[test]
        fn every_accepted_name_matches_the_grammar(s in "\\PC{0,60}") {
            if let Ok(name) = TenantName::parse(&s) {
                let b = name.as_str().as_bytes();
                prop_assert!(!b.is_empty() && b.len() <= 48);
                prop_assert!(b[0].is_ascii_lowercase());
                prop_assert!(b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-'));
            }
        }

        #[test]
        fn every_name_of_the_grammar_is_accepted(s in "[a-z][a-z0-9_-]{0,47}") {
            let name = TenantName::parse(&s).unwrap();
            prop_assert_eq!(name.as_str(), s.as_str());
        }
    }
}
