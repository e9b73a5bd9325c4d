//! The shipped deployment files checked by the tools their ecosystems use, on the files
//! themselves (no test copy): `docker-compose config` on both compose files, hadolint on the
//! Dockerfile, `kubernetes-validate --strict` on the Kubernetes manifests; and what they must
//! say: the probes, the non-root, read-only container, the drain, the migration Job.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(tool: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool).args(args).current_dir(dir).output().expect("the tool runs");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} {args:?} failed:\n{said}", tool.display());
    said
}

#[test]
fn both_compose_files_pass_docker_compose_config() {
    let compose = cloacina_testpg::tools::docker_compose();
    let root = repo();
    let stack = run(&compose, &["-f", "deploy/docker-compose.yaml", "config"], &root);
    println!("docker-compose -f deploy/docker-compose.yaml config:\n{stack}");
    for service in ["postgres:", "cloacina:", "caddy:"] {
        assert!(stack.contains(service), "{service} missing");
    }
    assert!(stack.contains("image: postgres:16") && stack.contains("image: caddy:2"), "{stack}");
    assert!(!stack.contains("--database-url"), "the database URL is not on the server's command line");
    let dev = run(&compose, &["-f", ".angreal/docker-compose.yaml", "config"], &root);
    println!("docker-compose -f .angreal/docker-compose.yaml config:\n{dev}");
    for line in
        ["image: postgres:16", "POSTGRES_USER: cloacina", "POSTGRES_PASSWORD: cloacina", "POSTGRES_DB: cloacina"]
    {
        assert!(dev.contains(line), "{line} missing: {dev}");
    }
    assert!(dev.contains("published: 5432") && dev.contains("target: 5432"), "{dev}");
}

#[test]
fn the_dockerfile_passes_hadolint_and_runs_one_non_root_binary_with_a_health_check() {
    let said = run(&cloacina_testpg::tools::hadolint(), &["deploy/Dockerfile"], &repo());
    println!("hadolint deploy/Dockerfile: {} finding(s)", said.lines().count());
    let file = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    assert!(file.matches("\nFROM ").count() + usize::from(file.starts_with("FROM ")) >= 2, "multi-stage");
    assert!(file.contains("USER 10001"), "a non-root user");
    assert!(file.contains("HEALTHCHECK") && file.contains("/health"), "a health check on /health");
}

#[test]
fn the_kubernetes_manifests_validate_strictly_and_carry_probes_limits_and_a_drain() {
    let root = repo();
    let mut files: Vec<String> = std::fs::read_dir(root.join("deploy/k8s"))
        .unwrap()
        .map(|e| format!("deploy/k8s/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    files.sort();
    let mut args = vec!["--strict"];
    args.extend(files.iter().map(String::as_str));
    let said = run(&cloacina_testpg::tools::kubernetes_validate(), &args, &root);
    println!("kubernetes-validate --strict deploy/k8s/*.yaml:\n{said}");
    assert_eq!(said.matches("passed for resource").count(), files.len(), "{said}");
    let all: String = files.iter().map(|f| std::fs::read_to_string(root.join(f)).unwrap()).collect();
    for kind in ["kind: Deployment", "kind: Service", "kind: Secret", "kind: Job", "kind: PodDisruptionBudget"] {
        assert!(all.contains(kind), "{kind} missing");
    }
    let deployment = std::fs::read_to_string(root.join("deploy/k8s/deployment.yaml")).unwrap();
    for needed in [
        "path: /health",
        "path: /ready",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "preStop:",
        "limits:",
        "--no-migrate",
    ] {
        assert!(deployment.contains(needed), "the Deployment lacks {needed}");
    }
    let job = std::fs::read_to_string(root.join("deploy/k8s/migrate-job.yaml")).unwrap();
    assert!(job.contains(r#"args: ["migrate"]"#), "the Job runs cloacinactl migrate");
}
