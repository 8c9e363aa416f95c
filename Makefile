# Loopline — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: install
install: $(UV) ## Install Python 3.11 dependencies into .venv (uv workspace)
	@$(UV) sync --frozen --quiet

$(UV):
	@echo "installing uv (the Python package manager this project uses)"
	@python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@test -x "$(UV)" || { echo "uv is installed but not at $(UV): put it on PATH"; exit 1; }

.PHONY: infra-up
infra-up: install ## Start Kafka (KRaft), Redis, PostgreSQL and Prometheus on the project's own ports
	@$(RUN) loopline infra up

.PHONY: infra-down
infra-down: install ## Stop what infra-up started (keeps data; WIPE=1 deletes it)
	@$(RUN) loopline infra down $(if $(WIPE),--wipe,)

.PHONY: infra-status
infra-status: install ## Show each component's endpoint and state
	@$(RUN) loopline infra status

DEMO_GOAL ?= Compute 17 + 25, then multiply the result by 3, then subtract 6

.PHONY: demo
demo: infra-up ## Start everything, submit a goal and watch its steps live
	@$(RUN) loopline services up
	@echo
	@echo "\$$ loopline submit \"$(DEMO_GOAL)\" --wait"
	@$(RUN) loopline submit "$(DEMO_GOAL)" --wait
	@echo
	@echo "Loopline is running. Try: uv run loopline submit \"What is (100 - 58) / 2?\" --wait"
	@echo "  uv run loopline runs | uv run loopline tail | uv run loopline show RUN_ID"
	@echo "Stop everything with: make down"

.PHONY: services-up
services-up: install ## Start the four services in the background
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

.PHONY: test
test: lint typecheck ## Lint, type-check, then every test against the real infrastructure
	@$(RUN) pytest -m "not slow" $(PYTEST_ARGS)

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
chaos: install ## Chaos suite on private servers: kills, Kafka/Redis/PostgreSQL faults; prints the table
	@$(RUN) python -m loopline_testing.chaos $(CHAOS_ARGS)

BENCH_ARGS ?=

.PHONY: bench
bench: infra-up ## Benchmark against the targets; results in bench/results (BENCH_ARGS=--quick|--profile)
	@$(RUN) python -m bench $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove caches (not the infrastructure's data: see infra-down WIPE=1)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis
