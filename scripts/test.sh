#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test suite through ctest.
# Usage: scripts/test.sh [--sanitize]   (--sanitize: ASan+UBSan build, unit/http/integration suites)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${MESA_SKIP_DEPS:-0}" == 1 ]] || scripts/install-deps.sh
if [[ "${1:-}" == "--sanitize" ]]; then
  scripts/build.sh --sanitize
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --test-dir build-asan --output-on-failure -L 'unit|http|integration' -j 2
else
  scripts/build.sh
  ctest --test-dir build --output-on-failure -j 2
fi
