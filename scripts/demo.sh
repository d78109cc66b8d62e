#!/usr/bin/env bash
# The main job on the embedded default: installs, builds, starts mesa-server on a fresh
# local store, creates a demo repo with a change, and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${MESA_SKIP_DEPS:-0}" == 1 ]] || scripts/install-deps.sh
scripts/build.sh
bin=build/server/mesa-server
data=$(mktemp -d /tmp/mesa-demo.XXXXXX)
sock="$data/api.sock"
key=$("$bin" init --data "$data/store" --org demo | tail -n 1)
"$bin" serve --data "$data/store" --listen "unix:$sock" --access-log "$data/access.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do [[ -S "$sock" ]] && break; sleep 0.05; done

api() { curl -sS --fail-with-body --unix-socket "$sock" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@"; }
b64() { printf '%s' "$1" | base64 -w0; }
echo "== whoami"; api http://mesa/v1/whoami; echo
echo "== create repo demo-repo"; api -X POST http://mesa/v1/demo/repos -d '{"name":"demo-repo"}'; echo
change=$(api -X POST http://mesa/v1/demo/demo-repo/changes -d "{
  \"base_change_id\": \"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\", \"message\": \"Add a greeting\",
  \"author\": {\"name\": \"Demo\", \"email\": \"demo@example.com\"},
  \"files\": [{\"path\": \"README.md\", \"content\": \"$(b64 $'# demo-repo\n')\"},
              {\"path\": \"bin/hello\", \"content\": \"$(b64 $'#!/bin/sh\necho hello from mesa\n')\", \"mode\": \"100755\"}]}")
echo "== change"; echo "$change"
id=$(sed -E 's/.*"id":"([k-z]{32})".*/\1/' <<<"$change")
echo "== move main to it"; api -X PATCH http://mesa/v1/demo/demo-repo/bookmarks/main -d "{\"change_id\":\"$id\"}"; echo
echo "== tree at main"; api "http://mesa/v1/demo/demo-repo/content?depth=2"; echo
echo "== bin/hello"; api -H 'Accept: application/octet-stream' "http://mesa/v1/demo/demo-repo/content?path=bin/hello"
echo "== diff from the root"; api -H 'Accept: text/plain' "http://mesa/v1/demo/demo-repo/diff?base_change_id=zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz&head_change_id=$id"
