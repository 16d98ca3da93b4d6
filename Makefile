# proofwatch: `make run` starts the daemon on config.toml, `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install check bench soak clean bytecode

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# the project's own modules as bytecode, as a wheel install has them: an editable install does
# not compile them, and where PYTHONDONTWRITEBYTECODE is set every start would compile them again
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q supervisor status policies workers bench > /dev/null

run: bytecode
	$(BIN)/proofwatch run --config config.toml

test: $(STAMP)
	scripts/install-test-deps.sh
	$(BIN)/lint-imports --config pyproject.toml
	$(BIN)/python -m pytest

check: $(STAMP)
	$(BIN)/proofwatch check --config config.toml

# proofwatch vs supervisord (PyPI, own venv) vs Monit (Debian), side by side: under 10 minutes;
# prints the comparison and rewrites its section of docs/PERFORMANCE.md (`python -m bench --help`)
bench: bytecode
	scripts/install-bench-deps.sh
	$(BIN)/python -m bench

# the reliability soak at full length (make test runs it for 60 s): 200 jobs, 10 minutes
soak: $(STAMP)
	PROOFWATCH_SOAK_SECONDS=600 $(BIN)/python -m pytest tests/supervisor/test_soak.py -s -q

clean:
	rm -rf $(VENV) var .pytest_cache
	find supervisor status policies workers bench tests -name __pycache__ -type d -prune -exec rm -rf {} +
