//! Starting the real binary and talking to it.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_cloacinactl")
}

/// Environment variables a developer's shell might carry that would change what a test sees.
const SCRUBBED: [&str; 18] = [
    "CLOACINA_MASTER_KEY",
    "CLOACINA_PREVIOUS_MASTER_KEY",
    "CLOACINA_OLD_MASTER_KEY",
    "CLOACINA_NEW_MASTER_KEY",
    "CLOACINA_TASK_DIR",
    "CLOACINA_TASK_USER",
    "CLOACINA_TASK_NETWORK",
    "CLOACINA_ENV",
    "CLOACINA_HOME",
    "CLOACINA_SERVER",
    "CLOACINA_API_KEY",
    "CLOACINA_TENANT",
    "CLOACINA_PROFILE",
    "CLOACINA_BOOTSTRAP_KEY",
    "CLOACINA_REQUEST_TIMEOUT",
    "DATABASE_URL",
    "RUST_LOG",
    "HOME",
];

/// A command for the binary with a clean environment whose `HOME` is `home_root`.
///
/// Servers keep their task folder in `home_root/tasks`: `home_root` is opened to passing
/// through (0711) so that the task user can reach it, as an operator's `--task-dir` must be.
pub fn command(home_root: &Path) -> Command {
    cloacina_testpg::tools::bubblewrap();
    let mut c = Command::new(binary());
    for var in SCRUBBED {
        c.env_remove(var);
    }
    if let Ok(meta) = std::fs::metadata(home_root)
        && meta.permissions().mode() & 0o711 != 0o711
    {
        let _ = std::fs::set_permissions(home_root, std::fs::Permissions::from_mode(0o711));
    }
    c.env("HOME", home_root);
    c.env("CLOACINA_TASK_DIR", home_root.join("tasks"));
    c
}

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Everything the server wrote to stderr goes here.
    pub stderr_file: PathBuf,
    /// The banner and anything after it on stdout.
    pub stdout_lines: Vec<String>,
}

impl Server {
    /// Starts `cloacinactl serve --bind 127.0.0.1:0 EXTRA…` with `HOME=home_root`, and waits
    /// for the banner.
    pub fn start(home_root: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = command(home_root);
        cmd.args(["serve", "--bind", "127.0.0.1:0"]).args(extra);
        Self::spawn(cmd, home_root, env)
    }

    /// Starts a prepared command (whose arguments include the bind address).
    pub fn spawn(mut cmd: Command, home_root: &Path, env: &[(&str, &str)]) -> Server {
        for (k, v) in env {
            cmd.env(k, v);
        }
        let stderr_file =
            home_root.join(format!("server-{}.stderr", std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()));
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&stderr_file).unwrap());
        let mut child = cmd.spawn().expect("the cloacinactl binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout_lines = Vec::new();
        let url = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    stdout_lines.push(line.clone());
                    if let Some(addr) = line.strip_prefix("API server is running on ") {
                        break addr.trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let err = std::fs::read_to_string(&stderr_file).unwrap_or_default();
                    panic!("server printed no banner; stdout: {stdout_lines:?}; stderr: {err}");
                }
            }
        };
        // The endpoint list follows the banner line.
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            stdout_lines.push(line);
            if stdout_lines.len() > 20 {
                break;
            }
        }
        Server { child, url, stderr_file, stdout_lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit.
    pub fn wait(mut self) -> ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("server did not exit within 30 s");
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(self) {
        self.signal("TERM");
        let status = self.wait();
        assert!(status.success(), "server exited with {status}");
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// A request; the answer's status and JSON body (Null when not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("server answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, key, None).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI; returns its output.
pub fn cli(home_root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(home_root);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// stdout of a CLI run, trimmed.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// The file's mode bits.
#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The bootstrap key under `$HOME/.cloacina`.
pub fn bootstrap_key(home_root: &Path) -> String {
    std::fs::read_to_string(home_root.join(".cloacina/bootstrap-key")).unwrap().trim().to_owned()
}

/// Runs a shell script the way an operator types it: `HOME` is `home_root` (and the working
/// folder), `cloacinactl` is on `PATH`, and `$URL` is the server's address. Fails naming the tool when one is missing.
pub fn shell(home_root: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    run_shell("sh", home_root, script, env)
}

/// As [`shell`], in bash (for `PIPESTATUS`).
pub fn bash(home_root: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    run_shell("bash", home_root, script, env)
}

fn run_shell(program: &str, home_root: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    for tool in ["curl", "jq", "sqlite3", "psql"].into_iter().filter(|t| script.contains(t)) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "`{tool}` is needed by the seed guides' commands: install it (Debian: apt-get install -y {})",
            if tool == "psql" { "postgresql-client" } else { tool }
        );
    }
    let bin_dir = Path::new(binary()).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut sh = Command::new(program);
    for var in SCRUBBED {
        sh.env_remove(var);
    }
    sh.env("HOME", home_root).env("PATH", path).envs(env.iter().copied()).args(["-c", script]).current_dir(home_root);
    sh.output().unwrap()
}
