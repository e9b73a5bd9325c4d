//! Which server, which key and which tenant a client command uses: flags, the environment,
//! then the profile.

use cloacina_domain::{Secret, TenantName};

use crate::args::Globals;
use crate::client::{Client, Server};
use crate::config::{ConfigFile, Profile};
use crate::exit::CliError;
use crate::home::Home;

/// The server used when neither a flag, the environment nor a profile names one.
pub const DEFAULT_SERVER: &str = "http://localhost:8080";

/// What a client command knows before it calls the server.
#[derive(Debug)]
pub struct Context {
    pub globals: Globals,
    pub home: Home,
    pub config: ConfigFile,
}

impl Context {
    /// Reads the config file from the home folder.
    ///
    /// # Errors
    /// [`CliError::Local`] if there is no home folder or the file does not parse.
    pub fn load(globals: Globals) -> Result<Self, CliError> {
        let home = Home::resolve(globals.home.as_deref()).map_err(CliError::Local)?;
        let config = ConfigFile::load(&home.config_file()).map_err(CliError::Local)?;
        Ok(Self { globals, home, config })
    }

    /// The profile in force: `--profile`/`CLOACINA_PROFILE`, else `default_profile`.
    ///
    /// # Errors
    /// [`CliError::Usage`] if a profile is named that the file does not hold.
    pub fn profile(&self) -> Result<Option<&Profile>, CliError> {
        Ok(self.named_profile()?.map(|(_, p)| p))
    }

    /// The profile in force with its name.
    fn named_profile(&self) -> Result<Option<(&str, &Profile)>, CliError> {
        let name = self.globals.profile.as_deref().or(self.config.settings.default_profile.as_deref());
        match name {
            None => Ok(None),
            Some(n) => self.config.settings.profiles.get(n).map(|p| Some((n, p))).ok_or_else(|| {
                CliError::Usage(format!("no profile named '{n}' in {}", self.home.config_file().display()))
            }),
        }
    }

    /// The server in force and where its URL came from, for messages.
    ///
    /// # Errors
    /// As [`Context::profile`].
    pub fn server(&self) -> Result<(String, String), CliError> {
        if let Some(server) = &self.globals.server {
            let origin = if self.globals.from_env.server { "from CLOACINA_SERVER" } else { "from --server" };
            return Ok((server.clone(), origin.to_owned()));
        }
        if let Some((name, Some(server))) = self.named_profile()?.map(|(n, p)| (n, p.server.as_ref())) {
            return Ok((server.clone(), format!("from profile '{name}'")));
        }
        Ok((DEFAULT_SERVER.to_owned(), "the default: set --server, CLOACINA_SERVER or a profile".to_owned()))
    }

    /// A client for the server in force, with the key in force.
    ///
    /// # Errors
    /// [`CliError::Usage`] when no key is given anywhere or a key reference cannot be read.
    pub fn client(&self) -> Result<Client, CliError> {
        let profile = self.profile()?;
        let (server, origin) = self.server()?;
        let reference =
            self.globals.api_key.clone().or_else(|| profile.and_then(|p| p.api_key.clone())).ok_or_else(|| {
                CliError::Usage("no API key: pass --api-key, set CLOACINA_API_KEY, or use a profile".into())
            })?;
        Client::new(Server { url: server, origin, timeout: self.globals.request_timeout() }, resolve_key(&reference)?)
    }

    /// A client of the server in force that sends no key.
    ///
    /// # Errors
    /// As [`Context::server`], or a server URL that is not http(s).
    pub fn public_client(&self) -> Result<Client, CliError> {
        let (url, origin) = self.server()?;
        Client::public(Server { url, origin, timeout: self.globals.request_timeout() })
    }

    /// The tenant named by `--tenant`/`CLOACINA_TENANT` or the profile, if any.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a name that is not a valid tenant name.
    pub fn explicit_tenant(&self) -> Result<Option<TenantName>, CliError> {
        let name = match &self.globals.tenant {
            Some(t) => Some(t.clone()),
            None => self.profile()?.and_then(|p| p.tenant.clone()),
        };
        name.map(|n| TenantName::parse(&n).map_err(|e| CliError::Usage(format!("--tenant '{n}': {e}")))).transpose()
    }

    /// The tenant a command acts on: the explicit one, else the key's own, else `public`.
    ///
    /// # Errors
    /// As [`Context::explicit_tenant`], or the whoami call's error.
    pub async fn tenant(&self, client: &Client) -> Result<TenantName, CliError> {
        if let Some(t) = self.explicit_tenant()? {
            return Ok(t);
        }
        let me = client.whoami().await?;
        Ok(me.tenant.unwrap_or_else(TenantName::public))
    }
}

/// Reads a key reference: `env:VAR`, `file:PATH` (`~/` is the home folder; surrounding
/// whitespace trimmed), `-` (one line from stdin) or the key.
///
/// # Errors
/// [`CliError::Usage`] naming the variable or file that cannot be read, never the key.
pub fn resolve_key(reference: &str) -> Result<Secret, CliError> {
    let key = if let Some(var) = reference.strip_prefix("env:") {
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CliError::Usage(format!("environment variable {var} (from env:{var}) is not set")))?
    } else if let Some(path) = reference.strip_prefix("file:") {
        let path = expand_home(path);
        std::fs::read_to_string(&path)
            .map_err(|e| CliError::Usage(format!("cannot read key file {}: {e}", path.display())))?
    } else if reference == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::Usage(format!("cannot read the API key from stdin (--api-key -): {e}")))?;
        line
    } else {
        reference.to_owned()
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::Usage("the API key is empty".into()));
    }
    Ok(Secret::new(key))
}

/// `path` with a leading `~/` made the home folder (`$HOME`).
fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if !home.is_empty() => std::path::Path::new(&home).join(rest),
        _ => std::path::PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references_read_the_environment_or_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("k");
        std::fs::write(&file, "clk_from_file\n").unwrap();
        assert_eq!(resolve_key(&format!("file:{}", file.display())).unwrap().expose(), "clk_from_file");
        assert_eq!(resolve_key("clk_literal").unwrap().expose(), "clk_literal");
        let err = resolve_key("env:CLOACINA_TEST_SURELY_UNSET_VAR").unwrap_err().to_string();
        assert!(err.contains("CLOACINA_TEST_SURELY_UNSET_VAR"));
        assert!(resolve_key("file:/nonexistent/k").is_err());
    }
}
