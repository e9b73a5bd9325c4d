//! Signed packages through the real binary and CLI: `package keygen` and `package sign`, a
//! tenant admin trusting a key and requiring signatures, then an unsigned, a tampered, an
//! untrusted and a malformed upload each refused with its code, and a signed one accepted; the
//! changes in the audit trail. On SQLite and on PostgreSQL.

use std::path::Path;

use serde_json::Value;

use crate::executions::pack;
use crate::harness::{Server, bootstrap_key, cli, stderr, stdout};

const WORKFLOWS: &str = "[[workflow]]\nname = \"wf\"\n[[workflow.task]]\nid = \"one\"\ncommand = [\"true\"]\n";

fn steps(h: &Path, server: &Server, god: &str, tenant: &str) {
    let as_god = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god), ("CLOACINA_TENANT", tenant)];
    let admin = stdout(&cli(h, &["key", "create", "signing-admin", "--role", "admin", "--tenant", tenant], &as_god));
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", admin.as_str())];
    let run = |args: &[&str]| cli(h, args, &env);
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let keys = h.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let dir = keys.to_str().unwrap();
    let made = ok(&["package", "keygen", "release", "--dir", dir]);
    println!("$ cloacinactl package keygen release\n{made}");
    ok(&["package", "keygen", "rogue", "--dir", dir]);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(keys.join("release.key")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the private key is the owner's alone");
    assert_eq!(run(&["package", "keygen", "release", "--dir", dir]).status.code(), Some(1), "never overwrites");
    ok(&["signer", "add", "release", "--public-key", keys.join("release.pub").to_str().unwrap()]);
    println!("$ cloacinactl signer require on\n{}", ok(&["signer", "require", "on"]));
    let listed: Value = serde_json::from_str(&ok(&["signer", "list", "-o", "json"])).unwrap();
    assert_eq!((listed["total"].as_u64(), listed["require_signatures"].as_bool()), (Some(1), Some(true)), "{listed}");

    let key = |name: &str| keys.join(format!("{name}.key")).to_str().unwrap().to_owned();
    let upload = |file: &Path| run(&["package", "upload", file.to_str().unwrap()]);
    let refused = |file: &Path, code: &str, exit: i32| {
        let out = upload(file);
        println!("{code}: exit {:?}: {}", out.status.code(), stderr(&out).trim());
        assert_eq!(out.status.code(), Some(exit), "{}", stderr(&out));
        assert!(stderr(&out).contains(code), "{}", stderr(&out));
    };
    // Unsigned.
    let unsigned = pack(h, "signed-pkg", "1.0.0", WORKFLOWS, &[("a.sh", "true")]);
    refused(&unsigned, "signature_not_found", 1);
    // Signed, then changed: the same name packed again with other content.
    let changed = pack(h, "signed-pkg", "2.0.0", WORKFLOWS, &[("a.sh", "true")]);
    ok(&["package", "sign", changed.to_str().unwrap(), "--key", &key("release")]);
    let signature = std::fs::read_to_string(format!("{}.sig", changed.display())).unwrap();
    pack(h, "signed-pkg", "2.0.0", WORKFLOWS, &[("a.sh", "echo changed")]);
    std::fs::write(format!("{}.sig", changed.display()), &signature).unwrap();
    refused(&changed, "package_tampered", 1);
    // Signed by a key the tenant does not trust.
    let rogue = pack(h, "signed-pkg", "3.0.0", WORKFLOWS, &[("a.sh", "true")]);
    ok(&["package", "sign", rogue.to_str().unwrap(), "--key", &key("rogue")]);
    refused(&rogue, "untrusted_signer", 4);
    // A signature document that is not one.
    let garbled = pack(h, "signed-pkg", "4.0.0", WORKFLOWS, &[("a.sh", "true")]);
    std::fs::write(format!("{}.sig", garbled.display()), "{\"format\": \"cloacina-signature-v1\"}").unwrap();
    refused(&garbled, "invalid_signature", 1);
    // Signed by the trusted key: accepted.
    let good = pack(h, "signed-pkg", "5.0.0", WORKFLOWS, &[("a.sh", "true")]);
    println!("{}", ok(&["package", "sign", good.to_str().unwrap(), "--key", &key("release")]));
    println!("{}", ok(&["package", "upload", good.to_str().unwrap()]));
    let versions = ok(&["package", "list", "-o", "id"]);
    assert_eq!(versions.trim(), "signed-pkg@5.0.0", "only the signed upload was stored");
    // The signing changes are in the tenant's audit trail.
    let audit: Value = serde_json::from_str(&ok(&["audit", "list", "-o", "json"])).unwrap();
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|r| r["action"].as_str()).collect();
    for a in ["signer.add", "signature_policy.set", "package.upload"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| **a == "package.upload").count(), 1, "refused uploads leave no row");
    ok(&["signer", "require", "off"]);
    ok(&["signer", "remove", "release"]);
    assert!(ok(&["signer", "list"]).contains("no trusted signing keys; signatures not required"));
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_packages_on_sqlite() {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(home.path(), &["--workers", "0"], &[]);
    let god = bootstrap_key(home.path());
    steps(home.path(), &server, &god, "public");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_packages_on_postgres() {
    let db = cloacina_testpg::TestPg::shared().database().await;
    let home = tempfile::tempdir().unwrap();
    let server =
        Server::start(home.path(), &["--database-url", &db.url, "--db-max-connections", "4", "--workers", "0"], &[]);
    let god = bootstrap_key(home.path());
    let env = [("CLOACINA_SERVER", server.url.as_str()), ("CLOACINA_API_KEY", god.as_str())];
    assert!(cli(home.path(), &["tenant", "create", "acme"], &env).status.success());
    steps(home.path(), &server, &god, "acme");
    server.stop();
}
