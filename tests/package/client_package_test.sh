#!/usr/bin/env bash
# Installs the build into a temporary prefix, builds examples/client_whoami against it with
# find_package(MesaClient), and runs it against a fresh mesad on the embedded store.
# Usage: client_package_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d /tmp/mesa-pkg.XXXXXX)
mesad_pid=
cleanup() {
  [[ -n $mesad_pid ]] && kill "$mesad_pid" 2>/dev/null && wait "$mesad_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
for f in include/mesa/client.h include/mesa/daemon/v1/api.pb.h lib/cmake/MesaClient/MesaClientConfig.cmake \
         share/mesad/proto/mesa/daemon/v1/api.proto bin/mesad bin/mesa; do
  [[ -e $work/prefix/$f ]] || { echo "not installed: $f"; exit 1; }
done
cmake -S "$src/examples/client_whoami" -B "$work/example" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/example" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }

"$work/prefix/bin/mesad" --socket "$work/mesad.sock" --state-dir "$work/state" --cache-dir "$work/cache" \
  --runtime-dir "$work/run" 2>"$work/mesad.log" &
mesad_pid=$!
for _ in $(seq 200); do [[ -S $work/mesad.sock ]] && break; sleep 0.05; done
out=$("$work/example/client_whoami" "$work/mesad.sock")
echo "$out"
expected_org=$(id -un | tr '[:upper:]' '[:lower:]')
grep -qx "org: $expected_org" <<<"$out" || { echo "expected org $expected_org"; cat "$work/mesad.log"; exit 1; }
grep -qx "scope: admin" <<<"$out" || { echo "expected the admin scope"; exit 1; }
# A socket nobody listens on is a clear error, not a hang.
if "$work/example/client_whoami" "$work/none.sock" 2>"$work/err"; then echo "expected a failure"; exit 1; fi
grep -q "client_whoami: " "$work/err" || { cat "$work/err"; exit 1; }
echo "ok"
