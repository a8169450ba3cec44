# The same commands for users, the README and CI.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
# torch must be pinned exactly and installed in the same command: any other torch
# requirement pulls a multi-GB CUDA build.
INSTALL = $(PIP) install --quiet --disable-pip-version-check torch==2.13.0 -e ".[bert,lightgbm,ray,tune,dev]"

export MLFLOW_DISABLE_TELEMETRY = true

.PHONY: install demo test bench lint

install:
	$(INSTALL)

demo: install
	hmtc-bench run --method msml

test: install
	$(PYTHON) -m pytest tests

bench: install
	$(PYTHON) benchmarks/bench_evaluate.py

lint: install
	$(PYTHON) -m ruff check hmtc_bench tests benchmarks
