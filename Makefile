# One task runner: `make install`, `make lint`, `make test`, `make demo`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint test demo schema openapi bench

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
	$(BIN)/pytest -q

schema: install
	$(BIN)/python -m codexflow.spec.schema

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
