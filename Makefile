# One-command entry points. Variables can be overridden: `make run HTTP_PORT=9000`.
PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
# The datasets: DATA / SNIPPETS when given, else the copies in SHARED_DATA when they
# exist, else none: the trainer then downloads the official tarball (training/download.py).
SHARED_DATA ?= ../shared/data
DATA        ?= $(wildcard $(SHARED_DATA)/aclImdb_v1_labeled.tar.gz)
SNIPPETS    ?= $(wildcard $(SHARED_DATA)/rt-polarity_v1.0.tar.gz)
DATA_FLAG    = $(if $(DATA),--data $(DATA))
SNIPPETS_FLAG = $(if $(SNIPPETS),--snippets $(SNIPPETS))
MODELS_DIR  ?= models
HTTP_PORT   ?= 8000
# Small-but-real models for `make run` when none are exported (~2 minutes on 2 cores).
RUN_TRAIN_ARGS ?= --train-limit 8000 --test-limit 2000 --epochs 4 --batch-size 64

.PHONY: install system-deps compose-deps tools models run test test-fast test-compose clean-compose bench attack accuracy soak score audit protos clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev,batch]'
	touch $@

# Debian packages behind the tools the tests run (TOOL=PACKAGE); only missing ones
# are installed. npm is not among them: it comes with Node.js, and Debian's npm
# package conflicts with a Node.js installed from elsewhere.
TEST_TOOLS    := promtool=prometheus prometheus=prometheus nginx=nginx chromium=chromium openssl=openssl
# The compose tier: podman (runc, not crun, works here), its Docker API for
# docker-compose, mmdebstrap for local base images, netavark + aardvark-dns for
# networks whose service names resolve as under Docker (netavark runs iptables).
COMPOSE_TOOLS := podman=podman runc=runc mmdebstrap=mmdebstrap docker-compose=docker-compose \
                 /usr/lib/podman/netavark=netavark /usr/lib/podman/aardvark-dns=aardvark-dns iptables=iptables

system-deps:
	@bash deploy/local/install-tools.sh $(TEST_TOOLS)
	@command -v npm >/dev/null || { echo "npm not found: install Node.js (it ships npm) for dclint" >&2; exit 1; }

compose-deps:
	@bash deploy/local/install-tools.sh $(COMPOSE_TOOLS)

# dclint validates docker-compose.yml against the Compose specification, offline.
tools: .tools/node_modules/.bin/dclint

.tools/node_modules/.bin/dclint:
	mkdir -p .tools
	cd .tools && npm install --no-save --no-audit --no-fund dclint@3.1.0

models: install
	@if ls $(MODELS_DIR)/imdb_lstm/[0-9]* >/dev/null 2>&1 && ls $(MODELS_DIR)/imdb_simple_rnn/[0-9]* >/dev/null 2>&1; then \
	  echo "models found in $(MODELS_DIR)/"; \
	else \
	  $(PY) -m training $(DATA_FLAG) --out $(MODELS_DIR) $(RUN_TRAIN_ARGS); \
	fi

# nginx (Debian) is the edge in front of the HTTP API, as in docker-compose.yml.
run: models
	@bash deploy/local/install-tools.sh nginx=nginx
	MODELS_DIR=$(MODELS_DIR) HTTP_PORT=$(HTTP_PORT) PY=$(PY) bash deploy/local/run.sh

# The compose tier may not skip here: a machine that cannot run it fails the run with the reason.
test: install system-deps compose-deps tools
	SENTIMENT_REQUIRE_COMPOSE=1 $(PY) -m pytest

# The in-process layer alone (request handling, tokenizer, settings, batching): seconds,
# no processes, no TensorFlow runtime, no system packages.
test-fast: install
	$(PY) -m pytest tests/fast

# docker-compose.yml brought up for real with podman (tests/test_compose.py); ~10 min
# the first time (base images, image builds), less once the images are cached.
test-compose: install compose-deps
	SENTIMENT_REQUIRE_COMPOSE=1 $(PY) -m pytest -m compose

# Frees the compose tier's podman state and cached images (several GB). podman must
# unmount its layers itself, so a plain rm is not enough.
COMPOSE_STATE ?= $(or $(SENTIMENT_COMPOSE_STATE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/sentiment-compose-test)
clean-compose:
	if [ -f $(COMPOSE_STATE)/containers.conf ]; then \
	  CONTAINERS_CONF=$(COMPOSE_STATE)/containers.conf CONTAINERS_STORAGE_CONF=$(COMPOSE_STATE)/storage.conf \
	    podman system reset --force; fi
	rm -rf $(COMPOSE_STATE)

# The attack tier on its own (tests/attacks, docs/operations.md#threat-model-and-the-attack-tier), its
# measurements in $(BENCH_OUT)/attacks.json and their table in attacks.md; published
# (BENCH_OUT=docs/results), the table is rendered into docs/operations.md too.
attack: install system-deps
	SENTIMENT_ATTACK_RESULTS=$(abspath $(BENCH_OUT))/attacks.json $(PY) -m pytest tests/attacks -p no:randomly
	$(PY) -m harness.attack_report $(BENCH_OUT)/attacks.json > $(BENCH_OUT)/attacks.md
	if [ "$(BENCH_OUT)" = docs/results ]; then $(PY) -m benchmarks.report; fi

# Every benchmark (docs/benchmarks.md); needs hey from Debian. Results go to BENCH_OUT,
# ignored by git; `make bench BENCH_OUT=docs/results` publishes them.
BENCH_OUT ?= .bench
bench: models
	@bash deploy/local/install-tools.sh hey=hey
	$(PY) -m benchmarks.model_cost --models-dir $(MODELS_DIR) $(DATA_FLAG) $(SNIPPETS_FLAG) --out $(BENCH_OUT)/model-cost.json
	$(PY) -m benchmarks.snippets --models-dir $(MODELS_DIR) $(SNIPPETS_FLAG) --out $(BENCH_OUT)/snippets.json
	$(PY) -m benchmarks.model_card --models-dir $(MODELS_DIR) $(DATA_FLAG) $(SNIPPETS_FLAG) --out $(BENCH_OUT)/model-card.json
	$(PY) -m benchmarks --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/serving-path.json
	$(PY) -m benchmarks.http_servers --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/http-servers.json
	$(PY) -m benchmarks.batch_timeout --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/batch-timeout.json
	$(PY) -m benchmarks.explain --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/explain.json
	$(PY) -m benchmarks.features --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/features.json
	$(PY) -m benchmarks.warmup --models-dir $(MODELS_DIR) --out $(BENCH_OUT)/warmup.json
	@bash deploy/local/install-tools.sh nginx=nginx
	$(PY) -m benchmarks.edge --models-dir $(MODELS_DIR) --out $(BENCH_OUT)/edge.json
	@bash deploy/local/install-tools.sh openssl=openssl
	$(PY) -m benchmarks.front_door --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/front_door.json
	$(PY) -m benchmarks.peers --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/peers.json
	$(PY) -m benchmarks.request_path --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/request-path.json
	$(PY) -m benchmarks.profile --models-dir $(MODELS_DIR) $(DATA_FLAG) --profiles $(BENCH_OUT)/profiles --out $(BENCH_OUT)/profile.json
	$(PY) -m benchmarks.batch_scoring --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/batch-scoring.json
	$(MAKE) soak BENCH_OUT=$(BENCH_OUT)
	$(MAKE) attack BENCH_OUT=$(BENCH_OUT)
	if [ "$(BENCH_OUT)" = docs/results ]; then $(PY) -m benchmarks.report; fi

# The accuracy ablation (docs/accuracy.md): one full training run per variant, ~1 hour.
ACCURACY_WORK ?= .ablation
accuracy: install
	$(PY) -m benchmarks.accuracy $(DATA_FLAG) $(SNIPPETS_FLAG) --work $(ACCURACY_WORK)

# 5 minutes of mixed valid/invalid traffic (part of bench); results in $(BENCH_OUT)/soak.json, report in soak.md.
soak: models
	$(PY) -m benchmarks.soak --models-dir $(MODELS_DIR) $(DATA_FLAG) --out $(BENCH_OUT)/soak

# Score a corpus offline with Apache Beam (docs/batch-scoring.md): IN a file pattern, OUT the
# prefix of the result shards; SCORE_ARGS more flags (--column review, --runner ...).
score: install
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make score IN='reviews/*.csv' OUT=scored/part" >&2; exit 2; }
	$(PY) -m serving.batch --input '$(IN)' --output '$(OUT)' --models-dir $(MODELS_DIR) $(SCORE_ARGS)

# Known vulnerabilities in the locked dependencies (needs pypi.org; tool in its own venv).
audit:
	$(PYTHON) -m venv .venv-audit
	.venv-audit/bin/python -m pip install -q pip-audit==2.10.1
	.venv-audit/bin/pip-audit -r requirements.lock --no-deps --disable-pip --progress-spinner off

protos: install
	$(PY) proto/generate.py

clean:
	rm -rf $(VENV) .venv-audit .pytest_cache .hypothesis
