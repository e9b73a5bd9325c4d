//! `config get|set|list` and `config profile set|list|use|delete`.

use std::io::IsTerminal as _;

use crate::args::{ConfigCommand, OutputFormat, ProfileCommand};
use crate::client::Context;
use crate::config::{Profile, mask_key_ref, mask_url};
use crate::exit::CliError;
use crate::output::{Table, emit, line, note};

/// Runs a `config` command.
///
/// # Errors
/// [`CliError::Usage`] for an unknown setting or profile, [`CliError::Local`] when the file
/// cannot be written.
pub fn run(ctx: &mut Context, cmd: ConfigCommand) -> Result<(), CliError> {
    let format = ctx.globals.format();
    match cmd {
        ConfigCommand::Get { key, reveal } => {
            let value = ctx.config.get(&key).map_err(CliError::Usage)?;
            match value {
                Some(v) if key == "database_url" && !reveal => line(mask_url(v)),
                Some(v) => line(v),
                None => Err(CliError::Usage(format!("{key} is not set"))),
            }
        }
        ConfigCommand::Set { key, value } => {
            ctx.config.set(&key, &value).map_err(CliError::Usage)?;
            ctx.config.save().map_err(CliError::Local)?;
            note(format!("{key} set in {}", ctx.home.config_file().display()));
            Ok(())
        }
        ConfigCommand::List => {
            let s = &ctx.config.settings;
            let json = serde_json::json!({
                "database_url": s.database_url.as_deref().map(mask_url),
                "default_profile": s.default_profile,
                "profiles": s.profiles.keys().collect::<Vec<_>>(),
            });
            emit(
                format,
                &json,
                || {
                    let mut t = Table::new(&["SETTING", "VALUE"]);
                    t.row(vec!["database_url".into(), s.database_url.as_deref().map_or("-".into(), mask_url)]);
                    t.row(vec!["default_profile".into(), s.default_profile.clone().unwrap_or_else(|| "-".into())]);
                    t.row(vec!["profiles".into(), s.profiles.keys().cloned().collect::<Vec<_>>().join(", ")]);
                    t.render()
                },
                Vec::new,
            )
        }
        ConfigCommand::Profile(cmd) => profile(ctx, cmd, format),
    }
}

fn profile(ctx: &mut Context, cmd: ProfileCommand, format: OutputFormat) -> Result<(), CliError> {
    match cmd {
        ProfileCommand::Set { name, allow_raw_key } => {
            check_profile_name(&name)?;
            let g = &ctx.globals;
            // Only what this command line says: a CLOACINA_API_KEY holding a raw key for the
            // shell's session must not end up in a file.
            let given = |value: &Option<String>, from_env: bool| if from_env { None } else { value.clone() };
            let mut update = Profile {
                server: given(&g.server, g.from_env.server),
                api_key: given(&g.api_key, g.from_env.api_key),
                tenant: given(&g.tenant, g.from_env.tenant),
            };
            if update == Profile::default() && !ctx.config.settings.profiles.contains_key(&name) {
                return Err(CliError::Usage(
                    "give at least one of --server, --api-key, --tenant (CLOACINA_* variables are not stored in a \
                     profile)"
                        .into(),
                ));
            }
            if let Some(reference) = update.api_key.take() {
                update.api_key = Some(stored_key(&reference, allow_raw_key)?);
            }
            ctx.config.set_profile(&name, &update);
            ctx.config.save().map_err(CliError::Local)?;
            note(format!("profile '{name}' saved in {}", ctx.home.config_file().display()));
            Ok(())
        }
        ProfileCommand::List => {
            let s = &ctx.config.settings;
            let rows: Vec<serde_json::Value> = s
                .profiles
                .iter()
                .map(|(name, p)| {
                    serde_json::json!({
                        "name": name,
                        "default": s.default_profile.as_deref() == Some(name.as_str()),
                        "server": p.server,
                        "api_key": p.api_key.as_deref().map(mask_key_ref),
                        "tenant": p.tenant,
                    })
                })
                .collect();
            let value = serde_json::Value::Array(rows.clone());
            emit(
                format,
                &value,
                || {
                    let mut t = Table::new(&["", "NAME", "SERVER", "API KEY", "TENANT"]);
                    for r in &rows {
                        let cell = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_owned();
                        let mark = if r["default"].as_bool() == Some(true) { "*" } else { "" };
                        t.row(vec![mark.into(), cell("name"), cell("server"), cell("api_key"), cell("tenant")]);
                    }
                    t.render()
                },
                || s.profiles.keys().cloned().collect(),
            )
        }
        ProfileCommand::Use { name } => {
            ctx.config.set("default_profile", &name).map_err(CliError::Usage)?;
            ctx.config.save().map_err(CliError::Local)?;
            note(format!("default profile is now '{name}'"));
            Ok(())
        }
        ProfileCommand::Delete { name } => {
            ctx.config.delete_profile(&name).map_err(CliError::Usage)?;
            ctx.config.save().map_err(CliError::Local)?;
            note(format!("profile '{name}' deleted"));
            Ok(())
        }
    }
}

/// What a profile keeps for `--api-key`: a reference as given; a raw key (`-` reads one from
/// stdin) only with `--allow-raw-key` or a yes on a terminal.
fn stored_key(reference: &str, allow_raw_key: bool) -> Result<String, CliError> {
    if reference.starts_with("env:") || reference.starts_with("file:") {
        return Ok(reference.to_owned());
    }
    let key = crate::client::resolve_key(reference)?.expose().to_owned();
    if allow_raw_key {
        return Ok(key);
    }
    let refused = || {
        CliError::Usage(
            "--api-key is a raw key, which config.toml would hold in the clear: give env:VAR or file:PATH, or pass \
             --allow-raw-key to store it anyway"
                .into(),
        )
    };
    if reference == "-" || !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(refused());
    }
    let answer = crate::output::ask(
        "--api-key is a raw key: store it in config.toml in the clear (env:VAR or file:PATH keep it out)? [y/N] ",
    );
    if matches!(answer.as_deref().map(str::trim), Some("y" | "Y" | "yes")) { Ok(key) } else { Err(refused()) }
}

fn check_profile_name(name: &str) -> Result<(), CliError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!("profile name '{name}': use 1-64 letters, digits, '-' or '_'")))
    }
}
