//! The help pages as people read them: the global options described once, by `cloacinactl
//! options` (they are hidden from every other page, and accepted everywhere), a one-line
//! reminder of them on every page, and an example on every command.

use clap::Command;

/// The reminder closing every page.
const GLOBALS_FOOTER: &str = "Global options, on every command: --server, --api-key, --tenant, --profile, -o/--json,\n\
     -v, --color, --home, --request-timeout (`cloacinactl options` describes them).";

/// An example for each command, by its path below `cloacinactl`.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "serve",
        "cloacinactl serve --bind 127.0.0.1:8080\n  cloacinactl serve --database-url postgresql://cloacina:secret@db/cloacina",
    ),
    ("server", "cloacinactl server start --bind 127.0.0.1:8080"),
    ("server start", "cloacinactl server start --database-url postgresql://cloacina:secret@db/cloacina"),
    ("migrate", "cloacinactl migrate --database-url postgresql://cloacina:secret@db/cloacina"),
    ("tenant", "cloacinactl tenant list"),
    ("tenant create", "cloacinactl tenant create acme --description \"Acme, EU\""),
    ("tenant list", "cloacinactl tenant list -o json"),
    ("tenant get", "cloacinactl tenant get acme"),
    ("tenant update", "cloacinactl tenant update acme --task-network host"),
    ("tenant delete", "cloacinactl tenant delete acme --yes"),
    ("tenant export", "cloacinactl tenant export acme -f acme.export"),
    (
        "tenant import",
        "cloacinactl tenant import acme.export\n  cloacinactl tenant import acme.export --name acme-copy",
    ),
    ("package", "cloacinactl package new acme-etl && cloacinactl package pack acme-etl"),
    ("package new", "cloacinactl package new acme-etl"),
    ("package pack", "cloacinactl package pack acme-etl --file dist/acme-etl.cloacina"),
    (
        "package validate",
        "cloacinactl package validate acme-etl\n  cloacinactl package validate acme-etl-0.1.0.cloacina",
    ),
    ("package upload", "cloacinactl package upload acme-etl-0.1.0.cloacina"),
    ("package keygen", "cloacinactl package keygen release --dir ~/.cloacina"),
    ("package sign", "cloacinactl package sign acme-etl-0.1.0.cloacina --key ~/.cloacina/release.key"),
    ("secret", "cloacinactl secret list"),
    (
        "secret create",
        "cloacinactl secret create db --from-file db.json\n  cloacinactl secret create db --field password",
    ),
    ("secret rotate", "cloacinactl secret rotate db --from-file - < db.json"),
    ("secret list", "cloacinactl secret list -o json"),
    ("secret get", "cloacinactl secret get db"),
    ("secret delete", "cloacinactl secret delete db"),
    ("secrets", "cloacinactl secrets rewrap --old-key-file old.key --new-key-file new.key"),
    (
        "secrets rewrap",
        "cloacinactl secrets rewrap --database-url postgresql://cloacina@db/cloacina --old-key-file old.key --new-key-file new.key",
    ),
    ("signer", "cloacinactl signer list"),
    ("signer add", "cloacinactl signer add release --public-key release.pub"),
    ("signer list", "cloacinactl signer list -o json"),
    ("signer remove", "cloacinactl signer remove release"),
    ("signer require", "cloacinactl signer require on"),
    ("package list", "cloacinactl package list -o id"),
    ("package get", "cloacinactl package get acme-etl\n  cloacinactl package get acme-etl@0.1.0"),
    ("package delete", "cloacinactl package delete acme-etl@0.1.0"),
    ("workflow", "cloacinactl workflow list"),
    ("workflow list", "cloacinactl workflow list -o json"),
    ("workflow get", "cloacinactl workflow get pipeline"),
    ("workflow pause", "cloacinactl workflow pause pipeline"),
    ("workflow resume", "cloacinactl workflow resume pipeline"),
    (
        "workflow run",
        "cloacinactl workflow run pipeline --wait\n  cloacinactl workflow run pipeline --context '{\"day\": \"monday\"}' --idempotency-key deploy-7",
    ),
    ("audit", "cloacinactl audit list --action key.create"),
    (
        "audit list",
        "cloacinactl audit list --tenant acme --since 2026-12-01T00:00:00Z\n  cloacinactl audit list -f -o json",
    ),
    ("audit verify", "cloacinactl audit verify --tenant acme\n  cloacinactl --profile admin audit verify"),
    ("execution", "cloacinactl execution list --status failed"),
    (
        "execution list",
        "cloacinactl execution list --workflow pipeline --status failed\n  cloacinactl execution list --all -o id",
    ),
    ("execution get", "cloacinactl execution get 3b90505e\n  cloacinactl execution get --latest --workflow pipeline"),
    ("execution tasks", "cloacinactl execution tasks 3b90505e"),
    ("execution events", "cloacinactl execution events 3b90505e --since 4"),
    (
        "execution logs",
        "cloacinactl execution logs 3b90505e load\n  cloacinactl execution logs 3b90505e -f\n  cloacinactl execution logs 3b90505e --failed",
    ),
    ("execution watch", "cloacinactl execution watch 3b90505e"),
    ("execution cancel", "cloacinactl execution cancel 3b90505e"),
    ("execution retry", "cloacinactl execution retry 3b90505e"),
    ("trigger", "cloacinactl trigger list"),
    ("trigger list", "cloacinactl trigger list -o json"),
    ("trigger get", "cloacinactl trigger get nightly"),
    ("trigger pause", "cloacinactl trigger pause nightly"),
    ("trigger resume", "cloacinactl trigger resume nightly"),
    (
        "trigger fire",
        "cloacinactl trigger fire nightly --event '{\"day\": \"monday\"}'\n  cloacinactl trigger fire nightly --event @event.json",
    ),
    ("config", "cloacinactl config list"),
    ("config get", "cloacinactl config get database_url"),
    ("config set", "cloacinactl config set database_url \"sqlite:///var/lib/cloacina.db\""),
    ("config list", "cloacinactl config list"),
    ("config profile", "cloacinactl config profile list"),
    (
        "config profile set",
        "cloacinactl config profile set local --server http://127.0.0.1:8080 --api-key file:~/.cloacina/me.key",
    ),
    ("config profile list", "cloacinactl config profile list"),
    ("config profile use", "cloacinactl config profile use local"),
    ("config profile delete", "cloacinactl config profile delete local"),
    ("key", "cloacinactl key list"),
    (
        "key create",
        "cloacinactl key create acme-ci --role write --tenant acme\n  cloacinactl key create ops --admin -o id > ops.key",
    ),
    ("key list", "cloacinactl key list --tenant acme"),
    ("key revoke", "cloacinactl key revoke acme-ci"),
    ("auth", "cloacinactl auth status"),
    ("auth whoami", "cloacinactl auth whoami -o json"),
    ("auth status", "cloacinactl --profile acme-prod auth status"),
    ("version", "cloacinactl version"),
    ("completions", "cloacinactl completions bash > /etc/bash_completion.d/cloacinactl"),
    ("options", "cloacinactl options"),
];

/// `root` with every command given its example and the globals' reminder.
pub fn for_people(mut root: Command) -> Command {
    root = root.after_help(GLOBALS_FOOTER);
    root.build();
    for sub in root.get_subcommands_mut() {
        let name = sub.get_name().to_owned();
        dress(sub, &name);
    }
    root
}

/// `root` with the global options shown, for the completion scripts.
pub fn with_globals_shown(mut root: Command) -> Command {
    let globals: Vec<clap::Id> =
        root.get_arguments().filter(|a| a.is_global_set()).map(|a| a.get_id().clone()).collect();
    for id in globals {
        root = root.mut_arg(id, |a| a.hide(false));
    }
    root
}

/// `cloacinactl options`: each global option with what it does, its value and its variable.
pub fn global_options(root: &Command) -> String {
    let mut lines =
        vec!["The global options, which every command takes (before or after its name):".to_owned(), String::new()];
    for a in root.get_arguments().filter(|a| a.is_global_set()) {
        let mut flag = match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("    --{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => continue,
        };
        if let Some(names) = a.get_value_names().filter(|_| a.get_action().takes_values()) {
            flag.push_str(&format!(" <{}>", names.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")));
        }
        lines.push(format!("  {flag}"));
        if let Some(help) = a.get_help() {
            lines.push(format!("          {help}"));
        }
        let values: Vec<String> = a.get_possible_values().iter().map(|v| v.get_name().to_owned()).collect();
        if !values.is_empty() {
            lines.push(format!("          one of: {}", values.join(", ")));
        }
        if let Some(env) = a.get_env() {
            lines.push(format!("          environment: {} (an empty value counts as unset)", env.to_string_lossy()));
        }
    }
    lines.join("\n")
}

/// The example of the command at `path`, if it has one.
pub fn example(path: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
}

fn dress(cmd: &mut Command, path: &str) {
    let footer = match example(path) {
        Some(e) => format!("Examples:\n  {e}\n\n{GLOBALS_FOOTER}"),
        None => GLOBALS_FOOTER.to_owned(),
    };
    *cmd = std::mem::take(cmd).after_help(footer);
    for sub in cmd.get_subcommands_mut() {
        let name = sub.get_name().to_owned();
        if name != "help" {
            dress(sub, &format!("{path} {name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::CommandFactory;

    /// Every command a person can run, by path.
    fn paths(cmd: &Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path =
                if prefix.is_empty() { sub.get_name().to_owned() } else { format!("{prefix} {}", sub.get_name()) };
            paths(sub, &path, out);
            out.push(path);
        }
    }

    #[test]
    fn every_command_has_an_example_and_every_positional_a_description() {
        let mut all = Vec::new();
        paths(&Cli::command(), "", &mut all);
        let missing: Vec<&String> = all.iter().filter(|p| example(p).is_none()).collect();
        assert!(missing.is_empty(), "commands without an example: {missing:?}");
        let stale: Vec<&str> = EXAMPLES.iter().map(|(p, _)| *p).filter(|p| !all.iter().any(|a| a == p)).collect();
        assert!(stale.is_empty(), "examples of no command: {stale:?}");
        let mut undescribed = Vec::new();
        fn positionals(cmd: &Command, path: &str, out: &mut Vec<String>) {
            for a in cmd.get_positionals().filter(|a| a.get_help().is_none()) {
                out.push(format!("{path} <{}>", a.get_id()));
            }
            for sub in cmd.get_subcommands() {
                positionals(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        positionals(&Cli::command(), "cloacinactl", &mut undescribed);
        assert!(undescribed.is_empty(), "positional arguments without a description: {undescribed:?}");
    }

    #[test]
    fn globals_are_described_by_options_only_and_accepted_everywhere() {
        let mut root = for_people(Cli::command());
        let top = root.render_help().to_string();
        assert!(!top.contains("--request-timeout <DURATION>") && top.contains("`cloacinactl options`"), "{top}");
        let options = global_options(&Cli::command());
        for flag in
            ["--server <URL>", "--api-key <KEY>", "-o, --output <FORMAT>", "--json", "--request-timeout <DURATION>"]
        {
            assert!(options.contains(flag), "{flag}: {options}");
        }
        assert!(options.contains("environment: CLOACINA_SERVER") && options.contains("one of: table, json, yaml, id"));
        let leaf =
            root.find_subcommand_mut("key").unwrap().find_subcommand_mut("create").unwrap().render_help().to_string();
        assert!(!leaf.contains("--request-timeout <DURATION>"), "{leaf}");
        assert!(leaf.contains("Examples:\n  cloacinactl key create acme-ci --role write --tenant acme"), "{leaf}");
        assert!(leaf.contains("Global options, on every command: --server"), "{leaf}");
        let cli = Cli::parse_args([
            "cloacinactl",
            "key",
            "create",
            "acme-ci",
            "--role",
            "write",
            "--tenant",
            "acme",
            "--server",
            "http://127.0.0.1:8080",
            "--api-key",
            "env:K",
        ])
        .unwrap();
        assert_eq!(cli.globals.tenant.as_deref(), Some("acme"));
        assert_eq!(cli.globals.server.as_deref(), Some("http://127.0.0.1:8080"));
    }
}
