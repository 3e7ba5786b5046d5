#!/usr/bin/env bash
# Lint (Biome) and the whole test suite with node's test runner on the compiled tests.
set -euo pipefail
cd "$(dirname "$0")/.."
npx --no-install biome ci --reporter=summary src test bench bin >&2
export MALLOC_ARENA_MAX=1
exec node --test --test-concurrency=1 dist/test/*.test.js "$@"
