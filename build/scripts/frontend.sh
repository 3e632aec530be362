#!/usr/bin/env bash
# Builds the frontend into frontend/dist (embedded by main.go): regenerates the typed Wails
# bindings from app/ with the pinned Wails CLI, then runs Vite.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x bin/wails ]; then
  echo "frontend: building the Wails CLI (build/tools)"
  (cd build/tools && go build -o ../../bin/wails github.com/wailsapp/wails/v2/cmd/wails)
fi
bin/wails generate module >/dev/null
(cd frontend && npm run build)
touch frontend/dist/.gitkeep
