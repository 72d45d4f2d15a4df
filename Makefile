# Two entry points on a fresh machine: `make run` and `make test`.
# Both create .venv (Python 3.10) from the pinned lock if it is missing or out of date.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
# This machine's pip config lists local mirrors that may not exist; their warnings are noise.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: run test venv clean

venv: $(STAMP)

$(STAMP): requirements.lock setup.py pyproject.toml
	@py=$$(scripts/find_python310.sh) && \
	if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); fi
	@echo "installing the pinned dependencies from requirements.lock (about 3 minutes)"
	$(PY) -m pip install -q --upgrade "pip==24.3.1" 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q --no-deps -r requirements.lock 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	$(PY) -m pip check 2>&1 | $(QUIET_PIP)
	@touch $(STAMP)

run: $(STAMP)
	$(PY) local_runner.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

clean:
	rm -rf $(VENV) data/synthetic_* outputs
