# Two commands on a fresh Debian / Ubuntu machine with Python >= 3.11:
#   make demo   set up .venv with the GUI extra and run the whole chain on the default sample
#   make test   set up .venv with the test extras (and a virtual X server) and run every test
#
# TORCH picks the torch requirement installed first; users get the normal torch wheel
# (on Linux the CUDA build, with triton). VENV picks the environment: CI runs the demo in
# .venv as a user would, and the tests with the CPU build in another one
# (make test VENV=.venv-test TORCH=torch==2.13.0).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch
PYTEST_ARGS ?=
# pytest-xdist workers: one per CPU, at most 4 (each holds its own simulated data); all of a
# file's tests run in one worker, so a module's fixtures (simulated data) are made once
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
DEMO_OUTPUT ?= demo-output

# Debian packages for a virtual X server with Mesa OpenGL and the Qt 6 xcb platform
SYSTEM_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-cursor0 \
	libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
	libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libdbus-1-3 libfontconfig1

.PHONY: demo test lint test-quick test-fresh-gui system-deps benchmarks clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.gui-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[gui]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.gui-installed

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(VENV)/.gui-installed
	$(VENV)/bin/ptychotomo demo --output $(DEMO_OUTPUT)

# --durations: the slowest tests, so that the suite's cost stays visible in CI's log
test: system-deps lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

# ruff's lint and format check (settings in pyproject.toml); `ruff format .` fixes the format
lint: $(VENV)/.test-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# the MSP widget in a fresh process, in the demo's environment (its torch), with only the
# test runner added: an import-order crash there is what a user of that torch would meet
test-fresh-gui: system-deps $(VENV)/.gui-installed
	$(PY) -m pip install --quiet pytest pytest-xvfb
	$(PY) -m pytest -p no:cacheprovider -q tests/napari/test_fresh_process.py

test-quick: $(VENV)/.test-installed
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow and not gui" -x -q $(PYTEST_ARGS)

benchmarks: $(VENV)/.gui-installed
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .venv-test $(DEMO_OUTPUT) build dist src/*.egg-info .pytest_cache
