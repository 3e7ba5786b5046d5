#!/usr/bin/env bash
# Runs the whole test suite with node's test runner on the compiled tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export MALLOC_ARENA_MAX=1
exec node --test --test-concurrency=1 dist/test/*.test.js "$@"
