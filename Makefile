# One-command entry points. Variables can be overridden: `make run HTTP_PORT=9000`.
PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
DATA        ?= ../shared/data/aclImdb_v1_labeled.tar.gz
MODELS_DIR  ?= models
HTTP_PORT   ?= 8000
# Small-but-real models for `make run` when none are exported (~2 minutes on 2 cores).
RUN_TRAIN_ARGS ?= --train-limit 8000 --test-limit 2000 --epochs 4 --batch-size 64

.PHONY: install system-deps tools models run test bench soak audit protos clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $@

# Debian: prometheus (server + promtool) for the metrics and config tests, npm for dclint.
system-deps:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v npm >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends prometheus npm; }

# dclint validates docker-compose.yml against the Compose specification, offline.
tools: .tools/node_modules/.bin/dclint

.tools/node_modules/.bin/dclint:
	mkdir -p .tools
	cd .tools && npm install --no-save --no-audit --no-fund dclint@3.1.0

models: install
	@if ls $(MODELS_DIR)/imdb_lstm/[0-9]* >/dev/null 2>&1 && ls $(MODELS_DIR)/imdb_simple_rnn/[0-9]* >/dev/null 2>&1; then \
	  echo "models found in $(MODELS_DIR)/"; \
	else \
	  $(PY) -m training --data $(DATA) --out $(MODELS_DIR) $(RUN_TRAIN_ARGS); \
	fi

run: models
	MODELS_DIR=$(MODELS_DIR) HTTP_PORT=$(HTTP_PORT) PY=$(PY) bash deploy/local/run.sh

test: install system-deps tools
	$(PY) -m pytest

# Throughput/latency table (docs/benchmarks.md); needs hey from Debian.
bench: models
	@command -v hey >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends hey; }
	$(PY) -m benchmarks --models-dir $(MODELS_DIR) --data $(DATA)

# 5 minutes of mixed valid/invalid traffic; report in docs/soak.md.
soak: models
	$(PY) -m benchmarks.soak --models-dir $(MODELS_DIR) --data $(DATA)

# Known vulnerabilities in the locked dependencies (needs pypi.org; tool in its own venv).
audit:
	$(PYTHON) -m venv .venv-audit
	.venv-audit/bin/python -m pip install -q pip-audit==2.10.1
	.venv-audit/bin/pip-audit -r requirements.lock --no-deps --disable-pip --progress-spinner off

protos: install
	$(PY) proto/generate.py

clean:
	rm -rf $(VENV) .venv-audit .pytest_cache .hypothesis
