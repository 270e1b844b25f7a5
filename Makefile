# rtcc-edge — the two commands are `make demo` and `make test`.
# Everything else here is what those two need: a virtualenv in .venv and two Debian packages.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SYSPKGS := mosquitto ffmpeg chromium postgresql nats-server
# The suite mostly waits on real-time video and real servers: three workers on two cores take
# it from about 14 to about 6 minutes. Each worker has its own broker and cameras.
TEST_WORKERS ?= 3

.PHONY: demo test lint format venv sysdeps apt bench clean

demo: venv sysdeps
	$(PY) -m demo

test: lint sysdeps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv sysdeps
	$(PY) -m bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "rtcc-edge needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || $(MAKE) --no-print-directory APT_PKGS=python3-venv apt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# Installs the system packages the demo and the tests drive when they are missing: a real
# broker, ffprobe as the independent clip checker, Chromium for the console's pages (driven by
# playwright, never a downloaded browser), PostgreSQL (the tests start their own cluster) and
# NATS Server (the clustered broker of a city; the tests start a three-node cluster).
sysdeps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v ffprobe >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	if [ -n "$$missing" ]; then $(MAKE) --no-print-directory APT_PKGS="$$missing" apt; fi

apt:
	@echo "installing system packages:$(APT_PKGS)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	else echo "need root (or sudo) to install:$(APT_PKGS)"; exit 1; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(APT_PKGS) >/dev/null

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
