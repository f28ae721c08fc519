# ironic-agent: build, test and demo entry points.
# `make demo` runs the main job; `make test` runs every test (CI calls it).

SHELL := /bin/bash
CARGO ?= cargo
JOBS ?= 2
# Caches reused between runs (Ironic venv, coreos-installer build).
export IRONIC_AGENT_CACHE ?= /var/cache/ironic-agent

.PHONY: all build release image test deps lint demo bench clean reliability

all: build

build:
	$(CARGO) build -j$(JOBS)

## release: the shipped binary (static, see scripts/build-release.sh).
release:
	JOBS=$(JOBS) bash scripts/build-release.sh

## image: the agent container image, built offline (container/README.md).
image: deps
	bash container/build-image.sh

## deps: install every package the tests need (idempotent; runs as root in CI).
deps:
	bash .ci/install-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j$(JOBS) --workspace --all-targets -- -D warnings

## test: everything CI runs — lint, unit, actor and real-peer integration tests.
## Then each libFuzzer target for FUZZ_SECONDS (20 s: 7 targets, under 3 min together).
test: deps lint
	$(CARGO) test -j$(JOBS) --workspace --all-targets -- --test-threads=4
	FUZZ_SECONDS=$${FUZZ_SECONDS:-20} bash fuzz/run.sh

## reliability: restart/fault tests against the real conductor, bounded fuzzing,
## hostile input and load, then docs/reliability.md generated from their figures.
reliability: deps
	rm -rf target/reliability
	$(CARGO) test -j$(JOBS) --test restart_recovery --test hostile_input --test ironic_client -- --test-threads=1
	$(CARGO) test -j$(JOBS) --test fuzz_parsers --test secrets --test installer_faults
	$(CARGO) test -j$(JOBS) --test systemd_supervisor bus_dropped_mid_wait
	$(CARGO) test -j$(JOBS) -p ironic-agent-actors --test image_faults
	FUZZ_SECONDS=$${FUZZ_SECONDS:-20} bash fuzz/run.sh
	python3 scripts/reliability-report.py

## demo: the main job (see README.md).
demo: deps
	bash scripts/demo.sh

## bench: our agent vs ironic-python-agent 13.0.0 side by side → BENCHMARKS.md
## (bench/README.md; BENCH_ARGS="--runs 7", AGENT_CMD=... to compare another build).
bench:
	bash bench/run.sh $(BENCH_ARGS)

clean:
	$(CARGO) clean
