# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs tines, pulls the default model, runs a program on it
#   make test   the same install with the test tools, then the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of torch; any other version would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: demo test install install-test pull bench bench-peers clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q $(TORCH)
	$(PY) -m pip install --disable-pip-version-check -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]' $(TORCH)
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

pull: install
	$(VENV)/bin/tines pull

demo: pull
	$(PY) examples/quickstart.py

test: install-test pull
	$(VENV)/bin/pytest -q

bench: install-test pull
	$(PY) bench/run.py --quick

# The peers bench/run.py compares against, each best-effort: a peer that cannot be installed
# is skipped by bench/run.py with the reason printed. Outlines only if it leaves torch and
# outlines-core (pinned by tines) as they are; llama-cpp-python builds from source (~6 min).
bench-peers: install-test pull
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test,bench]' $(TORCH)
	$(PY) -c 'import llama_cpp' 2>/dev/null || $(PY) -m pip install --disable-pip-version-check \
		-q llama-cpp-python -c bench/peer-constraints.txt || echo 'bench-peers: llama-cpp-python not installed'
	$(PY) -c 'import outlines' 2>/dev/null || $(PY) -m pip install --disable-pip-version-check \
		-q outlines -c bench/peer-constraints.txt || echo 'bench-peers: outlines not installed'

clean:
	rm -rf $(VENV) build *.egg-info
