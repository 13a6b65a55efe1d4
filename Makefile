# Replyflow: the entry point for people and CI. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SAMVENV ?= .venv-sam
SAM    := $(SAMVENV)/bin/sam
export SAM_CLI_TELEMETRY := 0

.DEFAULT_GOAL := help
.PHONY: console console-openapi deploy-console help install run test test-unit test-integration test-e2e test-infra lint format typecheck complexity bench loadtest validate build pr clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(SAM): requirements-sam.txt
	@test -x $(SAMVENV)/bin/python || $(PYTHON) -m venv $(SAMVENV)
	@$(SAMVENV)/bin/pip install -q --disable-pip-version-check -r requirements-sam.txt
	@touch $@

install: $(STAMP) ## create .venv and install the pinned dependencies

run: $(STAMP) ## start the local stack (console and API :3000, sandbox :3001) on embedded defaults
	@$(PY) -m local.console_build build || echo "console: not built (needs Node.js 20+ and npm); serving the API only"
	$(VENV)/bin/replyflow run

# The socket-free tiers run on both cores (pytest-xdist); the tiers that start servers run one test at a time.
test: $(STAMP) ## every test tier: unit, integration (MariaDB + Redis), infra, e2e
	$(PY) -m pytest -q -p no:cacheprovider -n 2 tests/unit tests/infra
	$(PY) -m pytest -q -p no:cacheprovider tests/integration tests/e2e

test-unit: $(STAMP) ## unit tests only (no sockets)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP) ## integration tests against the real MariaDB and Redis
	$(PY) -m pytest -q tests/integration

test-e2e: $(STAMP) ## the local stack over HTTP
	$(PY) -m pytest -q tests/e2e

test-infra: $(STAMP) ## assertions on template.yaml and infra/
	$(PY) -m pytest -q tests/infra

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(STAMP) ## mypy on the layer package, the functions, the local stack and the tests
	$(VENV)/bin/mypy

# Rank C is cyclomatic complexity 20 at most; asserts are not branches, so tests are held to it too.
complexity: $(STAMP) ## no function above cyclomatic rank C (xenon)
	$(VENV)/bin/xenon --no-assert --max-absolute C layers functions local bench tests

bench: $(STAMP) ## measure latency and throughput; prints a table, writes bench/results/*.json (BENCH_ARGS="--only cold_start")
	$(PY) -m bench $(BENCH_ARGS)

# LOADTEST_SECONDS=120 by default: the four scenarios' load time together (seeding and drains on top).
loadtest: $(STAMP) ## the four Locust load scenarios on the local stack (MariaDB + Redis); HTML + JSON in bench/results/
	$(PY) -m bench.loadtest

validate: $(STAMP) $(SAM) ## cfn-lint every template and sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml infra/*.yaml
	$(SAM) validate --lint --region us-east-1

# Lambda's file system is read-only, so a package without bytecode compiles every module it imports on
# every cold start: the build compiles it with the functions' runtime (python3.11, which sam build
# needs too), as unchecked-hash .pyc files, valid whatever time the zip gives the sources (the built
# package is never edited).
build: $(STAMP) $(SAM) ## sam build (no Docker), the packages' bytecode, the console's static files
	$(PY) -m local.console_build build
	$(SAM) build
	python3.11 -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

console: $(STAMP) ## build the console (npm ci + vite build) when console/dist is missing or stale
	$(PY) -m local.console_build build

console-openapi: $(STAMP) ## regenerate console/openapi.json and the typed client from the API
	PYTHONPATH=layers/shared:functions:. $(PY) -m local.console_build openapi
	cd console && npm run gen

# Upload the built console to the stack's bucket and invalidate index.html (docs/deploy.md).
STACK_NAME ?= replyflow
deploy-console: console ## upload console/dist to the deployed stack's bucket, invalidate CloudFront
	@BUCKET=$$(aws cloudformation describe-stacks --stack-name $(STACK_NAME) --query "Stacks[0].Outputs[?OutputKey=='ConsoleBucketName'].OutputValue" --output text) && \
	DIST=$$(aws cloudformation describe-stacks --stack-name $(STACK_NAME) --query "Stacks[0].Outputs[?OutputKey=='ConsoleDistributionId'].OutputValue" --output text) && \
	aws s3 sync console/dist/assets "s3://$$BUCKET/assets" --cache-control "public, max-age=31536000, immutable" && \
	aws s3 sync console/dist "s3://$$BUCKET" --exclude "assets/*" --cache-control "no-cache" --delete && \
	aws cloudfront create-invalidation --distribution-id "$$DIST" --paths "/index.html" "/"

pr: lint typecheck complexity validate test ## everything a pull request must pass

clean: ## remove local state and build output
	rm -rf .local .aws-sam .pytest_cache .mypy_cache .ruff_cache
