# silverline-node: the two commands are `make run` (broker + orchestrator + node on
# localhost, embedded defaults) and `make test` (the whole suite; CI runs it).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: env test bench run orchestrator modules clean typecheck profile

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

modules:
	$(MAKE) -s -C modules

test: env modules
	$(PY) -m pytest -q

bench: env modules
	@set -e; for b in bench/*.py; do echo "== $$b"; $(PY) $$b --quick; done

typecheck: env
	$(PY) -m pip install -q mypy
	$(PY) -m mypy --strict ipc

clean:
	rm -rf build .pytest_cache .hypothesis
	$(MAKE) -s -C modules clean

# the profile collector: {realm}/proc/profile/# -> data/<date>/<runtime>/<module>.<uuid>.<type>.json
profile: env
	$(PY) -m collector $(PROFILE_ARGS)

# the orchestrator: REST API on config `http_port` (8000), SQLite store orchestrator.db; ORCH_ARGS="--db PATH ..."
orchestrator: env
	$(PY) -m orchestrator $(ORCH_ARGS)
