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
# OpenMP threads that wait spin by default: two processes training LightGBM side by side (make
# test's two lanes, on 2 cores) then burn each other's cores. Measured: two backtests at once took
# 11 min 12 s spinning, 58 s sleeping (38 s for one alone, either way). Results are unchanged.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup run lint test test-fast pytest-unit pytest-slow pytest-demo-run pytest-rest pytest-unit-1 pytest-unit-2 notebooks lab bench clean help

help:
	@echo "make run        set up .venv from uv.lock, then dvc repro on the demo export"
	@echo "make lint       ruff check and ruff format --check (make test and make test-fast run it first)"
	@echo "make test       set up .venv, lint, then the whole test suite in two lanes side by side: the demo run's tests, and the rest"
	@echo "make test-fast  lint, then unit tests only, in two halves side by side: no subprocess, no dvc repro (under 90 s)"
	@echo "make notebooks  render the notebooks to HTML in reports/notebooks/"
	@echo "make lab        JupyterLab on http://127.0.0.1:8888 (notebooks find the project root themselves)"
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

# Each target runs two pytest processes side by side, one per core (-O keeps their outputs
# apart): make test the unit tests (-m "not slow", where starting a process fails the test, see
# tests/conftest.py) and the slow ones; make test-fast the unit tests in two halves. The second
# half takes every folder not listed in the first, so a new test folder is never left out.
UNIT_HALF := tests/pipelines tests/models
# make test's two lanes, balanced by measured time (pytest --durations): the tests reading the
# session's one demo run (its fixture is built once per process, so they share a lane) with two
# other end-to-end worlds (about 12.5 minutes), and every other test, unit and slow (about 12).
DEMO_RUN_TESTS := tests/data/test_pipeline_e2e.py tests/data/test_demo_model.py tests/data/test_guardrails.py \
	tests/test_notebooks.py tests/reliability/test_reproducible.py \
	tests/reliability/test_privacy.py tests/data/test_usage_world_model.py

test: lint
	@$(MAKE) --no-print-directory -j2 -O pytest-demo-run pytest-rest

test-fast: lint
	@$(MAKE) --no-print-directory -j2 -O pytest-unit-1 pytest-unit-2

pytest-unit:
	$(BIN)/python -m pytest -m "not slow"

pytest-slow:
	$(BIN)/python -m pytest -m slow

pytest-demo-run:
	$(BIN)/python -m pytest $(DEMO_RUN_TESTS)

pytest-rest:
	$(BIN)/python -m pytest $(addprefix --ignore=,$(DEMO_RUN_TESTS))

pytest-unit-1:
	$(BIN)/python -m pytest -m "not slow" $(UNIT_HALF)

pytest-unit-2:
	$(BIN)/python -m pytest -m "not slow" $(addprefix --ignore=,$(UNIT_HALF))

notebooks: setup
	$(BIN)/python -m pipelines.devtools.notebooks render

lab: setup
	$(BIN)/jupyter lab --ip 127.0.0.1 --port 8888 --no-browser --notebook-dir .

bench: setup
	$(BIN)/churn bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS)
