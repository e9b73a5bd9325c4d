//! API conformance checked by a tool nobody here wrote: schemathesis (PyPI, pinned in the test
//! support) generates requests for every operation of the served `/openapi.json` of the real
//! binary, with a valid god key, and checks that no answer is a server error, every status and
//! content type is documented, every body matches its documented schema, and requests that
//! break the schema are refused. The path parameters are pinned to a tenant, workflow and task
//! that exist (a finished execution of workflow `wired`), so generated requests reach the
//! handlers' real answers, not only their 404s. A fixed seed keeps the run the same from one CI
//! run to the next; the count of operations and requests is printed.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::executions::{execute, finished, pack, upload};
use crate::harness::{Server, bootstrap_key};

/// Generated requests per operation and phase.
const EXAMPLES: &str = "25";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_schema_violation_and_no_server_error() {
    let st = cloacina_testpg::tools::schemathesis();
    let home = tempfile::tempdir().unwrap();
    // A master key, so the secrets routes answer rather than 503.
    let server =
        Server::start(home.path(), &[], &[("CLOACINA_MASTER_KEY", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")]);
    let key = bootstrap_key(home.path());
    let wired = pack(
        home.path(),
        "wired",
        "1.0.0",
        "[[workflow]]\nname = \"wired\"\n[[workflow.task]]\nid = \"first\"\ncommand = [\"true\"]\n",
        &[],
    );
    assert_eq!(upload(&server, "public", &key, &wired).await.0, 201);
    let (_, accepted, _) = execute(&server, "public", &key, "wired", json!({}), None).await;
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&server, "public", &key, &id, Duration::from_secs(60)).await["status"], "Completed");
    // The key reaches schemathesis through its environment, never its arguments.
    let config = home.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        "headers = { Authorization = \"Bearer ${CLOACINA_TEST_KEY}\" }\n\
         [parameters]\ntenant = \"public\"\nname = \"wired\"\ntask = \"first\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    let out = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", server.url))
        .args(["--max-examples", EXAMPLES, "--workers", "1", "--seed", "1", "--checks"])
        .arg(
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,\
             negative_data_rejection",
        )
        .env("CLOACINA_TEST_KEY", &key)
        .env("NO_COLOR", "1")
        .current_dir(home.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found faults:\n{said}");
    let tested = said.lines().find(|l| l.trim_start().starts_with("Tested:")).unwrap_or("Tested: ?").trim();
    let cases = said.lines().find(|l| l.contains(" generated, ")).unwrap_or("? generated").trim();
    assert!(cases.contains("passed") && !cases.contains("fail"), "{said}");
    println!("schemathesis {}: {tested} operations; {cases}", cloacina_testpg::tools::SCHEMATHESIS);
    assert!(!said.contains(&key), "the key never shows in its output");
    // The pinned parameters reached real answers, whose bodies were checked against their schemas.
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    for route in ["/v1/tenants/{tenant}/workflows/{name}", "/v1/tenants/{tenant}/executions"] {
        let ok = format!("cloacina_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"200\"}}");
        assert!(metrics.contains(&ok), "schemathesis never got a 200 from GET {route}");
    }
    server.stop();
}
