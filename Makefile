# cbs — the two commands a user needs are `make sweep` and `make test`; both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build where no CUDA driver is present, PyPI's default (CUDA) build otherwise.
# Override to keep your own build, e.g. `make setup TORCH_SPEC=torch==2.5.1+cu124`.
TORCH_SPEC ?= torch==2.13.0
SPEC ?= experiments/default.yaml
RESULTS ?= results/default
DATA ?= data/stdlib

.PHONY: setup data sweep reproduce test lint typecheck bench bench-gpu clean-venv

setup: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# The offline corpus of the default job: this Python's standard-library sources, byte-level tokens.
$(DATA)/manifest.json: | setup
	$(BIN)/cbs data prepare --builtin stdlib --out $(DATA) --overwrite

data: $(DATA)/manifest.json

# The default job: the sweep (resumable), the CBS fit, and a report page with every figure the data supports.
sweep: setup data
	$(BIN)/cbs sweep $(SPEC) --results $(RESULTS)
	$(BIN)/cbs fit cbs $(RESULTS) --json $(RESULTS)/cbs_fit.json
	$(BIN)/cbs report $(RESULTS)

# The CPU reproduction of "CBS scales with data size, not model size" (results/README.md): three sweeps into
# one store (shared cells trained once; resumes from the committed store), per-experiment fits, figures, report.
REPRO := results/cpu-cbs
REPRO_SPECS := experiments/cpu-chinchilla.yaml experiments/cpu-fixed-data.yaml experiments/cpu-fixed-model.yaml

reproduce: setup data
	@start=$$(date +%s); \
	for spec in $(REPRO_SPECS); do \
	  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/cbs sweep $$spec --results $(REPRO) || exit $$?; \
	done; \
	$(BIN)/python analysis/cpu_reproduction.py $(REPRO) $(REPRO_SPECS) --out $(REPRO)/fits && \
	$(BIN)/cbs fit cbs $(REPRO) --json $(REPRO)/fits/all.json --markdown $(REPRO)/fits/all.md && \
	$(BIN)/cbs figures $(REPRO) --fit $(REPRO)/fits/all.json --format png --only cbs-scaling,steps-vs-batch,lr-sensitivity,scaling-law && \
	$(BIN)/cbs report $(REPRO) --format png && \
	echo "make reproduce: $$(( $$(date +%s) - start )) s"

# One BLAS/OpenMP thread: the tiny models and small fits of the suite run fastest that way on 2 cores.
test: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest

lint: typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy over cbs/ ([tool.mypy] in pyproject.toml); about a minute cold on 2 cores, seconds with .mypy_cache.
typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/bench_train.py --threads 1
	$(BIN)/python benchmarks/bench_scaling_fit.py
	$(BIN)/python benchmarks/bench_theory.py

# cbs vs a plain PyTorch loop on CUDA (85M/151M, seq 512, bf16, compile off/on, 2 ranks with 2+ GPUs); < 5 min.
bench-gpu: setup
	$(BIN)/python benchmarks/bench_gpu.py

clean-venv:
	rm -rf $(VENV)
