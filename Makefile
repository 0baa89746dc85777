# pier: `make run` and `make test` work on a fresh Debian 12 machine (as root).
# Every target that needs the machine prepared depends on `setup`, which is
# idempotent and fast once packages are installed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

# Go lives in /usr/local/go on our machines; appended, so a go already on
# PATH wins.
GO_ROOT ?= /usr/local/go
export PATH := $(PATH):$(GO_ROOT)/bin

GO ?= go
# Extra arguments for `pier up`, e.g. make run ARGS="--data-dir /tmp/pier".
ARGS ?=

.PHONY: setup build run test bench e2e clean

## setup: install run/test prerequisites (needs root) and build bin/pier
setup:
	scripts/setup

## build: build bin/pier, and bin/git-remote-pier (a link to it: git's helper for pier:// remotes)
build:
	$(GO) build -o bin/pier ./cmd/pier
	ln -sf pier bin/git-remote-pier

## run: set up, then run a single-node pier in the foreground with the sample app deployed
run: setup
	exec scripts/run $(ARGS)

## test: set up, then vet and run the whole test suite with the race detector
test: setup
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

## bench: run Go benchmarks, the scheduler, host agent, router and deploy benchmarks, then every executable script in bench/
# SETUP_BENCH=1 reaches scripts/setup through the setup prerequisite: it
# also installs the benchmarks' tools (nginx, haproxy, wrk for bench/router).
bench: export SETUP_BENCH = 1
bench: setup
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench/scheduler
	$(GO) run ./bench/host
	$(GO) run ./bench/router
	$(GO) run ./bench/deploy
	$(GO) run ./bench/resources
	$(GO) run ./bench/images
	@for s in bench/*; do \
		[ -f "$$s" ] && [ -x "$$s" ] || continue; \
		echo "== $$s"; "$$s"; \
	done

## e2e: run the end-to-end suite (real containers; needs root)
e2e: setup
	@if [ -d test/e2e ]; then \
		$(GO) test -count=1 ./test/e2e/...; \
	else \
		echo "no e2e tests yet (test/e2e does not exist)"; \
	fi

clean:
	rm -rf bin
