# AffectLens — the two commands: `make run` (demo on sample faces) and `make test`.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out
STAMP := $(VENV)/.installed

.PHONY: run test test-sdk install install-train bench evaluate clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (Python >= 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# 'train' (torch, pinned by constraints.txt) so the training tests run in make test too.
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,service,browser,postgres,batch,train,video,dataframe]'
	# Sample photos for the demo ship inside insightface's wheel; installed without its dependencies.
	$(BIN)/python -m pip install -q --no-deps insightface==2.1
	# The in-the-wild set (benchmarks/wild) also reads scikit-image's astronaut photo; files only, never imported.
	$(BIN)/python -m pip install -q --no-deps scikit-image==0.26.0
	touch $(STAMP)

install: $(STAMP)

install-train: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,dev]'

# Analyse the sample faces: JSON + annotated images in $(OUT)/.
run: $(STAMP)
	$(BIN)/affectlens image $$($(BIN)/python -c "from affectlens.samples import sample_images as s; print(' '.join(map(str, s())))") \
		--json $(OUT)/faces.json --annotate $(OUT)/annotated
	@echo "wrote $(OUT)/faces.json and $(OUT)/annotated/"

test: $(STAMP)
	$(BIN)/python -m pytest -q
	@$(MAKE) --no-print-directory test-sdk

# Web/Node SDK (sdk/web): npm ci (pinned lockfile), build, parity tests against this Python
# library in Node and in headless Chromium (/usr/bin/chromium; those tests skip without it).
SDK := sdk/web
test-sdk: $(STAMP)
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(SDK) && { [ node_modules/.affectlens-ci -nt package-lock.json ] || \
	    { ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.affectlens-ci; }; } && \
	  AFFECTLENS_PYTHON=$(abspath $(BIN)/python) npm test; \
	else echo "SKIPPED the web/Node SDK tests in $(SDK): node/npm not found (install Node.js >= 18 to run them)"; fi

evaluate: $(STAMP)
	$(BIN)/affectlens evaluate --data ../shared/data/fer2013 --split PrivateTest --json $(OUT)/evaluate.json

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py --out benchmarks/results/pipeline.json

clean:
	rm -rf $(OUT) .pytest_cache build src/*.egg-info $(SDK)/dist
