# One task runner: `make install`, `make lint`, `make test`, `make demo`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint test demo schema bench

install: $(VENV)/.installed

# constraints.txt pins the set that installed and passed here, so a fresh install is reproducible.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

lint: install
	$(BIN)/ruff check codexflow tests bench
	$(BIN)/lint-imports

test: install
	$(BIN)/pytest -q

schema: install
	$(BIN)/python -m codexflow.spec.schema

demo: install
	$(BIN)/codexflow validate specs/*.yaml
