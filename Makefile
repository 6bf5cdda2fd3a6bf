# tradebus: `make up` runs the stack, `make test` runs the tests; both set up what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := libs/tradebus $(sort $(wildcard services/*)) libs/tradebus-cli
MANIFESTS := $(foreach p,$(PACKAGES),$(p)/pyproject.toml) requirements-dev.txt
SOURCES := $(foreach p,$(PACKAGES),$(p)/src)
MODULES := tradebus tradebus_cli $(foreach s,$(notdir $(wildcard services/*)),tradebus_$(s))
space := $(subst ,, )

.PHONY: venv up down status logs backup restore test test-browser test-chaos bench lint format clean

venv: $(STAMP)

# The first time this takes a few minutes (about 150 packages); pip shows what it is doing.
$(STAMP): $(MANIFESTS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "tradebus needs Python >= 3.11 (set PYTHON=)"; exit 1; }
	@echo "==> make venv [1/3]: creating the Python environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> make venv [2/3]: upgrading pip"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> make venv [3/3]: installing tradebus and its dependencies (a few minutes the first time)"
	$(BIN)/python -m pip install --progress-bar on -r requirements-dev.txt $(addprefix -e ,$(PACKAGES))
	@touch $@
	@echo "==> make venv: done; the command line is $(BIN)/tradebus"

up: venv
	$(BIN)/tradebus up

down:
	@if [ -x $(BIN)/tradebus ]; then $(BIN)/tradebus down; else echo "nothing to stop (no environment yet)"; fi

status: venv
	$(BIN)/tradebus status

logs: venv
	$(BIN)/tradebus logs

# One archive of every schema and stream (backups/); `make restore ARCHIVE=...` into an empty stack.
backup: venv
	$(BIN)/tradebus backup

restore: venv
	@test -n "$(ARCHIVE)" || { echo "usage: make restore ARCHIVE=backups/tradebus-....tar"; exit 2; }
	$(BIN)/tradebus restore "$(ARCHIVE)"

test: venv
	$(BIN)/python -m pytest

# The console page in Debian's chromium on a replayed stack (tests/browser, about 1 min); saves docs/console.png.
test-browser: venv
	$(BIN)/python -m pytest -m browser tests/browser

# Whole local stacks replaying real klines, one fault each (tests/chaos); about 15 min on 2 cores.
test-chaos: venv
	$(BIN)/python -m pytest -m chaos tests/chaos

bench: venv
	$(BIN)/tradebus bench

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPYPATH=$(subst $(space),:,$(SOURCES)) $(BIN)/mypy $(addprefix -p ,$(MODULES))

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: down
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache
