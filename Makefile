# Two entry points: `make run` (whole pipeline on embedded defaults, then the app) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: install run run-fast serve test bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) run_pipeline.py $(ARGS)

run-fast: $(STAMP)
	$(PY) run_pipeline.py --fast $(ARGS)

serve: $(STAMP)
	$(PY) serve.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Full-size measurements (minutes each); run `make run` first so a trained model and release exist.
bench: $(STAMP)
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_inference.py --export
	$(PY) benchmarks/bench_app.py
	$(PY) benchmarks/loadtest_api.py

clean:
	rm -rf artifacts/* registry data/cleaned_all.csv data/intent_pipeline.db
	@touch artifacts/.gitkeep
