# Two commands a new user needs: `make demo` and `make test`. Both create .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/fleet-sim run demo --out results/demo
	MPLBACKEND=Agg $(BIN)/fleet-sim report results/demo

test: $(STAMP)
	$(BIN)/ruff check fleet_sim tests benchmarks
	$(BIN)/lint-imports
	MPLBACKEND=Agg $(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
