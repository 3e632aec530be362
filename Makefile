# mooxsync — see README.md.
#   make run     set up what this machine lacks, build, start a local demo fleet and the control center
#   make test    every test (CI runs this with CI=true)
#   make bench   benchmark tables and ratios
#   make agent   build bin/mooxsync-agent
#   make desktop build bin/mooxsync (the desktop control center)

SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: run test bench agent desktop frontend deps clean

deps:
	build/scripts/deps.sh desktop

test:
	build/scripts/test.sh

bench: agent
	build/scripts/bench.sh

agent:
	CGO_ENABLED=1 $(GO) build -o bin/mooxsync-agent ./backend/cmd/mooxsync-agent

frontend:
	build/scripts/frontend.sh

desktop: frontend
	CGO_ENABLED=1 $(GO) build -tags desktop,production -o bin/mooxsync .

run: deps agent desktop
	build/scripts/run.sh

clean:
	rm -rf bin
