# The hub's entry points. Works on a fresh machine with only python3, git and make:
# uv is bootstrapped into .tools/ when it is not on PATH, and uv builds .venv from uv.lock.
UV_VERSION := 0.13.8
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
# Spokes made by the tests and the demo find the same uv.
export PATH := $(dir $(UV)):$(PATH)
export UV_PYTHON_DOWNLOADS := never
RUN := $(UV) run --no-sync
PYTEST_WORKERS ?= 2

.PHONY: help setup test test-fast lint demo docs clean tested-versions test-newest chromium prometheus code-health

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on CI machines here) Python never
# caches bytecode, so every pipeline step, gateway and CLI process would recompile mlflow, kfp
# and scikit-learn from source (benchmarks/README.md has the cost).
.venv/.synced: pyproject.toml uv.lock pipelines/pyproject.toml infra/pyproject.toml | $(UV)
	$(UV) sync --locked --all-packages --all-extras --group dev --compile-bytecode
	@touch $@

setup: .venv/.synced ## install uv (if missing) and the hub's environment

lint: setup ## ruff (lint, format check), the type checker, and the tested versions against uv.lock
	$(RUN) python scripts/tested_versions.py --check
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) basedpyright

chromium: ## install Debian's chromium for the console's browser tests, where it is missing
	bash scripts/ensure_debian_package.sh chromium "$${SLIPWAY_CHROMIUM:-/usr/bin/chromium}" "the console's browser tests"

prometheus: ## install Debian's prometheus for the KServe rollout tests, where it is missing
	bash scripts/ensure_debian_package.sh prometheus prometheus "the KServe rollout tests"

test: setup lint chromium prometheus ## everything CI runs: lint, library unit tests, template render matrix, spokes' own tests
	$(RUN) pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

# The inner loop: the libraries' unit tests (pipelines/tests, infra/tests), without the
# tests marked `slow` (a rendered spoke's own `make test`, the step daemon's real processes,
# MLflow evaluations) and
# without the template, spoke and end-to-end tests under tests/. `make test` runs them all.
test-fast: setup ## the libraries' unit tests only, no `slow` ones: the inner loop
	$(RUN) pytest pipelines/tests infra/tests -m "not slow" -n $(PYTEST_WORKERS) -q

code-health: setup ## the code-health counts (bare roots, environment reads, loose exceptions, upward imports)
	$(RUN) python scripts/code_health.py --check

tested-versions: setup ## after `uv lock`: write the versions spokes install (hub/tested-versions.txt)
	$(RUN) python scripts/tested_versions.py

test-newest: setup ## the newest releases on the index, in a scratch copy: report what breaks
	$(RUN) python scripts/newest_releases.py

docs: setup ## build the documentation site into site/ (strict: a warning fails)
	$(RUN) mkdocs build --strict

demo: setup ## stamp the demo spoke into build/demo and run the whole story on it
	$(RUN) python scripts/demo.py

clean: ## remove environments and build output
	rm -rf .venv .tools build site
