#!/usr/bin/env bash
# The desktop app's window test: builds bin/mooxsync (desktop,production), starts the demo
# fleet (two agents) registered in a temporary catalog with its tokens in a private,
# unlocked gnome-keyring, and runs the app under Xvfb with a temporary HOME. It then
#   - finds the window by its title and checks a screenshot is not blank;
#   - clicks Sync Platforms and its confirmation with xdotool and checks that both agents
#     got enrolled (the click went through the webview to Go and on to the agents);
#   - clicks the Platforms nav item and checks the page changed;
#   - sends SIGTERM and checks the app exits 0.
# Screenshots and logs are kept in $MOOXSYNC_WINDOW_ARTIFACTS, default build/artifacts/window
# (emptied first).
# Run by `make test` when CI=true or MOOXSYNC_WINDOW_TEST=1; a cold desktop build takes
# about three minutes.
set -euo pipefail

if [ "${1:-}" = --inner ]; then
  # Inside dbus-run-session and xvfb-run: $root and $art come from the environment.
  cd "$art"
  fail() { echo "window-test: FAIL: $*" >&2; exit 1; }
  shoot() { import -window root "$art/$1.png"; }
  colours() { convert "$art/$1.png" -format '%k' info:; }
  differ() { # pixels that differ (compare may print 1.2e+06, and exits 1 when they differ)
    { compare -metric AE -fuzz 3% "$art/$1.png" "$art/$2.png" null: 2>&1 || true; } | awk '{ printf "%d\n", $1 }'
  }
  click() { # x y, relative to the window
    xdotool mousemove --window "$wid" "$1" "$2" sleep 0.2 mousedown 1 sleep 0.1 mouseup 1
  }
  enrolled() { curl -fsS --max-time 2 "http://127.0.0.1:$1/api/health" | grep -q '"enrolled":true'; }

  echo -n mooxsync-window-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null

  rm -f "$art/ready"
  "$root/bin/mooxsync-demo" up --dir "$art/demo" --shop-port "$shop_port" --blog-port "$blog_port" \
    --ready-file "$art/ready" >"$art/demo.log" 2>&1 &
  demo_pid=$!
  app_pid=
  trap 'kill -TERM $app_pid $demo_pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
  for _ in $(seq 1 300); do
    [ -f "$art/ready" ] && break
    kill -0 "$demo_pid" 2>/dev/null || { cat "$art/demo.log" >&2; fail "the demo fleet did not start"; }
    sleep 0.1
  done
  [ -f "$art/ready" ] || fail "the demo agents did not answer in 30 s"

  "$root/bin/mooxsync" >"$art/app.log" 2>&1 &
  app_pid=$!
  wid=
  for _ in $(seq 1 120); do
    wid=$(xdotool search --onlyvisible --name '^mooxsync$' 2>/dev/null | head -n 1 || true)
    [ -n "$wid" ] && break
    kill -0 "$app_pid" 2>/dev/null || { tail -n 30 "$art/app.log" >&2; fail "the app exited before showing its window"; }
    sleep 0.5
  done
  [ -n "$wid" ] || fail "no visible window titled mooxsync within 60 s"
  echo "window-test: window $wid: $(xdotool getwindowgeometry "$wid" | tr -s ' \n' ' ')"

  # Not blank: the webview has painted the dashboard (a blank window has one colour).
  n=0
  for _ in $(seq 1 60); do
    shoot 1-dashboard
    n=$(colours 1-dashboard)
    [ "$n" -ge 64 ] && break
    sleep 0.5
  done
  [ "$n" -ge 64 ] || fail "the window stays blank ($n colours; see $art/1-dashboard.png)"
  sleep 1 # the first poll of the agents
  shoot 1-dashboard
  echo "window-test: dashboard painted ($(colours 1-dashboard) colours)"

  # Sync Platforms (top right of the dashboard), then its confirmation (the dialog's
  # primary button, centred in the 1280x800 window).
  click 1185 33
  sleep 1
  shoot 2-confirm
  [ "$(differ 1-dashboard 2-confirm)" -gt 10000 ] || fail "the Sync Platforms click opened no dialog (see $art/2-confirm.png)"
  click 772 444
  ok=false
  for _ in $(seq 1 100); do
    if enrolled "$shop_port" && enrolled "$blog_port"; then ok=true; break; fi
    sleep 0.2
  done
  sleep 1
  shoot 3-synced
  $ok || fail "the agents were not enrolled after Sync Platforms was confirmed (see $art/3-synced.png, $art/app.log)"
  echo "window-test: Sync Platforms reached Go: both agents enrolled"

  # Navigation: Platforms.
  click 74 126
  sleep 1
  shoot 4-platforms
  d=$(differ 3-synced 4-platforms)
  [ "$d" -gt 10000 ] || fail "the Platforms click changed $d pixels only (see $art/4-platforms.png)"
  echo "window-test: the Platforms page replaced the dashboard ($d pixels changed)"

  kill -TERM "$app_pid"
  rc=0
  wait "$app_pid" || rc=$?
  app_pid=
  [ "$rc" = 0 ] || fail "the app exited with status $rc on SIGTERM (see $art/app.log)"
  echo "window-test: the app exited 0 on SIGTERM"
  exit 0
fi

cd "$(dirname "$0")/../.."
root=$PWD
build/scripts/deps.sh desktop
for tool in xvfb-run xdotool import convert compare dbus-run-session gnome-keyring-daemon curl; do
  command -v "$tool" >/dev/null || { echo "window-test: $tool is missing (build/scripts/deps.sh desktop installs it)"; exit 1; }
done

start=$(date +%s)
make --no-print-directory -s desktop agent demo
echo "window-test: built in $(($(date +%s) - start)) s"

if [ -n "${MOOXSYNC_WINDOW_ARTIFACTS:-}" ]; then
  art=$MOOXSYNC_WINDOW_ARTIFACTS
else
  art=$root/build/artifacts/window
  rm -rf "$art" # only the default directory is emptied, never one a caller named
fi
mkdir -p "$art"
home=$(mktemp -d /tmp/mooxsync-window-home-XXXXXX)
trap 'rm -rf "$home"' EXIT
# Ports for the demo agents, away from make run's.
shop_port=$((20000 + RANDOM % 20000))
blog_port=$((shop_port + 1))

status=0
env -u XDG_CONFIG_HOME -u XDG_DATA_HOME -u XDG_RUNTIME_DIR -u WAYLAND_DISPLAY -u DISPLAY -u DBUS_SESSION_BUS_ADDRESS \
  HOME="$home" root="$root" art="$art" shop_port="$shop_port" blog_port="$blog_port" \
  dbus-run-session -- xvfb-run -a -s '-screen 0 1280x800x24' "$root/build/scripts/window-test.sh" --inner || status=$?
echo "window-test: screenshots and logs in $art"
exit $status
