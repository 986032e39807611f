# Two commands a new user needs: `make demo` and `make test`. Both create .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo figures test bench notebooks clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# the demo fleet under each hosting mode (same seed: same arrivals and spikes), then its report
demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/fleet-sim sweep demo --param hosting.mode=baremetal,vm,container --out results/demo
	MPLBACKEND=Agg $(BIN)/fleet-sim report results/demo

# the README's figures, made again from the demo
figures: demo
	mkdir -p docs/figures
	cp results/demo/report/response_time_cdf.png results/demo/report/unmet_cpu.png \
	   results/demo/report/workload_cpu.png docs/figures/

test: $(STAMP)
	$(BIN)/ruff check fleet_sim tests benchmarks
	$(BIN)/lint-imports
	MPLBACKEND=Agg $(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python benchmarks/scale.py

# JupyterLab on the notebooks/ (the notebooks extra; not needed by make test)
$(VENV)/.notebooks: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,notebooks]'
	touch $@

notebooks: $(VENV)/.notebooks
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
