//! `cloacinactl trigger list|inspect|pause|resume|fire` and `workflow inspect`'s triggers,
//! in every output format, against a real server.

use serde_json::Value;

use crate::executions::{pack, upload};
use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn triggers_through_the_cli_in_every_output_format() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--workers", "0"], &[]);
    let god = bootstrap_key(home.path());
    let h = home.path();
    let workflows = r#"
[[workflow]]
name = "report"
[[workflow.task]]
id = "one"
command = ["true"]
[[workflow.trigger]]
name = "nightly"
cron = "0 30 2 * * *"
timezone = "Europe/Berlin"
catchup = "all"
context = { region = "eu" }
"#;
    let file = pack(h, "reports", "1.0.0", workflows, &[]);
    assert_eq!(upload(&server, "public", &god, &file).await.0, 201);
    let env =
        [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str()), ("CLOACINA_TENANT", "public")];
    let run = |args: &[&str]| cli(h, args, &env);

    let table = ok(run(&["trigger", "list"]));
    assert!(table.starts_with("NAME ") && table.contains("nightly") && table.contains("0 30 2 * * *"), "{table}");
    assert!(table.contains("Europe/Berlin") && table.ends_with("1 of 1 shown"), "{table}");
    let listed = json(&run(&["trigger", "list", "-o", "json"]));
    assert_eq!(listed["items"][0]["workflow_name"], "report");
    assert_eq!(listed["total"], 1);
    assert!(ok(run(&["trigger", "list", "-o", "yaml"])).contains("name: nightly"));
    assert_eq!(ok(run(&["trigger", "list", "-o", "id"])), "nightly");

    let shown = ok(run(&["trigger", "inspect", "nightly"]));
    assert!(
        shown.contains("catchup all") && shown.contains("overlap skip") && shown.contains("recent     none"),
        "{shown}"
    );
    let inspected = json(&run(&["trigger", "inspect", "nightly", "-o", "json"]));
    let next = inspected["next_fire_times"].as_array().unwrap();
    assert_eq!(next.len(), 5, "{inspected}");
    // 02:30 in Berlin is 00:30 or 01:30 UTC, whatever the season.
    assert!(
        next.iter().all(|t| t.as_str().unwrap().contains("T00:30:00") || t.as_str().unwrap().contains("T01:30:00")),
        "{next:?}"
    );
    assert!(ok(run(&["trigger", "inspect", "nightly", "-o", "yaml"])).contains("next_fire_times:"));
    assert_eq!(ok(run(&["trigger", "inspect", "nightly", "-o", "id"])), "nightly");
    let out = run(&["trigger", "inspect", "nope"]);
    assert_eq!(out.status.code(), Some(3), "not found: {}", stderr(&out));
    assert!(stderr(&out).contains("trigger_not_found"), "{}", stderr(&out));

    assert_eq!(ok(run(&["trigger", "pause", "nightly"])), "trigger 'nightly' is paused");
    let paused = json(&run(&["trigger", "pause", "nightly", "-o", "json"]));
    assert_eq!((paused["paused"].clone(), paused["next_run_at"].clone()), (Value::Bool(true), Value::Null));
    let shown = ok(run(&["workflow", "inspect", "report"]));
    assert!(shown.contains("nightly (0 30 2 * * *, Europe/Berlin): paused"), "{shown}");
    let resumed = ok(run(&["trigger", "resume", "nightly"]));
    assert!(resumed.starts_with("trigger 'nightly' is resumed; next fire 20"), "{resumed}");
    assert_eq!(ok(run(&["trigger", "resume", "nightly", "-o", "id"])), "nightly");

    let shown = ok(run(&["workflow", "inspect", "report"]));
    let next_run = listed["items"][0]["next_run_at"].as_str().unwrap();
    assert!(shown.contains(&format!("nightly (0 30 2 * * *, Europe/Berlin): next {next_run}")), "{shown}");
    let w = json(&run(&["workflow", "inspect", "report", "-o", "json"]));
    assert_eq!(w["triggers"][0]["name"], "nightly", "{w}");
    assert_eq!(w["triggers"][0]["next_run_at"], next_run, "{w}");

    // Fired by hand, with the event merged over the trigger's context, inline and from a file.
    let id = ok(run(&["trigger", "fire", "nightly", "--event", r#"{"day":"monday"}"#, "-o", "id"]));
    let e = json(&run(&["execution", "status", &id, "-o", "json"]));
    assert_eq!(e["origin"], "trigger:nightly:manual", "{e}");
    assert_eq!((e["context"]["region"].clone(), e["context"]["day"].clone()), ("eu".into(), "monday".into()), "{e}");
    let event = h.join("event.json");
    std::fs::write(&event, r#"{"region":"us"}"#).unwrap();
    let fired = ok(run(&["trigger", "fire", "nightly", "--event", &format!("@{}", event.display())]));
    assert!(fired.starts_with("trigger 'nightly' fired: execution "), "{fired}");
    let second = fired.rsplit(' ').next().unwrap();
    let e = json(&run(&["execution", "status", second, "-o", "json"]));
    assert_eq!(e["context"]["region"], "us", "the event wins a clash: {e}");
    let fired = ok(run(&["trigger", "fire", "nightly", "-o", "yaml"]));
    assert!(fired.contains("fired: true") && fired.contains("workflow_name: report"), "{fired}");
    for bad in ["[1]", "not json"] {
        let out = run(&["trigger", "fire", "nightly", "--event", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--event"), "the flag is named: {}", stderr(&out));
    }
    let out = run(&["trigger", "fire", "nightly", "--event", "@/nonexistent/event.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--event") && stderr(&out).contains("/nonexistent/event.json"), "{}", stderr(&out));

    let listed = json(&run(&["execution", "list", "--trigger", "nightly", "-o", "json"]));
    assert_eq!(listed["total"], 3, "{listed}");

    // A read key reads triggers but cannot fire them.
    let reader = ok(cli(h, &["key", "create", "reader", "--role", "read", "--tenant", "public"], &env));
    let as_reader = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", reader.as_str())];
    assert_eq!(ok(cli(h, &["trigger", "list", "-o", "id"], &as_reader)), "nightly");
    let out = cli(h, &["trigger", "fire", "nightly"], &as_reader);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    server.stop();
}
