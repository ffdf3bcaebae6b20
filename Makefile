# Two commands do all the set-up: `make run` and `make test`.
# Only Python 3.11, git and make are needed: uv is bootstrapped into .tools/ and
# installs exactly the versions in uv.lock into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export PATH := $(BIN):$(PATH)

.PHONY: setup run lint test test-fast notebooks bench clean help

help:
	@echo "make run        set up .venv from uv.lock, then dvc repro on the demo export"
	@echo "make lint       ruff check and ruff format --check (make test and make test-fast run it first)"
	@echo "make test       set up .venv, lint, then the whole test suite (slow tests included)"
	@echo "make test-fast  lint, then unit tests only: no subprocess, no dvc repro (under 90 s)"
	@echo "make notebooks  render the notebooks to HTML in reports/notebooks/"
	@echo "make bench      benchmark every stage at 1,000 and 10,000 accounts (BENCH_ARGS=--large for 100,000)"

$(UV):
	@echo "==> bootstrapping uv $(UV_VERSION) into $(TOOLS)/"
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: every test run, `churn` stage and worker process then reads .pyc files
# instead of compiling pandas, pandera, pyspark, sklearn, mlflow... from source, which it does
# on each start when PYTHONDONTWRITEBYTECODE is set (it only stops Python from writing them).
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	@echo "==> installing the locked environment into $(VENV)/"
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	$(BIN)/nbstripout --install --attributes .gitattributes >/dev/null 2>&1 || true
	@touch $@

setup: $(VENV)/.synced

run: setup
	@echo "==> dvc repro (per-stage timing lines below)"
	$(BIN)/dvc repro

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

notebooks: setup
	$(BIN)/python -m pipelines.notebooks render

bench: setup
	$(BIN)/churn bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS)
