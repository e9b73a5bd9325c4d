#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after another, starting from the
# seed corpus in fuzz/corpus/<target>/ (new inputs found go to a scratch copy, so the
# repository's corpus stays the curated seeds). Prints each target's executions and whether it
# found a crash; a crash input lands in fuzz/artifacts/<target>/ (keep it, with its fix, in
# fuzz/regressions/<target>/, which the test suite replays). Needs the nightly toolchain and
# cargo-fuzz (installed here if missing). All targets are built first, so editing the source
# while they run changes nothing.
#   fuzz/run.sh [SECONDS] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest archive key json_bodies)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
cargo +nightly fuzz build >/dev/null
bin=target/x86_64-unknown-linux-gnu/release
status=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp -r "corpus/$t/." "$work/"
  mkdir -p "artifacts/$t"
  log=$(mktemp)
  if "$bin/$t" "$work" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
    result=ok
  else
    result=FOUND; status=1
  fi
  runs=$( (grep -oE '#[0-9]+' "$log" || true) | tail -1 | tr -d '#')
  echo "$t: ${runs:-0} executions in ${seconds}s, $(find "$work" -type f | wc -l) corpus inputs: $result"
  [ "$result" = ok ] || tail -40 "$log"
  rm -rf "$work" "$log"
done
exit $status
