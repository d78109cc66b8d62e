#!/usr/bin/env bash
# The main job on the embedded default: installs, builds, starts mesad on a fresh state dir
# (no account: its embedded mesa-server store), creates a demo repo with a change through the
# `mesa` CLI, mounts it with FUSE, lists and reads it through the kernel, runs a command inside
# the mount in the sandbox, writes a file through the mount and shows the change it became.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${MESA_SKIP_DEPS:-0}" == 1 ]] || scripts/install-deps.sh
scripts/build.sh
mesad=$PWD/build/daemon/mesad
mesa=$PWD/build/client/mesa
work=$(mktemp -d /tmp/mesa-demo.XXXXXX)
export MESA_SOCKET=$work/mesad.sock
"$mesad" --socket "$MESA_SOCKET" --state-dir "$work/state" --cache-dir "$work/cache" --runtime-dir "$work/run" \
  2>"$work/mesad.log" &
daemon=$!
cleanup() {
  kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null  # SIGTERM: flush, unmount, exit 0
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 200); do "$mesa" status >/dev/null 2>&1 && break; sleep 0.05; done

step() { printf '\n== %s\n' "$*"; }
step "mesad"; "$mesa" status
step "whoami (an org of your own on the embedded store)"; "$mesa" whoami
step "create repo demo-repo"; "$mesa" repos create demo-repo
printf '# demo-repo\n' >"$work/README.md"
printf '#!/bin/sh\necho "hello from mesa, running as $(id -un) in $(pwd)"\n' >"$work/hello"
change=$("$mesa" changes create demo-repo --base zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz -m "Add a greeting" \
  --file "README.md=$work/README.md" --exec-file "bin/hello=$work/hello" --json | sed -nE 's/^  "id": "([k-z]{32})".*/\1/p')
echo "change $change"
"$mesa" bookmarks move demo-repo main "$change"

step "mount demo-repo"
mount_out=$("$mesa" mount demo-repo)
echo "$mount_out"
mount_id=$(sed -nE '1s/^mounted (mnt_[A-Za-z0-9]+) at .*/\1/p' <<<"$mount_out")
mount_path=$(sed -nE '1s/^mounted mnt_[A-Za-z0-9]+ at (.*)/\1/p' <<<"$mount_out")
step "ls -lR $mount_path (through the kernel)"; ls -lR "$mount_path"
step "cat README.md"; cat "$mount_path/demo-repo/README.md"
step "mesa exec $mount_id --cwd /demo-repo -- ./bin/hello (bubblewrap sandbox)"
"$mesa" exec "$mount_id" --cwd /demo-repo -- ./bin/hello
step "write a file through the mount and flush"
echo "written through FUSE" >"$mount_path/demo-repo/NOTES.txt"
"$mesa" fs flush "$mount_id" demo-repo
"$mesa" fs changes current "$mount_id" demo-repo
working=$("$mesa" fs changes current "$mount_id" demo-repo --json | sed -nE 's/.*"change_id": "([k-z]{32})".*/\1/p')
step "the working change on the server (main did not move)"
"$mesa" diff demo-repo "$change" "$working"
"$mesa" unmount "$mount_id"
