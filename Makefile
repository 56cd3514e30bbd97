# Every target bootstraps .venv from requirements.lock on first use (and again when the lock changes).
VENV ?= .venv
PYTHON ?= python3.11  # the lock is compiled for 3.11
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export PYTHONUNBUFFERED := 1

.PHONY: venv setup setup-runtime demo test lint typecheck pytest bench lock clean

setup: $(STAMP)

# The venv, made with Python 3.11 (what the locks are compiled for), or a message saying how to get it.
venv:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "evalmon needs Python 3.11: install it (e.g. 'pyenv install 3.11', 'apt install python3.11', 'brew install python@3.11') or run make PYTHON=/path/to/python3.11"; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "$(VENV) runs Python %d.%d; evalmon needs 3.11: run make clean, then make PYTHON=/path/to/python3.11" % sys.version_info[:2])'

$(STAMP): requirements.lock pyproject.toml
	@$(MAKE) --no-print-directory venv
	PIP_EXTRA_INDEX_URL= PIP_FIND_LINKS= $(PY) -m pip install --quiet --disable-pip-version-check \
		--require-hashes --no-deps -r requirements.lock
	PIP_EXTRA_INDEX_URL= PIP_FIND_LINKS= $(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The cron's lean install: the runtime lock only (no jupyter, linters or type checkers).
setup-runtime: $(VENV)/.runtime-stamp

$(VENV)/.runtime-stamp: requirements-runtime.lock pyproject.toml
	@$(MAKE) --no-print-directory venv
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
# the runtime lock constrained to the same versions. Reproducible: uv keeps the versions already
# pinned, and never takes a release published after LOCK_DATE (move it forward on purpose to upgrade).
LOCK_DATE ?= 2026-11-30T07:00:00Z
UV_COMPILE = $(PYTHON) -m uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --exclude-newer $(LOCK_DATE)

lock:
	$(PYTHON) -m pip install --quiet uv
	$(UV_COMPILE) --extra dev -o requirements.lock
	grep -o '^[A-Za-z0-9_.-]*==[^ ]*' requirements.lock > .lock-constraints.txt
	$(UV_COMPILE) -c .lock-constraints.txt -o requirements-runtime.lock
	rm -f .lock-constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
