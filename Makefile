# Mail dispatch: `make run` starts the stack, `make test` runs every test.
SHELL := /bin/bash
SWIFT ?= swift

.PHONY: all build release run test unit e2e deps venv bench clean format format-check

all: release

deps:
	@scripts/install-deps.sh

venv: deps
	@scripts/install-deps.sh --test
	@scripts/setup-venv.sh

build: deps
	$(SWIFT) build

# The Swift runtime and Foundation are linked in: the binaries run on a host without Swift,
# and only the pages they use are loaded (about 8 MiB less resident memory each).
release: deps
	$(SWIFT) build -c release --static-swift-stdlib

run: release
	scripts/run.sh

unit: build
	$(SWIFT) test

# The e2e suite drives the debug binaries: same code as release, and CI builds once. It runs
# on both queue stores (MAIL_STORES=file or postgres for one: Tests/e2e/conftest.py, which
# starts and stops a private PostgreSQL server), in E2E_WORKERS pytest-xdist processes (its
# tests mostly wait on the daemons), then the timing-sensitive ones (marked serial) one at a
# time; the second pass runs however the first ended.
E2E_WORKERS ?= 4
e2e: build venv
	@export BIN_DIR=$$($(SWIFT) build --show-bin-path); status=0; \
	(set -x; .venv/bin/pytest -q -n $(E2E_WORKERS) --dist worksteal -m "not serial" Tests/e2e) || status=1; \
	(set -x; .venv/bin/pytest -q -m serial Tests/e2e) || [ $$? -eq 5 ] || status=1; \
	exit $$status

# The committed .swift-format is the style; `make format` applies it, `make test` checks it.
format:
	$(SWIFT) format -i -r Sources Tests bench Package.swift

format-check:
	$(SWIFT) format lint --strict -r Sources Tests bench Package.swift

test: format-check unit e2e

# Benchmarks: release builds (with the benchmark executables, in .build-bench), figures
# beside ceilings measured in the same run.
bench: deps
	bench/run.sh

clean:
	rm -rf .build run .venv
