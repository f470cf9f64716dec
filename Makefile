# Two entry points for a fresh machine: `make pipeline` and `make test`.
# Both create .venv from requirements.lock (the tested, fully pinned tree) the first time.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# OpenMP threads sleep while they wait, as in the model stages of dvc.yaml (see the comment there):
# the tests fit models in process too, and spinning threads slow them down beside any other work
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install pipeline test test-fast ui bench clean

# --compile-bytecode: uv leaves .py files uncompiled, so without it every stage and test process
# compiles mlflow, scikit-learn and pandas again where bytecode cannot be cached (2-4 s each)
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.9
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Run the whole DVC pipeline (synthetic extract unless params.yaml sets extract.path).
# then relink: DVC 3 hard-links a new output into its cache, but leaves as a copy an output that a
# stage wrote again with the same contents (treeverse/dvc#10549), which doubles its disk use
pipeline: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc checkout --relink --quiet

## Run the test suite.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Quick tests only (no end-to-end runs, no servers, no browser).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not server and not browser" $(PYTEST_ARGS)

## MLflow UI for model reviewers on http://127.0.0.1:5000 over the project's tracking store.
ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts --host 127.0.0.1 --port 5000

clean:
	rm -rf data models/* reports/* mlflow.db mlartifacts .scan-cache
