# Loopline — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

# Your own tool packages: every folder of tools/ with a pyproject.toml (tools/README.md).
TOOL_PACKAGES := $(patsubst %/pyproject.toml,%,$(wildcard tools/*/pyproject.toml))

.PHONY: install
install: $(UV) ## Install Python 3.11 dependencies into .venv (uv workspace), then tools/*
	@$(UV) sync --frozen --quiet --compile-bytecode
	@$(if $(TOOL_PACKAGES),$(UV) pip install --quiet --compile-bytecode $(addprefix -e ,$(TOOL_PACKAGES)))
	@# Bytecode of the workspace's own modules too: every service, CLI call and test worker
	@# starts from it, even where Python may not write it (PYTHONDONTWRITEBYTECODE).
	@$(RUN) python -m compileall -q -j 0 libs services src bench $(wildcard tools) >/dev/null

$(UV):
	@echo "installing uv (the Python package manager this project uses)"
	@python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@test -x "$(UV)" || { echo "uv is installed but not at $(UV): put it on PATH"; exit 1; }

BROKERS ?=

.PHONY: infra-up
infra-up: install ## Start Kafka (KRaft), Redis, PostgreSQL and Prometheus on the project's own ports (BROKERS=3: a local cluster)
	@$(RUN) loopline infra up $(if $(BROKERS),--brokers $(BROKERS),)

.PHONY: infra-down
infra-down: install ## Stop what infra-up started (keeps data; WIPE=1 deletes it)
	@$(RUN) loopline infra down $(if $(WIPE),--wipe,)

.PHONY: infra-status
infra-status: install ## Show each component's endpoint and state (each broker of a cluster)
	@$(RUN) loopline infra status

.PHONY: topics
topics: install ## Check Loopline's topics against the settings (FIX=1 repairs them)
	@$(RUN) loopline infra topics $(if $(FIX),--fix,)

DEMO_GOAL ?= Compute 17 + 25, then multiply the result by 3, then subtract 6

GATEWAY_URL ?= http://127.0.0.1:$(or $(LOOPLINE_GATEWAY_PORT),18080)/

.PHONY: demo
demo: infra-up ## Start everything, submit a goal and watch its steps live; print the page's URL
	@$(RUN) loopline services up
	@echo
	@echo "\$$ loopline submit \"$(DEMO_GOAL)\" --wait"
	@$(RUN) loopline submit "$(DEMO_GOAL)" --wait
	@echo
	@echo "Loopline is running. Try: uv run loopline submit \"What is (100 - 58) / 2?\" --wait"
	@echo "  uv run loopline runs | uv run loopline tail | uv run loopline show RUN_ID"
	@echo
	@echo "The run inspector: $(GATEWAY_URL)  (API: $(GATEWAY_URL)docs)"
	@echo "Sign in with this operator key of tenant 'default' (shown once; more: uv run loopline keys create --tenant T):"
	@$(RUN) loopline keys create --tenant default --role operator --name demo | tail -1
	@echo "Stop everything with: make down"

.PHONY: services-up
services-up: install ## Start the four services and the gateway in the background
	@$(RUN) loopline services up

.PHONY: down
down: install ## Stop the services and the infrastructure (keeps data)
	@$(RUN) loopline services down
	@$(RUN) loopline infra down

.PHONY: schemas
schemas: install ## Write the JSON Schema of every event into schemas/
	@$(RUN) python -m loopline_events schemas

.PHONY: lint
lint: install ## ruff format check and lint
	@$(RUN) ruff format --check .
	@$(RUN) ruff check .

.PHONY: format
format: install ## Format and fix what ruff can
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

.PHONY: typecheck
typecheck: install ## mypy strict over libraries, services, CLI and tests
	@$(RUN) mypy

# Tests wait on brokers and processes more than on the CPU: a few workers at once, each test
# file on one worker (its namespaces keep it apart from the others), the longest files first
# (tests/durations.json: `make test PYTEST_ARGS=--record-durations=tests/durations.json`).
PYTEST_WORKERS ?= 4

.PHONY: browser
browser: ## Install Debian's chromium (the page's tests drive it headless) when missing
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (apt) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

.PHONY: test
test: lint typecheck browser ## Lint, type-check, then every test against the real infrastructure
	@$(RUN) pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow" --durations=15 $(PYTEST_ARGS)

.PHONY: test-limits
test-limits: install ## The slow rate-limit scenario: 4 planners, 100 runs, a provider at 60/min
	@$(RUN) pytest -m slow -s $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Only the pure unit tests (no infrastructure)
	@$(RUN) pytest tests/unit $(PYTEST_ARGS)

.PHONY: failover
failover: install ## Kill one of two replicas of each service mid-run; print the failover times
	@$(RUN) pytest tests/e2e/test_failover_kill.py -s -q $(PYTEST_ARGS)

.PHONY: chaos
chaos: install ## Chaos suite on private servers: kills, Kafka/Redis/PostgreSQL faults, a 3-broker cluster; prints the table
	@$(RUN) python -m loopline_testing.chaos $(CHAOS_ARGS)

BENCH_ARGS ?=

.PHONY: bench
bench: infra-up ## Benchmark against the targets; results in bench/results (BENCH_ARGS=--quick|--profile)
	@$(RUN) python -m bench $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove caches (not the infrastructure's data: see infra-down WIPE=1)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis
