# mooxsync — see README.md.
#   make run     set up what this machine lacks, build, start a local demo fleet and the control center
#   make test    every test (CI runs this with CI=true)
#   make bench   benchmark tables and ratios
#   make agent   build bin/mooxsync-agent
#   make desktop build bin/mooxsync (the desktop control center)
#   make web     build bin/mooxsync-web (the control center in web mode, for a browser)
#   make frontend build frontend/dist when its sources changed
#   make demo    build bin/mooxsync-demo (the demo fleet of make run)

SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: run test bench agent desktop web demo frontend deps clean

# The frontend is rebuilt only when one of its sources is newer than frontend/dist.
FRONTEND_SRC := $(shell find frontend/src frontend/index.html frontend/vite.config.ts frontend/tsconfig.json \
	frontend/package.json frontend/package-lock.json -type f -not -path 'frontend/src/wailsjs/*' 2>/dev/null)

deps:
	build/scripts/deps.sh desktop

test:
	build/scripts/test.sh

bench: agent
	build/scripts/bench.sh

agent:
	CGO_ENABLED=1 $(GO) build -o bin/mooxsync-agent ./backend/cmd/mooxsync-agent

frontend: frontend/dist/index.html

frontend/dist/index.html: $(FRONTEND_SRC)
	build/scripts/frontend.sh

desktop: frontend
	CGO_ENABLED=1 $(GO) build -tags desktop,production -o bin/mooxsync .

web: frontend
	CGO_ENABLED=1 $(GO) build -tags web -o bin/mooxsync-web .

demo:
	CGO_ENABLED=1 $(GO) build -o bin/mooxsync-demo ./backend/cmd/mooxsync-demo

# run.sh installs what is missing, builds what it needs (the desktop app only when there
# is a display) and starts the demo fleet and the control center.
run:
	build/scripts/run.sh

clean:
	rm -rf bin
