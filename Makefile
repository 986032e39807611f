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

# the demo fleet under each hosting mode, with and without its batch neighbours, 3 seeds
# (each mode gets the same arrivals and spikes), then its report
DEMO := results/demo-sweep
demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/fleet-sim sweep demo --param hosting.mode=baremetal,vm,container \
	    --param apps.batch.replicas=2,0 --replications 3 --out $(DEMO) --report

# the README's figures, made again from the demo
figures: demo
	mkdir -p docs/figures
	cp $(DEMO)/report/headline.png $(DEMO)/report/response_time_cdf.png \
	   $(DEMO)/report/workload_cpu.png docs/figures/

test: $(STAMP)
	$(BIN)/ruff check fleet_sim tests benchmarks
	$(BIN)/lint-imports
	MPLBACKEND=Agg $(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

# speed figures: the realistic fleet (what users run) and the best case of the core
bench: $(STAMP)
	$(BIN)/python benchmarks/fleet.py --hosts 200 --hours 1 --mode container
	$(BIN)/python benchmarks/scale.py

# JupyterLab on the notebooks/ (the notebooks extra; not needed by make test)
$(VENV)/.notebooks: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,notebooks]'
	touch $@

notebooks: $(VENV)/.notebooks
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
