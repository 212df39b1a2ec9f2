# corral — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: test test-deps lint check demo bench help images system-test soak

help:
	@echo "make demo   the whole pipeline in one process with a simulated fleet (release build, Ctrl-C stops)"
	@echo "make test   install the test broker if missing, check format and lints, run every test"
	@echo "make check  the fast loop while iterating: format, lints, unit tests only (no broker, no binaries)"
	@echo "make lint   cargo fmt --check, cargo clippy -D warnings, cargo doc -D warnings"
	@echo "make bench  benchmarks with same-run baselines (release build): collector, indexer, logq"
	@echo "make images        the corral-collector, corral-indexer and logq images (Docker; bases made here)"
	@echo "make system-test   the whole pipeline in containers under faults (builds the images first)"
	@echo "make soak          SOAK_MIB_S (20) MiB/s through the containers for SOAK_MINUTES (30): RSS and freshness"

## Every check CI runs: tools, format, lints, all tests (unit, integration, end-to-end).
test: test-deps lint
	@mkdir -p target
	@status=0; $(CARGO) test --workspace --no-fail-fast 2>&1 | tee target/test-output.log || status=$$?; \
	  scripts/test-summary.sh target/test-output.log; exit $$status

## Installs what the tests need and are missing: system libraries, the tansu broker.
test-deps:
	@scripts/install-test-deps.sh

## The whole pipeline in one process: a simulated shop writes logs, collector and indexer read them,
## the API serves them on 127.0.0.1:7280. Prints a ready-to-paste query; Ctrl-C stops.
demo:
	$(CARGO) build --release --bin logq
	$(CARGO) run --release --bin corral-indexer -- standalone --demo

## Benchmarks (release build; figures next to baselines measured in the same run).
## The collector, indexer and object-storage benches start a tansu broker (and object_storage an
## s3s-fs server; test-deps installs both when missing); the indexer and object-storage benches also
## run the release `corral-indexer` binary, which cargo builds for them.
bench: test-deps
	$(CARGO) bench -p corral-collector --bench collector
	$(CARGO) bench -p corral-indexer --bench indexer
	$(CARGO) bench -p corral-indexer --bench wide_search
	$(CARGO) bench -p corral-indexer --bench object_storage
	$(CARGO) bench -p logq --bench logq

## The three images from deploy/docker/*.Dockerfile (release builds), on base images made here
## by scripts/make-base-images.sh (CORRAL_PUBLIC_BASES=1: the Dockerfiles' public defaults).
images:
	@scripts/build-images.sh

## The system suite (tests/system/run.py): broker, object store, 3 indexers and 2 nodes of apps
## and collectors in docker-compose, one topology per fault scenario; SCENARIOS="a b" picks some.
system-test: test-deps images
	@python3 tests/system/run.py $(SCENARIOS)

## Not in CI: 20 MiB/s through the system topology for SOAK_MINUTES, RSS of every process each
## 10 s; fails when one grows > 20 % after the first 5 minutes or freshness p99 > 2 s.
SOAK_MINUTES ?= 30
SOAK_MIB_S ?= 20
soak: test-deps images
	@python3 tests/system/run.py --soak $(SOAK_MINUTES) --rate $(SOAK_MIB_S)

## Format, lints (clippy.toml: disallowed methods) and the API docs' links.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --quiet

## The fast loop while iterating: format, lints, the unit tests of every crate (no broker, no
## processes). `make test` runs everything.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --lib --quiet
