//! A string that must never reach a log, an error body or a panic message.

use std::fmt;

/// A secret string (a plaintext API key, a password, a database URL with credentials).
///
/// `Debug` and `Display` print `[redacted]`; the only way to the text is [`Secret::expose`],
/// which makes every use greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a string.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text. Call it only where the text must leave the process on purpose
    /// (a create response, the bootstrap file, an outgoing `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_text() {
        let s = Secret::new("clk_canary_value_123456");
        assert!(!format!("{s:?}").contains("canary"));
        assert!(!format!("{s}").contains("canary"));
        assert!(!format!("{:?}", Some(&s)).contains("canary"));
        assert_eq!(s.expose(), "clk_canary_value_123456");
    }
}
