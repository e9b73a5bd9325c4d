use super::*;
use proptest::prelude::*;

/// The example of docs/packages.md, as people write it.
const EXAMPLE: &str = r#"
[package]
name = "acme-etl"                 # lowercase letters, digits, '-'
version = "1.2.0"                 # semver
description = "Nightly ETL"       # optional

[[workflow]]
name = "nightly-etl"

[[workflow.task]]
id = "extract"
command = ["python3", "extract.py"]   # argv, run in the package folder
timeout = "5m"                        # default 5m
retries = 2                           # further attempts after the first; default 0
backoff = "exponential"               # or "fixed"; retry_delay = "1s", retry_max_delay = "60s"
env = { LEVEL = "info" }

[[workflow.task]]
id = "load"
command = ["sh", "load.sh"]
depends_on = ["extract"]

[[workflow.trigger]]
name = "nightly"
cron = "0 2 * * *"
timezone = "UTC"                      # default UTC
"#;

fn error_of(text: &str) -> ManifestError {
    Manifest::parse(text).expect_err("the manifest must be refused")
}

/// The example with one line replaced.
fn with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "{from}");
    EXAMPLE.replacen(from, to, 1)
}

#[test]
fn the_specified_example_parses_with_its_defaults() {
    let m = Manifest::parse(EXAMPLE).unwrap();
    assert_eq!(m.package.name.as_str(), "acme-etl");
    assert_eq!(m.package.version, semver::Version::new(1, 2, 0));
    assert_eq!(m.package.description.as_deref(), Some("Nightly ETL"));
    let wf = &m.workflows[0];
    assert_eq!(wf.name.as_str(), "nightly-etl");
    let ids: Vec<_> = wf.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["extract", "load"]);
    let extract = &wf.tasks[0];
    assert_eq!(extract.command, ["python3", "extract.py"]);
    assert_eq!(extract.timeout, Duration::from_secs(300));
    assert_eq!(
        extract.retry,
        RetryPolicy {
            retries: 2,
            backoff: Backoff::Exponential,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60)
        }
    );
    assert_eq!(extract.env.get("LEVEL").map(String::as_str), Some("info"));
    let load = &wf.tasks[1];
    assert_eq!((load.retry.retries, load.timeout), (0, DEFAULT_TIMEOUT));
    let trigger = &wf.triggers[0];
    assert_eq!(
        (trigger.name.as_str(), trigger.cron.as_str(), trigger.timezone),
        ("nightly", "0 2 * * *", chrono_tz::UTC)
    );
}

#[test]
fn tasks_come_out_dependencies_first_whatever_order_they_are_written_in() {
    let text = EXAMPLE.replace(
        "[[workflow.task]]\nid = \"extract\"",
        "[[workflow.task]]\nid = \"report\"\ncommand = [\"true\"]\ndepends_on = [\"load\"]\n\n[[workflow.task]]\nid = \"extract\"",
    );
    let m = Manifest::parse(&text).unwrap();
    let ids: Vec<_> = m.workflows[0].tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["extract", "load", "report"]);
}

#[test]
fn every_error_names_the_field_at_fault() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            with("depends_on = [\"extract\"]", "depends_on = [\"extrakt\"]"),
            "workflow[0].task[1].depends_on[0]",
            "not a task",
        ),
        (with("depends_on = [\"extract\"]", "depends_on = [\"load\"]"), "workflow[0].task[1].depends_on[0]", "itself"),
        (
            with("env = { LEVEL = \"info\" }", "env = { LEVEL = \"info\" }\ndepends_on = [\"load\"]"),
            "workflow[0].task[0].depends_on",
            "cycle",
        ),
        (with("id = \"load\"", "id = \"extract\""), "workflow[0].task[1].id", "twice"),
        (with("cron = \"0 2 * * *\"", "cron = \"0 25 * * *\""), "workflow[0].trigger[0].cron", "cron"),
        (with("timeout = \"5m\"", "timeout = \"five minutes\""), "workflow[0].task[0].timeout", "duration"),
        (with("timeout = \"5m\"", "timeout = \"0s\""), "workflow[0].task[0].timeout", "zero"),
        (with("timeout = \"5m\"", "timeout = \"48h\""), "workflow[0].task[0].timeout", "24h"),
        (with("timeout = \"5m\"", "tymeout = \"5m\""), "workflow[0].task[0].tymeout", "unknown field"),
        (with("version = \"1.2.0\"", "version = \"1.2\""), "package.version", "semantic version"),
        (with("name = \"acme-etl\"", "name = \"Acme_ETL\""), "package.name", "lowercase"),
        (with("timezone = \"UTC\"", "timezone = \"Mars/Olympus\""), "workflow[0].trigger[0].timezone", "time zone"),
        (
            with("env = { LEVEL = \"info\" }", "env = { CLOACINA_CONTEXT_FILE = \"x\" }"),
            "workflow[0].task[0].env.CLOACINA_CONTEXT_FILE",
            "runner",
        ),
        (
            with("env = { LEVEL = \"info\" }", "env = { \"BAD-NAME\" = \"x\" }"),
            "workflow[0].task[0].env.BAD-NAME",
            "environment variable",
        ),
        (with("command = [\"sh\", \"load.sh\"]", "command = []"), "workflow[0].task[1].command", "program"),
        (with("retries = 2", "retries = 101"), "workflow[0].task[0].retries", "at most"),
        (with("retries = 2", "retries = -1"), "workflow[0].task[0].retries", ""),
        (with("backoff = \"exponential\"", "backoff = \"linear\""), "workflow[0].task[0].backoff", "fixed"),
        (with("backoff = \"exponential\"", "retry_delay = \"2m\""), "workflow[0].task[0].retry_max_delay", "shorter"),
        (
            with("name = \"nightly\"", "name = \"nightly\"\nschedule = \"daily\""),
            "workflow[0].trigger[0].schedule",
            "unknown field",
        ),
        (with("command = [\"sh\", \"load.sh\"]", "command = \"sh load.sh\""), "workflow[0].task[1].command", ""),
        (with("timezone = \"UTC\"", "catchup = \"some\""), "workflow[0].trigger[0].catchup", "latest"),
        (with("timezone = \"UTC\"", "overlap = \"queue\""), "workflow[0].trigger[0].overlap", "buffer_one"),
        (with("timezone = \"UTC\"", "catchup_window = \"soon\""), "workflow[0].trigger[0].catchup_window", "duration"),
        (with("timezone = \"UTC\"", "catchup_window = \"30d\""), "workflow[0].trigger[0].catchup_window", "7d"),
        (with("timezone = \"UTC\"", "context = \"x\""), "workflow[0].trigger[0].context", ""),
        (with("cron = \"0 2 * * *\"", "cron = \"61 * * * * *\""), "workflow[0].trigger[0].cron", "cron"),
    ];
    for (text, field, words) in cases {
        let err = error_of(&text);
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(words), "{err}");
    }
}

#[test]
fn a_package_needs_a_workflow_with_a_task_and_unique_names() {
    let err = error_of("[package]\nname = \"x\"\nversion = \"1.0.0\"\n");
    assert_eq!(err.field, "workflow");
    let err = error_of("[package]\nname = \"x\"\nversion = \"1.0.0\"\n[[workflow]]\nname = \"w\"\n");
    assert_eq!(err.field, "workflow[0].task");
    let twice = format!(
        "{EXAMPLE}\n[[workflow]]\nname = \"nightly-etl\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n"
    );
    assert_eq!(error_of(&twice).field, "workflow[1].name");
    assert_eq!(error_of("not = toml = at all").field, "package.toml");
    assert_eq!(error_of("[[workflow]]\nname = \"w\"\n").field, "package.toml", "missing [package]");
}

#[test]
fn retry_delays_double_up_to_the_cap_or_stay_fixed() {
    let mut p = RetryPolicy {
        retries: 10,
        backoff: Backoff::Exponential,
        delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
    };
    let delays: Vec<u64> = (1..=8).map(|n| p.delay_before(n).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(p.delay_before(1_000).as_secs(), 60, "no overflow");
    p.backoff = Backoff::Fixed;
    assert_eq!(p.delay_before(7), Duration::from_secs(1));
}

#[test]
fn a_trigger_takes_its_policies_and_context_and_its_name_is_unique_in_the_package() {
    let m = Manifest::parse(&with(
        "timezone = \"UTC\"",
        "cron = \"*/10 * * * * *\"\ncatchup = \"all\"\ncatchup_window = \"10m\"\noverlap = \"cancel_other\"\ncontext = { region = \"eu\", n = 3 }",
    ).replacen("cron = \"0 2 * * *\"\n", "", 1))
    .unwrap();
    let t = &m.workflows[0].triggers[0];
    assert_eq!(t.cron.as_str(), "*/10 * * * * *");
    assert_eq!((t.catchup, t.overlap), (crate::trigger::Catchup::All, crate::trigger::Overlap::CancelOther));
    assert_eq!(t.catchup_window, Duration::from_secs(600));
    assert_eq!(serde_json::Value::Object(t.context.clone()), serde_json::json!({"region": "eu", "n": 3}));
    let defaults = &Manifest::parse(EXAMPLE).unwrap().workflows[0].triggers[0];
    assert_eq!(defaults.catchup_window, Duration::from_secs(3600));
    let twice = format!(
        "{EXAMPLE}\n[[workflow]]\nname = \"other\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"true\"]\n[[workflow.trigger]]\nname = \"nightly\"\ncron = \"* * * * *\"\n"
    );
    let err = error_of(&twice);
    assert_eq!(err.field, "workflow[1].trigger[0].name", "{err}");
}

#[test]
fn a_trigger_knows_its_next_fire_time_in_its_zone() {
    use chrono::TimeZone;
    let m = Manifest::parse(&with("timezone = \"UTC\"", "timezone = \"Europe/Paris\"")).unwrap();
    let t = &m.workflows[0].triggers[0];
    let after = t.timezone.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
    let next = t.cron.next_after(&after).unwrap();
    assert_eq!(next, t.timezone.with_ymd_and_hms(2026, 7, 2, 2, 0, 0).unwrap());
}

proptest! {
    #[test]
    fn parsing_never_panics(s in "\\PC{0,400}") {
        let _ = Manifest::parse(&s);
    }

    #[test]
    fn a_mangled_example_is_accepted_or_refused_with_a_field(cut in 0usize..600, junk in "[\\[\\]a-z=\" ,.{}0-9\\n]{0,12}") {
        let base = EXAMPLE;
        let at = base.char_indices().map(|(i, _)| i).nth(cut.min(base.chars().count() - 1)).unwrap_or(0);
        let text = format!("{}{junk}{}", &base[..at], &base[at..]);
        if let Err(e) = Manifest::parse(&text) {
            prop_assert!(!e.field.is_empty() && !e.message.is_empty());
        }
    }
}

#[test]
fn a_task_may_ask_for_limits_and_every_bad_one_is_named() {
    let m = Manifest::parse(&with(
        "env = { LEVEL = \"info\" }",
        "env = { LEVEL = \"info\" }\nlimits = { memory = \"512MiB\", processes = 16, open_files = 64, cpu_time = \"90s\" }",
    ))
    .unwrap();
    let limits = m.workflows[0].tasks[0].limits;
    assert_eq!(limits.memory, Some(512 * 1024 * 1024));
    assert_eq!((limits.processes, limits.open_files), (Some(16), Some(64)));
    assert_eq!(limits.cpu_time, Some(Duration::from_secs(90)));
    assert!(m.workflows[0].tasks[1].limits.is_default());
    for (limits, field) in [
        ("{ memory = \"lots\" }", "workflow[0].task[0].limits.memory"),
        ("{ memory = \"1MiB\" }", "workflow[0].task[0].limits.memory"),
        ("{ processes = 0 }", "workflow[0].task[0].limits.processes"),
        ("{ open_files = 2 }", "workflow[0].task[0].limits.open_files"),
        ("{ cpu_time = \"25h\" }", "workflow[0].task[0].limits.cpu_time"),
        ("{ memroy = \"1GiB\" }", "workflow[0].task[0].limits.memroy"),
    ] {
        let e = error_of(&with("env = { LEVEL = \"info\" }", &format!("limits = {limits}")));
        assert_eq!(e.field, field, "{limits}: {e}");
    }
}

#[test]
fn every_problem_is_reported_in_one_run_in_the_order_found() {
    let text = EXAMPLE
        .replacen("version = \"1.2.0\"", "version = \"one\"", 1)
        .replacen("timeout = \"5m\"", "timeout = \"soon\"", 1)
        .replacen("backoff = \"exponential\"", "backoff = \"sometimes\"", 1)
        .replacen("depends_on = [\"extract\"]", "depends_on = [\"Bad Name\"]", 1)
        .replacen("cron = \"0 2 * * *\"", "cron = \"every night\"", 1);
    let e = error_of(&text);
    let fields: Vec<&str> = e.all().iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "package.version",
            "workflow[0].task[0].backoff",
            "workflow[0].task[0].timeout",
            "workflow[0].task[1].depends_on[0]",
            "workflow[0].trigger[0].cron",
        ],
        "{:#?}",
        e.all()
    );
    assert_eq!(e.field, "package.version", "the first is the one an API answer names");
    // A lone problem has no others.
    assert!(error_of(&with("version = \"1.2.0\"", "version = \"one\"")).others.is_empty());
}

#[test]
fn a_tasks_secrets_are_variables_naming_a_secret_field_each() {
    let m = Manifest::parse(&with(
        "env = { LEVEL = \"info\" }",
        "env = { LEVEL = \"info\" }\nsecrets = { DB_PASSWORD = \"db.password\", API_TOKEN = \"stripe-live.token\" }",
    ))
    .unwrap();
    let task = &m.workflows[0].tasks[0];
    assert_eq!(task.secrets["DB_PASSWORD"].to_string(), "db.password");
    assert_eq!(task.secrets["API_TOKEN"].secret.as_str(), "stripe-live");
    for (secrets, field, says) in [
        (
            "secrets = { \"BAD-NAME\" = \"db.password\" }",
            "workflow[0].task[0].secrets.BAD-NAME",
            "environment variable",
        ),
        ("secrets = { CLOACINA_X = \"db.password\" }", "workflow[0].task[0].secrets.CLOACINA_X", "runner's own"),
        ("secrets = { LEVEL = \"db.password\" }", "workflow[0].task[0].secrets.LEVEL", "set by env too"),
        ("secrets = { DB = \"db\" }", "workflow[0].task[0].secrets.DB", "secret-name.field"),
        ("secrets = { DB = \"Db.password\" }", "workflow[0].task[0].secrets.DB", "not a secret name"),
    ] {
        let e = error_of(&with("env = { LEVEL = \"info\" }", &format!("env = {{ LEVEL = \"info\" }}\n{secrets}")));
        assert_eq!(e.field, field, "{secrets}");
        assert!(e.message.contains(says), "{secrets}: {}", e.message);
    }
}
