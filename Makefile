# One task runner: `make install`, `make lint`, `make test`, `make demo`.
# Checks of the tests themselves: `make mutations`, `make test-under-load`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint test demo schema openapi bench mutations test-under-load

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
	$(BIN)/mypy codexflow

test: install
	$(BIN)/pytest -q -n 2

# Each promise broken on purpose in a temporary copy of the tree must fail its tests.
mutations: install
	$(BIN)/python bench/mutations.py

# The suite RUNS times in a row beside two CPU-burning processes; PYTEST_ARGS picks a part.
RUNS ?= 5
PYTEST_ARGS ?=
test-under-load: install
	RUNS=$(RUNS) PYTHON=$(BIN)/python bench/under_load.sh $(PYTEST_ARGS)

schema: install
	$(BIN)/python -m codexflow.spec.schema
	$(BIN)/python -m codexflow.compiler.plan_schema

openapi: install
	$(BIN)/codexflow api --print-openapi > docs/openapi.json

# The main job, offline: check every spec, show the refactor plan, then run it on a fresh copy
# of examples/calculator with scripted model replies (real tools, real sandbox, a real commit).
DEMO := .codexflow/demo
demo: install
	$(BIN)/codexflow validate specs/*.yaml
	$(BIN)/codexflow plan specs/refactor.yaml
	rm -rf $(DEMO) && mkdir -p $(DEMO) && cp -r examples/calculator $(DEMO)/calculator
	cd $(DEMO)/calculator && git init -q && git add -A && \
	  git -c user.name=demo -c user.email=demo@codexflow.invalid commit -qm "calculator before the refactor"
	$(BIN)/codexflow apply specs/refactor.yaml --workspace $(DEMO)/calculator --state-dir $(DEMO)/state \
	  --model scripted/demo --script specs/scripted/refactor.yaml --approve review
	cd $(DEMO)/calculator && git --no-pager log --stat -1
