#!/usr/bin/env bash
# Configures and builds. Usage: scripts/build.sh [--sanitize]   (build dir: build/ or build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [[ "${1:-}" == "--sanitize" ]]; then
  dir=build-asan
  opts=(-DCMAKE_BUILD_TYPE=Debug -DMESA_SANITIZE=ON)
fi
cmake -S . -B "$dir" -G Ninja "${opts[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
