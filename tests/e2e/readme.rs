//! The README's quick start, run as written: its client block, line by line, in bash, in a
//! fresh home against a server started as the README starts it (only the address is the
//! test's own, since the tests bind port 0).

use crate::harness::{Server, bash, stderr, stdout};

const README: &str = include_str!("../../README.md");

/// The lines of the sh block right after `marker`.
fn block_after(marker: &str) -> Vec<&'static str> {
    let start = README.find(marker).unwrap_or_else(|| panic!("the README has no {marker}"));
    let rest = &README[start..];
    let body = rest.split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).unwrap();
    body.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_quick_start_runs_as_written() {
    assert!(README.contains("cloacinactl serve --bind 127.0.0.1:8080"), "the README starts the server so");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = Server::start(h, &[], &[]);
    let mut transcript = Vec::new();
    for line in block_after("<!-- quick-start:client -->") {
        let command = line.replace("http://127.0.0.1:8080", &server.url);
        let out = bash(h, &command, &[]);
        transcript.push(format!("$ {line}\n{}{}", stdout(&out), stderr(&out)));
        assert!(out.status.success(), "`{line}` failed:\n{}", transcript.join("\n"));
    }
    let transcript = transcript.join("\n");
    println!("{transcript}");
    assert!(transcript.contains("key      me ("), "the everyday key is in force: {transcript}");
    assert!(transcript.contains("Completed"), "{transcript}");
    let key = std::fs::read_to_string(h.join(".cloacina/me.key")).unwrap();
    assert!(key.starts_with("clk_"), "the file holds the key itself");
    assert_eq!(crate::harness::mode(&h.join(".cloacina/me.key")), 0o600);
    let config = std::fs::read_to_string(h.join(".cloacina/config.toml")).unwrap();
    assert!(!config.contains("clk_"), "no raw key in the config: {config}");
    server.stop();
}
