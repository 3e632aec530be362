#!/usr/bin/env bash
# Installs what this checkout needs on a Debian/Ubuntu machine, for one purpose:
#   deps.sh test     packages and modules that `make test` uses
#   deps.sh desktop  the above plus GTK/WebKit for building and showing the desktop app
# System packages are installed only when running as root; otherwise the missing ones are
# listed with the command to install them. With CI=true anything missing is an error.
set -euo pipefail
cd "$(dirname "$0")/../.."

purpose=${1:-test}
pkgs=(gcc pkg-config make nodejs npm gnome-keyring libsecret-tools dbus-daemon dbus-x11 chromium)
if [ "$purpose" = desktop ]; then
  pkgs+=(libgtk-3-dev libwebkit2gtk-4.0-dev xvfb xauth imagemagick xdotool)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian's package; accept a working node and npm.
if command -v node >/dev/null && command -v npm >/dev/null; then
  keep=()
  for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || keep+=("$p"); done
  missing=("${keep[@]}")
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/mooxsync-apt.log 2>&1 || {
      apt-get update >/tmp/mooxsync-apt.log 2>&1
      apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/mooxsync-apt.log 2>&1 || {
        tail -n 20 /tmp/mooxsync-apt.log; echo "deps: apt-get install failed"; exit 1; }
    }
  else
    echo "deps: missing system packages: ${missing[*]}"
    echo "      install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "${CI:-}" = true ]; then exit 1; fi
  fi
fi

command -v go >/dev/null || { echo "deps: Go is not installed (https://go.dev/dl, 1.26 or newer)"; exit 1; }
go mod download

npm_ci() { # npm ci in a folder unless its node_modules matches its lock file already
  local dir=$1
  [ -f "$dir/package-lock.json" ] || return 0
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.mooxsync-lock"; then
    echo "deps: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.mooxsync-lock"
  fi
}
npm_ci backend/protocol/testdata/interop
npm_ci frontend
