# Every target bootstraps .venv from requirements.lock on first use (and again when the lock changes).
VENV ?= .venv
PYTHON ?= python3.11  # the lock is compiled for 3.11
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-runtime demo test lint typecheck pytest bench lock clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "evalmon needs Python 3.11 (set PYTHON=...)"'
	PIP_EXTRA_INDEX_URL= PIP_FIND_LINKS= $(PY) -m pip install --quiet --disable-pip-version-check \
		--require-hashes --no-deps -r requirements.lock
	PIP_EXTRA_INDEX_URL= PIP_FIND_LINKS= $(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The cron's lean install: the runtime lock only (no jupyter, linters or type checkers).
setup-runtime: $(VENV)/.runtime-stamp

$(VENV)/.runtime-stamp: requirements-runtime.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PIP_EXTRA_INDEX_URL= PIP_FIND_LINKS= $(PY) -m pip install --quiet --disable-pip-version-check \
		--require-hashes --no-deps -r requirements-runtime.lock
	PIP_EXTRA_INDEX_URL= PIP_FIND_LINKS= $(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

demo: $(STAMP)
	$(VENV)/bin/evalmon run monitoring_local

test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts examples
	$(VENV)/bin/ruff format --check src tests benchmarks scripts examples
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/zizmor --offline .github/workflows

typecheck: $(STAMP)
	$(VENV)/bin/mypy src

pytest: $(STAMP)
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks

# Regenerate the locks after editing pyproject.toml dependencies: the full (dev) lock first, then
# the runtime lock constrained to the same versions.
lock:
	$(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock
	grep -o '^[A-Za-z0-9_.-]*==[^ ]*' requirements.lock > .lock-constraints.txt
	$(PYTHON) -m uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
		-c .lock-constraints.txt -o requirements-runtime.lock
	rm -f .lock-constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
