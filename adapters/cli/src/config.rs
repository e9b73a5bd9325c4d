//! `~/.cloacina/config.toml`: `database_url`, `default_profile` and `[profiles.NAME]` tables
//! with `server`, `api_key` and an optional `tenant`.
//!
//! Edits go through `toml_edit`, so comments and layout the operator wrote survive, and every
//! write is atomic with mode 0600. A file that does not parse is an error and is never
//! replaced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml_edit::{DocumentMut, Item, Table, value};

use crate::home::write_private_file;

/// One profile.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub server: Option<String>,
    /// The key itself, `env:VAR` or `file:PATH`.
    pub api_key: Option<String>,
    pub tenant: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("server", &self.server)
            .field("api_key", &self.api_key.as_deref().map(mask_key_ref))
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// The settings the file holds.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database_url: Option<String>,
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &self.database_url.as_deref().map(mask_url))
            .field("default_profile", &self.default_profile)
            .field("profiles", &self.profiles)
            .finish()
    }
}

/// The file, parsed, with the document kept for edits.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    doc: DocumentMut,
    pub settings: Settings,
}

/// The top-level keys `config get|set` accept.
pub const SETTABLE: [&str; 2] = ["database_url", "default_profile"];

impl ConfigFile {
    /// Reads `path`; a missing file is an empty configuration.
    ///
    /// # Errors
    /// A one-line message naming the file when it cannot be read or does not parse.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let bad = |e: &dyn std::fmt::Display| {
            let first = e.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
            format!("{} is not valid: {first} (fix or move it; it was left unchanged)", path.display())
        };
        let doc: DocumentMut = text.parse().map_err(|e| bad(&e))?;
        let settings: Settings = toml_edit::de::from_document(doc.clone()).map_err(|e| bad(&e))?;
        Ok(Self { path: path.to_owned(), doc, settings })
    }

    /// Sets a top-level key.
    ///
    /// # Errors
    /// A message for a key not in [`SETTABLE`], or a `default_profile` naming no profile.
    pub fn set(&mut self, key: &str, val: &str) -> Result<(), String> {
        match key {
            "database_url" => self.settings.database_url = Some(val.to_owned()),
            "default_profile" => {
                if !self.settings.profiles.contains_key(val) {
                    return Err(format!("no profile named '{val}' (see `cloacinactl config profile list`)"));
                }
                self.settings.default_profile = Some(val.to_owned());
            }
            _ => return Err(unknown_key(key)),
        }
        self.doc[key] = value(val);
        Ok(())
    }

    /// Creates or updates a profile with the fields given.
    pub fn set_profile(&mut self, name: &str, update: &Profile) {
        let profile = self.settings.profiles.entry(name.to_owned()).or_default();
        let profiles = self.doc.entry("profiles").or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        let mut table = profiles
            .as_table_mut()
            .and_then(|p| p.entry(name).or_insert_with(|| Item::Table(Table::new())).as_table_mut());
        for (field, new, slot) in [
            ("server", &update.server, &mut profile.server),
            ("api_key", &update.api_key, &mut profile.api_key),
            ("tenant", &update.tenant, &mut profile.tenant),
        ] {
            if let Some(v) = new {
                *slot = Some(v.clone());
                if let Some(t) = table.as_deref_mut() {
                    t[field] = value(v.as_str());
                }
            }
        }
    }

    /// Deletes a profile; clears `default_profile` if it named it.
    ///
    /// # Errors
    /// A message if there is no such profile.
    pub fn delete_profile(&mut self, name: &str) -> Result<(), String> {
        if self.settings.profiles.remove(name).is_none() {
            return Err(format!("no profile named '{name}'"));
        }
        if let Some(p) = self.doc.get_mut("profiles").and_then(Item::as_table_mut) {
            p.remove(name);
        }
        if self.settings.default_profile.as_deref() == Some(name) {
            self.settings.default_profile = None;
            self.doc.remove("default_profile");
        }
        Ok(())
    }

    /// Writes the file back, atomically, mode 0600.
    ///
    /// # Errors
    /// The I/O error, with the path.
    pub fn save(&self) -> Result<(), String> {
        write_private_file(&self.path, self.doc.to_string().as_bytes())
    }

    /// A top-level value as text.
    ///
    /// # Errors
    /// A message for a key not in [`SETTABLE`].
    pub fn get(&self, key: &str) -> Result<Option<&str>, String> {
        match key {
            "database_url" => Ok(self.settings.database_url.as_deref()),
            "default_profile" => Ok(self.settings.default_profile.as_deref()),
            _ => Err(unknown_key(key)),
        }
    }
}

fn unknown_key(key: &str) -> String {
    format!("unknown setting '{key}': expected one of {}", SETTABLE.join(", "))
}

/// A database URL with its password replaced by `****`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:****@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A key reference for display: `env:`/`file:` references as they are, a literal key masked.
pub fn mask_key_ref(reference: &str) -> String {
    if reference.starts_with("env:") || reference.starts_with("file:") {
        reference.to_owned()
    } else {
        let head: String = reference.chars().take(8).collect();
        format!("{head}…(hidden)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_002s_profiles_parse() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.toml");
        std::fs::write(
            &path,
            r#"default_profile = "acme-prod"

[profiles.acme-prod]
server = "https://cloacina.example.com"
api_key = "env:ACME_PROD_KEY"

[profiles.globex-prod]
server = "https://cloacina.example.com"
api_key = "file:/etc/cloacina/globex-prod.key"
"#,
        )
        .unwrap();
        let c = ConfigFile::load(&path).unwrap();
        assert_eq!(c.settings.default_profile.as_deref(), Some("acme-prod"));
        assert_eq!(c.settings.profiles["globex-prod"].api_key.as_deref(), Some("file:/etc/cloacina/globex-prod.key"));
    }

    #[test]
    fn edits_keep_comments_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.toml");
        std::fs::write(&path, "# mine\ndatabase_url = \"sqlite::memory:\"\n").unwrap();
        let mut c = ConfigFile::load(&path).unwrap();
        c.set_profile("dev", &Profile { server: Some("http://localhost:8080".into()), ..Profile::default() });
        c.set_profile("dev", &Profile { tenant: Some("acme".into()), ..Profile::default() });
        c.set("default_profile", "dev").unwrap();
        c.set("database_url", "postgres://u:p@db/c").unwrap();
        c.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        let back = ConfigFile::load(&path).unwrap().settings;
        assert_eq!(back.profiles["dev"].server.as_deref(), Some("http://localhost:8080"));
        assert_eq!(back.profiles["dev"].tenant.as_deref(), Some("acme"));
        assert_eq!(back.database_url.as_deref(), Some("postgres://u:p@db/c"));
        let mut c = ConfigFile::load(&path).unwrap();
        c.delete_profile("dev").unwrap();
        assert_eq!(c.settings.default_profile, None);
        c.save().unwrap();
        assert!(ConfigFile::load(&path).unwrap().settings.profiles.is_empty());
    }

    #[test]
    fn a_file_that_does_not_parse_is_an_error_and_stays_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.toml");
        std::fs::write(&path, "database_url = [unclosed\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err();
        assert!(err.contains("config.toml is not valid"), "{err}");
        std::fs::write(&path, "databse_url = \"typo\"\n").unwrap();
        assert!(ConfigFile::load(&path).unwrap_err().contains("databse_url"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "databse_url = \"typo\"\n");
    }

    #[test]
    fn unknown_settings_and_profiles_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = ConfigFile::load(&tmp.path().join("none.toml")).unwrap();
        assert!(c.set("colour", "red").is_err());
        assert!(c.set("default_profile", "missing").is_err());
        assert!(c.delete_profile("missing").is_err());
    }

    #[test]
    fn secrets_are_masked_for_display() {
        assert_eq!(
            mask_url("postgresql://cloacina:secret@db.example.com:5432/cloacina"),
            "postgresql://cloacina:****@db.example.com:5432/cloacina"
        );
        assert_eq!(mask_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(mask_key_ref("env:KEY"), "env:KEY");
        assert!(!mask_key_ref("clk_abcdefghijklmnopqrstuvwxyz").contains("mnop"));
    }
}
