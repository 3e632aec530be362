#!/usr/bin/env bash
# Runs every test of the project: Go (vet, unit, integration against real databases and
# agent processes, fuzz seed corpora), the real-keyring tests in a private D-Bus session,
# and the frontend's tests. Used by `make test` and by .ci/run (with CI=true).
set -euo pipefail
cd "$(dirname "$0")/../.."

window_test=0
if [ "${CI:-}" = true ] || [ "${MOOXSYNC_WINDOW_TEST:-}" = 1 ]; then window_test=1; fi
# The window test builds the desktop app, which needs GTK and WebKit as well.
if [ $window_test = 1 ]; then build/scripts/deps.sh desktop; else build/scripts/deps.sh test; fi
build/scripts/services.sh

status=0
step() { echo; echo "=== $*"; }

step "go vet"
go vet ./... || status=1

step "go test"
go test -race -count=1 -timeout 25m ./... || status=1

step "go test -tags keyring (real gnome-keyring in a private D-Bus session)"
keyring_home=$(mktemp -d)
GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE) GOPATH=$(go env GOPATH) HOME=$keyring_home dbus-run-session -- sh -c \
  'echo -n mooxsync-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null && go test -count=1 -tags keyring ./backend/secrets/...' || status=1
rm -rf "$keyring_home"

if [ -f frontend/package.json ]; then
  step "frontend tests"
  (cd frontend && npm test) || status=1
  step "browser end-to-end tests (web mode, real agents, chromium)"
  (cd frontend && npm run test:e2e) || status=1
fi

if [ $window_test = 1 ]; then
  step "desktop window test (Xvfb; builds the desktop app)"
  build/scripts/window-test.sh || status=1
fi

exit $status
