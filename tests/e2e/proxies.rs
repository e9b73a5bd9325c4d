//! The real binary behind the real proxies, each with the shipped configuration file
//! (`deploy/nginx.conf`, `deploy/Caddyfile`) as it is: `/health`, an authenticated request, an
//! upload near the 100 MiB limit, a forged `X-Forwarded-For` that does not become the client
//! address, and a WebSocket under `/v1/ws/` streaming a running execution's events.
//!
//! The shipped files name fixed places (127.0.0.1:8080 and port 443, certificates under
//! /etc/ssl): everything runs in a network and mount namespace of the test's own (a private
//! loopback; /etc/ssl, /etc/hosts and the CA folder overlaid there only), so nothing of the
//! host is touched or in the way. Needs root, as CI runs.

use std::path::Path;
use std::process::Command;

use crate::executions::pack;
use crate::harness::{binary, cli, stderr};

/// The WebSocket client: connects over TLS with the given CA, prints each frame's type and
/// event type, and the close code.
const WS_CLIENT: &str = r#"
import asyncio, json, ssl, sys
from websockets.asyncio.client import connect

async def main(url, key, ca):
    ctx = ssl.create_default_context(cafile=ca)
    async with connect(url, ssl=ctx, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        try:
            async for frame in ws:
                f = json.loads(frame)
                print("frame", f.get("type"), f.get("event_type"), flush=True)
        except Exception as e:
            print("error", e)
        print("closed", ws.close_code)

asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), 60))
"#;

/// What runs inside the namespace: the server, then each proxy in turn, and the checks.
const SCRIPT: &str = r#"
set -eu
W="$WORK"
SERVER=; PROXY=
trap 'kill $SERVER $PROXY 2>/dev/null || true' EXIT
ip link set lo up
ip addr add 192.0.2.1/32 dev lo
for d in /etc/ssl/certs /etc/ssl/private /usr/local/share/ca-certificates; do
  if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi
done
cp "$W/cert.pem" /etc/ssl/certs/cloacina.pem
cp "$W/key.pem" /etc/ssl/private/cloacina.key
printf '127.0.0.1 localhost cloacina.example.com\n::1 localhost\n' > "$W/hosts"
mount --bind "$W/hosts" /etc/hosts

HOME="$W/home" "$BIN" serve --bind 127.0.0.1:8080 --behind-proxy > "$W/server.out" 2> "$W/server.err" &
SERVER=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:8080/health > /dev/null && break; sleep 0.1; done
KEY=$(cat "$W/home/.cloacina/bootstrap-key")

check() { # name base ca version
  name=$1; base=$2; ca=$3; version=$4
  echo "$name health: $(curl -sS --fail --cacert "$ca" "$base/health")"
  echo "$name whoami: $(curl -sS -o /dev/null -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $KEY" "$base/v1/auth/whoami")"
  echo "$name upload: $(curl -sS -o "$W/upload-$name.json" -w '%{http_code}' --cacert "$ca" -H "Authorization: Bearer $KEY" \
    -F "file=@$W/big-$version.cloacina" "$base/v1/tenants/public/workflows") $(stat -c %s "$W/big-$version.cloacina") bytes"
  curl -sS --fail -o /dev/null --interface 192.0.2.1 --cacert "$ca" -H "Authorization: Bearer $KEY" \
    -H 'X-Forwarded-For: 203.0.113.66' -H 'X-Real-IP: 203.0.113.66' -H 'Content-Type: application/json' \
    -d "{\"name\": \"via-$name\"}" "$base/v1/auth/keys"
  echo "$name client: $(curl -sS --cacert "$ca" -H "Authorization: Bearer $KEY" "$base/v1/audit?action=key.create&limit=1" \
    | sed 's/.*"client":"\([^"]*\)".*/\1/')"
  id=$(curl -sS --fail --cacert "$ca" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{}' \
    "$base/v1/tenants/public/workflows/slow/execute" | sed 's/.*"execution_id":"\([^"]*\)".*/\1/')
  wsbase=$(echo "$base" | sed 's/^https/wss/')
  "$PY" "$W/ws.py" "$wsbase/v1/ws/tenants/public/executions/$id?since=0" "$KEY" "$ca" | sed "s/^/$name ws: /"
}

curl -sS --fail -o /dev/null -H "Authorization: Bearer $KEY" -F "file=@$W/slow.cloacina" \
  http://127.0.0.1:8080/v1/tenants/public/workflows

"$NGINX" -c "$W/nginx/main.conf" -g 'daemon off;' 2> "$W/nginx.err" &
PROXY=$!
for _ in $(seq 100); do curl -s --cacert "$W/cert.pem" https://cloacina.example.com/health > /dev/null && break; sleep 0.1; done
check nginx https://cloacina.example.com "$W/cert.pem" 1.0.0
kill $PROXY; wait $PROXY 2>/dev/null || true

XDG_DATA_HOME="$W/caddy-data" XDG_CONFIG_HOME="$W/caddy-config" CLOACINA_DOMAIN=localhost \
  "$CADDY" run --config "$REPO/deploy/Caddyfile" --adapter caddyfile > "$W/caddy.out" 2>&1 &
PROXY=$!
ROOT="$W/caddy-data/caddy/pki/authorities/local/root.crt"
for _ in $(seq 200); do [ -f "$ROOT" ] && curl -s --cacert "$ROOT" https://localhost/health > /dev/null && break; sleep 0.1; done
check caddy https://localhost "$ROOT" 2.0.0
echo done
"#;

fn self_signed(dir: &Path) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=cloacina.example.com"])
        .args(["-addext", "subjectAltName=DNS:cloacina.example.com"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A package of `megabytes` of random bytes, packed by the CLI.
fn big_package(home: &Path, version: &str, megabytes: usize) -> std::path::PathBuf {
    let mut blob = vec![0u8; megabytes * 1024 * 1024];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut blob).unwrap();
    let dir = home.join(format!("src-big-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("blob.bin"), blob).unwrap();
    std::fs::write(
        dir.join("package.toml"),
        format!(
            "[package]\nname = \"big\"\nversion = \"{version}\"\n[[workflow]]\nname = \"big\"\n\
             [[workflow.task]]\nid = \"t\"\ncommand = [\"true\"]\n"
        ),
    )
    .unwrap();
    let file = home.join(format!("big-{version}.cloacina"));
    let out = cli(home, &["package", "pack", dir.to_str().unwrap(), "--file", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    file
}

#[test]
fn nginx_and_caddy_with_the_shipped_files_front_the_server_for_requests_uploads_and_sockets() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test makes a namespace of its own: run it as root"
    );
    let (nginx, caddy, unshare) =
        (cloacina_testpg::tools::nginx(), cloacina_testpg::tools::caddy(), cloacina_testpg::tools::unshare());
    let python = cloacina_testpg::tools::websockets_python();
    let _ = cloacina_testpg::tools::bubblewrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // nginx's workers and the tasks run as nobody: the work folder must be readable.
    Command::new("chmod").args(["0755"]).arg(w).status().unwrap();
    self_signed(w);
    std::fs::write(w.join("ws.py"), WS_CLIENT).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let nginx_dir = w.join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    Command::new("chmod").args(["0777"]).arg(&nginx_dir).status().unwrap();
    // The shipped server block, included in an http block as docs/deploy.md says.
    std::fs::write(
        nginx_dir.join("main.conf"),
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log {d}/access.log;\n  \
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {repo}/deploy/nginx.conf;\n}}\n",
            d = nginx_dir.display(),
            repo = repo.display()
        ),
    )
    .unwrap();
    // Two packages near the upload limit (one through each proxy), and one whose run lasts a
    // few seconds, for the sockets.
    big_package(w, "1.0.0", 96);
    big_package(w, "2.0.0", 96);
    let slow = pack(
        w,
        "slow",
        "1.0.0",
        "[[workflow]]\nname = \"slow\"\n[[workflow.task]]\nid = \"a\"\ncommand = [\"sh\", \"-c\", \"sleep 1\"]\n\
         [[workflow.task]]\nid = \"b\"\ncommand = [\"sh\", \"-c\", \"sleep 1\"]\ndepends_on = [\"a\"]\n",
        &[],
    );
    std::fs::rename(slow, w.join("slow.cloacina")).unwrap();
    let out = Command::new(unshare)
        .args(["--net", "--mount", "--fork", "--", "sh", "-c", SCRIPT])
        .env("WORK", w)
        .env("BIN", binary())
        .env("NGINX", &nginx)
        .env("CADDY", &caddy)
        .env("PY", &python)
        .env("REPO", &repo)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    let logs = ["server.err", "nginx.err", "nginx/error.log", "caddy.out"]
        .iter()
        .map(|f| format!("--- {f}\n{}", std::fs::read_to_string(w.join(f)).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n");
    println!("{said}");
    assert!(out.status.success() && said.contains("\ndone"), "the run stopped:\n{said}\n{err}\n{logs}");
    for proxy in ["nginx", "caddy"] {
        let line = |what: &str| {
            said.lines()
                .find_map(|l| l.strip_prefix(&format!("{proxy} {what}: ")))
                .unwrap_or_else(|| panic!("no {proxy} {what} line:\n{said}"))
                .to_owned()
        };
        assert_eq!(line("health"), r#"{"status":"ok"}"#);
        assert_eq!(line("whoami"), "200");
        assert!(line("upload").starts_with("201 "), "{proxy}: {}", line("upload"));
        assert_eq!(line("client"), "192.0.2.1", "{proxy}: the forged address was not taken");
        let frames: Vec<&str> = said.lines().filter_map(|l| l.strip_prefix(&format!("{proxy} ws: "))).collect();
        assert!(frames.contains(&"frame event execution_succeeded"), "{proxy}: {frames:?}");
        assert!(frames.iter().filter(|f| f.contains("task_succeeded")).count() == 2, "{proxy}: {frames:?}");
        assert_eq!(frames.last(), Some(&"closed 1000"), "{proxy}: {frames:?}");
    }
}
