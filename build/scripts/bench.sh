#!/usr/bin/env bash
# Prints the project's benchmark tables and ratios (make bench). Speed targets live here,
# never in timed assertions inside tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
build/scripts/deps.sh test >/dev/null
build/scripts/services.sh

echo "=== Go micro-benchmarks (signing, apply)"
go test -run '^$' -bench . -benchmem -count 1 ./backend/protocol/ ./backend/apply/ 2>/dev/null | grep -E '^(Benchmark|ok|PASS|FAIL|goos|cpu)' || true
