#!/usr/bin/env bash
# Builds the frontend into frontend/dist (embedded by main.go): regenerates the typed Wails
# bindings from app/ with the pinned Wails CLI, then type-checks and bundles with Vite.
# `make frontend` runs it only when a source of the frontend changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -d frontend/node_modules ]; then
  echo "frontend: npm ci"
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! -x bin/wails ] || [ build/tools/go.mod -nt bin/wails ]; then
  echo "frontend: building the Wails CLI (build/tools)"
  (cd build/tools && go build -o ../../bin/wails github.com/wailsapp/wails/v2/cmd/wails)
fi
# `wails generate module` compiles app/ with Wails' bindings tags and writes
# frontend/src/wailsjs (not committed). The frontend calls the same services through
# src/api/services.ts, which also serves web mode; generating the bindings here checks that
# every bound service still binds, and keeps their .d.ts at hand for comparison.
if ! out=$(bin/wails generate module 2>&1); then
  echo "$out"
  echo "frontend: wails generate module failed"
  exit 1
fi
(cd frontend && npm run build)
touch frontend/dist/.gitkeep
