# MarketPulse developer entry points. Everything runs from a project-local virtualenv (.venv).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make demo` and `make backfill` run from a virtualenv of their own with the runtime dependencies only
# (the product and the harness, no test or lint tools), at the lock's versions.
DEMO_VENV := .venv-demo
DEMO_BIN := $(DEMO_VENV)/bin
DEMO_STAMP := $(DEMO_VENV)/.installed
# The lock's versions, checked against its hashes; the projects themselves (editable) add no dependency,
# so `pip check` fails when pyproject.toml asks for something the lock does not pin.
LOCKED := --quiet --require-hashes --no-deps --requirement requirements.lock

.PHONY: help install lint format test test-fast components image demo backfill kind-up kind-down dev-up dev-status dev-down lock clean bench

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml dev/pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; MarketPulse needs Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(LOCKED)
	$(BIN)/pip install --quiet --no-deps --editable . --editable ./dev
	$(BIN)/pip check
	@touch $@

$(DEMO_STAMP): pyproject.toml dev/pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; MarketPulse needs Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(DEMO_VENV)
	@# Only what the two projects' runtime dependencies pull in, each at its locked version (the lock's
	@# hashes dropped: pip would take them as hash-checking mode, which ranges and editables fail).
	sed -e '/--hash=/d' -e 's/ \\$$//' requirements.lock > $(DEMO_VENV)/constraints.txt
	$(DEMO_BIN)/pip install --quiet --constraint $(DEMO_VENV)/constraints.txt --editable . --editable ./dev
	$(DEMO_BIN)/pip check
	@touch $@

install: $(STAMP)  ## Create .venv with pinned dependencies.

lint: $(STAMP)  ## ruff (lint + format check), mypy and the import layers (import-linter).
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pip check
	$(BIN)/deptry .
	cd dev && ../$(BIN)/deptry .

format: $(STAMP)  ## Apply ruff's formatting and safe fixes.
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

components: $(STAMP)  ## Obtain Kafka, versitygw, etcd, kube-apiserver, kube-controller-manager, kubectl, helm, promtool (cached).
	$(BIN)/marketpulse dev obtain

test: lint  ## Everything CI runs: lint, obtain the components and build the images (side by side), run every test.
	@mkdir -p .marketpulse
	$(BIN)/marketpulse dev image > .marketpulse/image.log 2>&1 & images=$$!; \
	  $(BIN)/marketpulse dev obtain; \
	  wait $$images || { cat .marketpulse/image.log; echo "error: building the images failed" >&2; exit 1; }; \
	  cat .marketpulse/image.log
	@# The node tier (-m node: pods on a real kubelet, mostly waiting on them) and the short benchmarks
	@# (-m bench, the longest single tests) run beside the rest of the suite, in a pytest session of
	@# their own whose output follows the other's: the two sessions take about as long.
	$(BIN)/pytest -m 'node or bench' -p no:cacheprovider > .marketpulse/test-node.log 2>&1 & node=$$!; \
	  rest=0; $(BIN)/pytest -m 'not node and not bench' || rest=$$?; \
	  tier=0; wait $$node || tier=$$?; \
	  echo "=== the node tier and the benchmarks (pytest -m 'node or bench') ==="; cat .marketpulse/test-node.log; \
	  exit $$(( rest != 0 ? rest : tier ))

test-fast: $(STAMP)  ## Tests that need no server.
	$(BIN)/pytest -m 'not kafka and not s3 and not k8s and not helm and not snowflake and not image'

image: $(STAMP)  ## Build both images (workloads, operator) with buildah, no Docker needed; as root, cached.
	$(BIN)/marketpulse dev image

DEMO_PIPELINE ?= operator/config/samples/stockpipeline-local-demo.yaml

demo: $(DEMO_STAMP)  ## The whole pipeline on this machine, dashboard on http://127.0.0.1:8501 (Ctrl-C stops it).
	$(DEMO_BIN)/marketpulse dev obtain --only kafka,s3
	$(DEMO_BIN)/marketpulse run -f $(DEMO_PIPELINE) --backfill-days 90

backfill: $(DEMO_STAMP)  ## One batch run: 200k synthetic ticks over 30 simulated trading days, transform once, exit.
	$(DEMO_BIN)/marketpulse dev obtain --only kafka,s3
	$(DEMO_BIN)/marketpulse run -f $(DEMO_PIPELINE) --once --ticks 200000 --days 30 --data-dir .marketpulse/data/backfill

bench: $(STAMP)  ## Benchmarks against the targets in docs/architecture.md, each beside a baseline; results in bench/results/.
	$(BIN)/marketpulse dev obtain --only kafka,s3
	$(BIN)/marketpulse bench

.PHONY: chart-docs
chart-docs: $(STAMP)  ## Regenerate charts/marketpulse/README.md from its values.yaml comments (a test checks it).
	$(BIN)/python -m marketpulse_dev.chartdocs

kind-up:  ## On a machine with Docker: a kind cluster with Strimzi, the chart and a sample pipeline.
	bash k8s-tests/kind/up.sh

kind-down:
	bash k8s-tests/kind/down.sh

dev-up: $(STAMP)  ## Start every local component in the background.
	$(BIN)/marketpulse dev up

dev-status: $(STAMP)
	$(BIN)/marketpulse dev status

dev-down: $(STAMP)  ## Stop what dev-up started.
	$(BIN)/marketpulse dev down

lock:  ## Re-resolve requirements.lock (with hashes) from requirements.in; pins already there are kept.
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet 'pip-tools>=7.6,<8'
	.lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	  --no-emit-find-links --output-file requirements.lock requirements.in
	rm -rf .lock-venv
	@# The two projects are installed from the work tree, not the lock (pip cannot hash an editable).
	awk '/^# WARNING: pip install will require/ || /^# Consider using a hashable URL/ { next } \
	  /^-e / { skip = 1; next } skip && /^ / { next } { skip = 0; print }' requirements.lock > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock

clean:  ## Remove the virtualenv and local state (not the per-machine component cache).
	-$(BIN)/marketpulse dev down
	rm -rf $(VENV) $(DEMO_VENV) .marketpulse
