#!/usr/bin/env bash
# Prints the project's benchmark tables and ratios (make bench). Speed targets live here,
# never in timed assertions inside tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
build/scripts/deps.sh test >/dev/null
build/scripts/services.sh

gobench() { # package regexp [benchtime]
  go test -run '^$' -bench "$2" -benchtime "${3:-1x}" -benchmem -count 1 "$1" 2>&1 |
    grep -E '^(Benchmark|FAIL|panic)' || true
}

echo "=== Micro-benchmarks"
gobench ./backend/protocol/ . 1s
gobench ./backend/deliver/ 'BenchmarkEncodeBatch1000' 1s
gobench ./backend/apply/ . 3x
gobench ./backend/sqldb/ . 3x
gobench ./backend/deliver/ 'BenchmarkPipelineSQLite' 1x

echo
echo "=== Sync Platforms to 200 agents in one process on loopback (target: under 3 s)"
gobench ./backend/fleet/ 'BenchmarkSyncPlatforms200' 3x

echo
echo "=== Reconcile a 1,000,000-row table with 0.1% drift on the target (targets: under 30 s, under 2% of a full copy's bytes)"
gobench ./backend/reconcile/ BenchmarkReconcile1M 1x

echo
echo "=== End to end: source and target agents as processes on loopback, SQLite at both ends, 200000 rows"
echo "    (targets: e2e/raw >= 0.5, e2e/legacy >= 10, latency p99 <= 250 ms, agent peak RSS <= 100 MB;"
echo "    a miss is reported, not failed; the last line is the JSON summary)"
# make bench builds the agent first; build it here too when the script runs on its own.
CGO_ENABLED=1 go build -o bin/mooxsync-agent ./backend/cmd/mooxsync-agent
go run ./backend/cmd/mooxsync-bench --agent bin/mooxsync-agent
