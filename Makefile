# Two entry points on a fresh machine: `make run` and `make test`.
# Both create .venv (Python 3.10) from the pinned lock if it is missing or out of date.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test venv bench clean

venv: $(STAMP)

$(STAMP): requirements.lock setup.py
	@set -e; py=$$(scripts/find_python310.sh); \
	if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade "pip==24.3.1"
	$(PY) -m pip install -q --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(PY) local_runner.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

clean:
	rm -rf $(VENV) data/synthetic outputs
