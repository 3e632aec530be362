#!/usr/bin/env bash
# `make run`: sets up what this machine lacks, builds, starts the demo fleet (two agents,
# Shop and Blog, on SQLite databases in .demo/) and opens the control center with both
# platforms and an example sync registered. Without a display it serves web mode instead
# and prints the URL. Ctrl-C (or closing the window) stops everything it started.
#
# Environment:
#   MOOXSYNC_RUN=desktop|web        force a mode (default: desktop when there is a display)
#   MOOXSYNC_DEMO_DIR=DIR           demo databases, agent state and logs (default .demo)
#   MOOXSYNC_DEMO_SHOP_PORT=7441    ports of the agents on 127.0.0.1
#   MOOXSYNC_DEMO_BLOG_PORT=7442
#   MOOXSYNC_WEB_LISTEN=127.0.0.1:0 web mode's address (port 0: a free one)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

demo_dir=${MOOXSYNC_DEMO_DIR:-$root/.demo}
case $demo_dir in /*) ;; *) demo_dir=$root/$demo_dir ;; esac
shop_port=${MOOXSYNC_DEMO_SHOP_PORT:-7441}
blog_port=${MOOXSYNC_DEMO_BLOG_PORT:-7442}
mode=${MOOXSYNC_RUN:-auto}
web_listen=${MOOXSYNC_WEB_LISTEN:-127.0.0.1:0}

if [ -t 1 ]; then b=$'\033[1m' y=$'\033[1;33m' g=$'\033[1;32m' n=$'\033[0m'; else b='' y='' g='' n=''; fi
say() { printf '%srun:%s %s\n' "$b" "$n" "$*"; }
warn() { printf '%srun: %s%s\n' "$y" "$*" "$n"; }
die() { printf '%srun: %s%s\n' "$y" "$*" "$n" >&2; exit 1; }

case $mode in auto | desktop | web) ;; *) die "MOOXSYNC_RUN=$mode: want desktop or web" ;; esac

# --- what the machine lacks, and the builds -------------------------------------------
build/scripts/deps.sh desktop
say "building the agent, the demo tool and the frontend"
make --no-print-directory -s agent demo frontend

has_display=false
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then has_display=true; fi
if [ "$mode" = auto ]; then
  if $has_display; then
    mode=desktop
  else
    say "no display (\$DISPLAY and \$WAYLAND_DISPLAY are empty): starting the control center in web mode"
    mode=web
  fi
fi
if [ "$mode" = desktop ] && ! $has_display; then
  die "MOOXSYNC_RUN=desktop needs a display (\$DISPLAY or \$WAYLAND_DISPLAY); use MOOXSYNC_RUN=web"
fi

# --- where the tokens live ---------------------------------------------------------------
# The control center keeps tokens in the OS keyring (Secret Service). Without one, the
# desktop app cannot run; web mode then keeps the demo's tokens in a private file, and the
# demo its own catalog next to it, apart from the real one.
catalog_args=()
secrets_args=()
if keyring_err=$(bin/mooxsync-demo keyring 2>&1); then
  say "tokens: the OS keyring (service mooxsync); catalog: the control center's own"
else
  rc=$?
  [ $rc = 3 ] || die "checking the OS keyring failed: $keyring_err"
  warn "no usable OS keyring: $keyring_err"
  if [ "$mode" = desktop ]; then
    warn "the desktop app keeps tokens in the OS keyring only: starting web mode instead"
    mode=web
  fi
  catalog_args=(--catalog "$demo_dir/catalog.db")
  secrets_args=(--secrets-file "$demo_dir/secrets.json")
  warn "opting in to --secrets-file $demo_dir/secrets.json: the demo's tokens are kept there"
  warn "IN CLEAR TEXT (mode 0600), and the demo uses its own catalog $demo_dir/catalog.db."
  warn "Never do this for a real fleet unless the machine has no keyring and you accept the risk."
fi

if [ "$mode" = desktop ]; then
  say "building the desktop app (the first build takes a few minutes)"
  if ! make --no-print-directory -s desktop; then
    warn "the desktop build failed (see above): starting web mode instead"
    mode=web
  fi
fi
if [ "$mode" = web ]; then
  make --no-print-directory -s web
fi

# --- the demo fleet ----------------------------------------------------------------------
mkdir -p "$demo_dir"
chmod 700 "$demo_dir" # the web URL with its session token passes through it
ready=$demo_dir/.ready
rm -f "$ready"
pids=()
cleanup() {
  trap - EXIT INT TERM
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "$ready"
  say "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin/mooxsync-demo up --dir "$demo_dir" --shop-port "$shop_port" --blog-port "$blog_port" \
  --ready-file "$ready" "${catalog_args[@]}" "${secrets_args[@]}" &
demo_pid=$!
pids+=("$demo_pid")
for _ in $(seq 1 600); do
  [ -f "$ready" ] && break
  kill -0 "$demo_pid" 2>/dev/null || { wait "$demo_pid" || true; die "the demo fleet did not start (see above)"; }
  sleep 0.1
done
[ -f "$ready" ] || die "the demo agents did not answer within a minute; logs in $demo_dir/*/agent.log"

log=$demo_dir/control-center.log
cat <<EOF

${g}The demo fleet is up.${n} To sync a table:
  1. ${b}Dashboard -> Sync Platforms${n} (confirm): both agents are enrolled and get their state (ok).
  2. Insert a post into the Shop's database:
       bin/mooxsync-demo sql $demo_dir/shop.db \\
         "INSERT INTO posts (slug, title, body, created_at, updated_at) VALUES ('hello-mooxsync', 'Hello mooxsync', 'My first synced post', datetime('now'), datetime('now'))"
  3. See it on the Blog:
       bin/mooxsync-demo sql $demo_dir/blog.db "SELECT id, slug, title FROM posts"
  Agent logs: $demo_dir/shop/agent.log, $demo_dir/blog/agent.log; control center log: $log
  Ctrl-C stops the agents and the control center.

EOF

if [ "$mode" = desktop ]; then
  say "opening the control center (window title mooxsync)"
  # In the background, so that a signal to this script alone stops everything too: bash
  # runs its traps during `wait`, not while a foreground child runs.
  bin/mooxsync >"$log" 2>&1 &
  app_pid=$!
  pids=("$app_pid" "${pids[@]}")
  rc=0 finished=
  wait -n -p finished "$app_pid" "$demo_pid" || rc=$?
  if [ "$finished" = "$app_pid" ]; then
    if [ $rc != 0 ] && [ $rc != 130 ]; then
      tail -n 20 "$log" >&2
      die "the control center exited with status $rc (log: $log)"
    fi
    exit 0
  fi
  die "the demo fleet stopped (status $rc; agent logs in $demo_dir/*/agent.log)"
fi

url_file=$demo_dir/.web-url
rm -f "$url_file"
bin/mooxsync-web --listen "$web_listen" "${catalog_args[@]}" "${secrets_args[@]}" >"$url_file" 2>"$log" &
web_pid=$!
pids=("$web_pid" "${pids[@]}")
for _ in $(seq 1 100); do
  [ -s "$url_file" ] && break
  kill -0 "$web_pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "web mode did not start (log: $log)"; }
  sleep 0.1
done
[ -s "$url_file" ] || die "web mode printed no URL within 10s (log: $log)"
url=$(head -n 1 "$url_file")
rm -f "$url_file"
echo "${g}Control center (web mode) — open this URL in a browser on this machine:${n}"
echo "  $url"
echo "  (it holds the session token; from another machine: ssh -L PORT:127.0.0.1:PORT this-host)"
echo
# Until Ctrl-C, or until the control center or the demo fleet stops on its own.
rc=0 finished=
wait -n -p finished "$web_pid" "$demo_pid" || rc=$?
[ "$finished" = "$web_pid" ] || die "the demo fleet stopped (status $rc; agent logs in $demo_dir/*/agent.log)"
[ $rc = 0 ] || die "web mode exited with status $rc (log: $log)"
