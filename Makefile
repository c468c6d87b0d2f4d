# fraudstream: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BROKER := bash deploy/kafka/broker.sh
MODEL_DIR ?= .local/models/champion
DURATION ?= 180
RATE ?= 200

.PHONY: help venv up down status model demo test chaos test-unit lint format bench lock clean prometheus check-config tools s3-up engine base-image image broker-image podman-service prometheus-image

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv with the pinned dependencies

up: ## start the local Kafka broker (fetches the jars once) and create the topics
	$(BROKER) start

down: ## stop the local services this project started
	$(BROKER) stop
	bash deploy/s3/s3proxy.sh stop

status: ## is the local broker running?
	$(BROKER) status

$(MODEL_DIR)/model.ubj: | $(STAMP)
	$(BIN)/fraudstream-train first-model --out $(MODEL_DIR)

model: $(MODEL_DIR)/model.ubj ## train a first model on simulated history if none exists

demo: venv up ## the whole loop live: MLflow, worker, drift, lake writer, trainer, simulator with drift
	$(BIN)/python -m deploy.demo --duration $(DURATION) --rate $(RATE)

prometheus: ## install Debian's prometheus + promtool if missing (apt-get, needs root)
	bash deploy/prometheus/install.sh

check-config: prometheus venv ## promtool (scrape config, rules, rule tests) and a real compose config check
	promtool check config deploy/prometheus/prometheus.yml
	promtool check config deploy/prometheus/compose.yml
	promtool check rules deploy/prometheus/rules.yml
	promtool test rules deploy/prometheus/rules_test.yml
	bash deploy/containers/check-compose.sh

tools: ## actionlint into .local/bin and a check for terraform, for the deployment checks
	bash deploy/tools/install-actionlint.sh
	bash deploy/tools/install-terraform.sh

s3-up: ## local S3-compatible server (s3proxy); eval "$$(deploy/s3/s3proxy.sh env)" to use it
	bash deploy/s3/s3proxy.sh start

engine: ## a container engine that runs here: docker if one answers, else podman (apt-get)
	bash deploy/containers/install-podman.sh
	@echo "engine: $$(deploy/containers/engine)"

base-image: engine ## the local python 3.11 bookworm base (debootstrap), for machines without a registry
	bash deploy/containers/base-image.sh

image: engine ## build deploy/Dockerfile as fraudstream:local (docs/containers.md)
	bash deploy/containers/build-image.sh

broker-image: engine ## the project's Kafka broker (Maven jars, JRE 17) as localhost/fraudstream-kafka:local
	bash deploy/containers/broker-image.sh

prometheus-image: engine ## Prometheus from Debian's package as fraudstream-prometheus:local, for compose.local.yaml
	bash deploy/containers/build-prometheus-image.sh

podman-service: engine ## podman's Docker-compatible API on .local/podman/podman.sock (testcontainers; docs/containers.md)
	bash deploy/containers/podman-service.sh start
	@bash deploy/containers/podman-service.sh env

test: venv up prometheus tools image broker-image prometheus-image ## run every test but the chaos soak (unit and integration, on the real broker)
	$(BIN)/pytest -m "not chaos"

chaos: venv ## the chaos soak: 100,000 transactions, 32 seeded faults, its own broker on 19292 (~10 min; docs/faults.md)
	$(BIN)/pytest tests/integration/test_chaos_soak.py -m chaos -s -q -p no:cacheprovider \
		-o log_cli=false $(if $(CHAOS_BASETEMP),--basetemp=$(CHAOS_BASETEMP))

test-unit: venv ## run the tests that need no broker
	$(BIN)/pytest -m "unit or agents"

lint: venv ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy stream_app producers training drift tests bench deploy

format: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv up model ## limit vs plain loop vs worker vs /predict, memory, scale-out, features (~17 min)
	bash deploy/tools/install-wrk.sh # the /predict leg's load generator (bench/predict_load.py)
	mkdir -p .local/bench
	$(BIN)/python bench/bench_compare.py --model $(MODEL_DIR) --output .local/bench/compare.json
	$(BIN)/python bench/bench_memory.py --model $(MODEL_DIR) --output .local/bench/memory.json
	$(BIN)/python bench/bench_scaling.py --model $(MODEL_DIR) --output .local/bench/scaling.json
	$(BIN)/python bench/bench_features.py --rows 200000

lock: ## re-pin constraints.txt from a fresh resolution of pyproject.toml
	rm -rf .local/lock-venv && $(PYTHON) -m venv .local/lock-venv
	.local/lock-venv/bin/pip install --quiet -e '.[dev]'
	.local/lock-venv/bin/pip freeze --exclude-editable | sed '/^fraudstream/d' > constraints.txt.new
	(head -2 constraints.txt; cat constraints.txt.new) > constraints.txt && rm constraints.txt.new

clean: down ## stop services and delete local state (broker data, models, lake)
	rm -rf .local/kafka/data .local/models .local/store .local/worker
