# `make test` runs the suite; `make run` is `python3 run_pipeline.py` (whole pipeline, then the app).
PYTHON ?= python3
PY := .venv/bin/python

.PHONY: install run run-fast serve test bench clean

# Creates .venv or re-installs when requirements*.txt changed; a no-op otherwise (intent_pipeline/venv.py).
install:
	@$(PYTHON) -m intent_pipeline.venv

run: install
	$(PY) run_pipeline.py $(ARGS)

run-fast: install
	$(PY) run_pipeline.py --fast $(ARGS)

serve: install
	$(PY) serve.py $(ARGS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Full-size measurements (minutes each); run `make run` first so a trained model and release exist.
bench: install
	$(PY) benchmarks/bench_ingest.py
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_inference.py --export
	$(PY) benchmarks/bench_app.py
	$(PY) benchmarks/loadtest_api.py

clean:
	rm -rf artifacts/* registry data/cleaned_all.csv data/intent_pipeline.db
	@touch artifacts/.gitkeep
