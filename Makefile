# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs tines from the lock, pulls the default model, runs a program
#   make test   the same install with the test and bench tools (locked too), then the whole suite
#
# Installs come from the locks in requirements/ (exact versions of every package, resolved with
# pip-tools beside the CPU build of torch 2.13.0), so every machine gets the same set on every
# day. `make lock` refreshes them; `make test-latest` runs the suite against the newest versions
# pyproject.toml's ranges allow, in .venv-latest, to catch drift before a user meets it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q
# The installer itself is pinned too; pip-tools for `make lock` runs in its own venv.
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.7.0
# The CPU build of torch; any other version would pull a multi-GB CUDA build.
TORCH := torch==2.13.0
APP_LOCK := requirements/app.txt
DEV_LOCK := requirements/dev.txt
NODEPS := requirements/nodeps.txt
NODEPS_NAMES = $(shell sed -n 's/==.*//p' $(NODEPS) | paste -sd'|')
COMPILE := --quiet --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links

.PHONY: demo test install install-test pull bench bench-peers lock test-latest clean

$(VENV)/.installed: $(APP_LOCK) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) pip==$(PIP_VERSION)
	$(PIP) --no-deps -r $(APP_LOCK)
	$(PIP) --no-deps --no-build-isolation -e .
	touch $@

# `pip check`: the locked set must be whole. The --no-deps packages' own requirements are known
# to be missing; on a second run they are already installed, so their lines are left out.
$(VENV)/.installed-test: $(VENV)/.installed $(DEV_LOCK) $(NODEPS)
	$(PIP) --no-deps -r $(DEV_LOCK)
	$(PY) -m pip check > $(VENV)/pip-check.txt || \
		! grep -v -i -E '^($(NODEPS_NAMES)) ' $(VENV)/pip-check.txt
	$(PIP) --no-deps -r $(NODEPS)
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

pull: install
	$(VENV)/bin/tines pull

demo: pull
	$(PY) examples/quickstart.py

# Two workers (pytest-xdist), a test file each at a time so module fixtures (a server, a model)
# start once: on 2 cores the suite took 11-12 min instead of 17 serially (most tests keep one core
# busy). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: install-test pull
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: install-test pull
	$(PY) -m bench.run --quick

# The peers bench.run compares against, each best-effort: a peer that cannot be installed
# is skipped by bench.run with the reason printed. They are constrained by the lock, so
# they never replace a locked package; llama-cpp-python builds from source (~6 min).
bench-peers: install-test pull
	$(PY) -c 'import llama_cpp' 2>/dev/null || $(PIP) llama-cpp-python -c $(DEV_LOCK) \
		|| echo 'bench-peers: llama-cpp-python not installed'
	$(PY) -c 'import outlines' 2>/dev/null || $(PIP) outlines -c $(DEV_LOCK) \
		|| echo 'bench-peers: outlines not installed'

# Re-resolve both locks from pyproject.toml's ranges (dev first; the app lock is constrained
# by it, so the two never disagree on a version). --upgrade: resolving from scratch, not from
# the old pins, avoids pip's long backtracking. Run `make test-latest` before committing.
lock:
	test -x .venv-lock/bin/pip-compile || ($(PYTHON) -m venv .venv-lock && \
		.venv-lock/bin/pip install -q pip==$(PIP_VERSION) pip-tools==$(PIP_TOOLS_VERSION))
	.venv-lock/bin/pip-compile $(COMPILE) --upgrade --extra test --extra bench \
		-o $(DEV_LOCK) pyproject.toml requirements/torch.in
	.venv-lock/bin/pip-compile $(COMPILE) --upgrade -c $(DEV_LOCK) \
		-o $(APP_LOCK) pyproject.toml requirements/torch.in
	# pip picks the CPU build for torch==2.13.0 where its wheel is on disk; keep the lock
	# free of the local-version label so it reads the same on every machine.
	sed -i 's/^torch==2.13.0+cpu$$/torch==2.13.0/' $(APP_LOCK) $(DEV_LOCK)

# Not in CI: the newest versions the ranges allow (torch stays the CPU build), the
# differences from the lock printed first, then the whole suite.
test-latest:
	test -x .venv-latest/bin/python || $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
	.venv-latest/bin/python -m pip install --disable-pip-version-check -q --upgrade \
		--upgrade-strategy eager $(TORCH) -e '.[test,bench]'
	.venv-latest/bin/python -m pip install --disable-pip-version-check -q --upgrade --no-deps \
		$$(sed -n 's/==.*//p' $(NODEPS))
	.venv-latest/bin/python requirements/drift.py $(DEV_LOCK) $(NODEPS)
	.venv-latest/bin/tines pull
	.venv-latest/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) .venv-latest .venv-lock build *.egg-info
