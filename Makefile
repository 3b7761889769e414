# Set-up and the two everyday commands. Everything installs into .venv/ at the project root.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of PyTorch; see README ("GPU") for a CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test lint bench clean-venv

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

## make run: set up (first time) and run the main job on its embedded default (conf/experiment/quickstart.yaml:
## the control task with a residual net on fresh samples, ~3 min on 2 cores); ARGS="..." adds overrides
run: $(BIN)/.installed
	$(BIN)/python -m lensml.train experiment=quickstart $(ARGS)

## make test: set up (first time) and run the whole test suite, TEST_WORKERS processes (pytest-xdist; one test
## file per process at a time, so a file's module fixtures are built once); TEST_WORKERS=0: one process
TEST_WORKERS ?= 2
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(BIN)/.installed
	$(BIN)/ruff check lensml tests benchmarks experiments

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_sim.py

clean-venv:
	rm -rf $(VENV)
