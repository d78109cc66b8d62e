#!/usr/bin/env bash
# Installs everything mesad needs on Debian 12 (run as root). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libnghttp2-dev  # the mesa CLI's exec: one gRPC call on a bare HTTP/2 connection (client/cli/h2_call.h)
  libfuse3-dev fuse3 libcurl4-openssl-dev libyaml-cpp-dev libgit2-dev libsqlite3-dev
  nlohmann-json3-dev libcpp-httplib-dev libssl-dev libgtest-dev libgmock-dev
  bubblewrap libsystemd-dev systemd
  ripgrep  # bench/fs_bench (b): rg over the mount vs tmpfs; it falls back to grep -r without it
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Node.js runs the conformance tests with the official SDK; Debian's is recent enough (>= 18).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi
# The official TypeScript SDK, pinned by package-lock.json. `npm install` rather than `npm ci`:
# npm 11 rejects this lock for the SDK's optional per-platform napi packages it cannot resolve,
# while `npm install` honours the lock and skips them.
(cd tests/conformance && npm install --no-audit --no-fund --loglevel=error)
