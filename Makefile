# Two entry points: `make demo` and `make test`. Both create .venv when it is missing or stale.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-all clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

lint: $(STAMP)
	$(BIN)/lint-imports

# Two workers, one test file each at a time (module fixtures such as an embedded host stay in one
# worker): most tests wait on servers and controllers, so two cores run two files well.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

# The issue-19 figures with their ratio to bench/baseline.json (bounded: a few minutes).
bench: $(STAMP)
	@$(BIN)/python bench/run.py

# Every bench script at its default size (long).
bench-all: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
