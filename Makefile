# ModelTemplate operator — developer entry points. Every target does its own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KUBECONFIG_LOCAL := $(CURDIR)/.local-cluster/kubeconfig
PYTEST_ARGS ?=
# Test processes side by side (pytest-xdist; each with its own control plane, a test file's tests
# in one process). The suite mostly waits on the API server and the operator: 4 on 2 cores.
# TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 4
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: run help venv binaries tools prereqs image test-real test unit integration chaos lint fmt cluster-up cluster-down cluster-status demo crds kind-up kind-down crds bench-forwarder bench-scale bench-gateway bench-async

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv with the package and test dependencies

binaries: ## build (or reuse cached) etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok
	@hack/build-control-plane.sh >/dev/null

tools: ## build (or reuse cached) helm, the kstatus program (hack/kstatus) and Flux's kustomize-controller the tests run
	@hack/build-tools.sh helm >/dev/null
	@hack/build-tools.sh kstatus >/dev/null
	@hack/build-tools.sh kustomize-controller >/dev/null

prereqs: ## the control plane and the tools, built side by side (each reused when cached)
	@hack/build-all.sh

test: $(STAMP) prereqs ## all unit and integration tests (starts its own local control plane)
	$(PYTEST) $(PYTEST_ARGS)

unit: $(STAMP) ## unit tests only
	$(PYTEST) -m unit $(PYTEST_ARGS)

integration: $(STAMP) prereqs ## integration tests only
	$(PYTEST) -m integration $(PYTEST_ARGS)

image: ## the image, built with podman on a Debian base made here (no Docker, no registry) and checked
	@hack/build-image.sh

test-real: $(STAMP) binaries ## the image run for real: operator and gateway as containers on the local control plane
	MODELTEMPLATE_TEST_REAL=1 $(PY) -m pytest tests/real $(PYTEST_ARGS)

chaos: $(STAMP) binaries ## faults injected at full size: 200-template bursts, 400 fuzzed templates (a table at the end)
	CHAOS_TEMPLATES=200 FUZZ_EXAMPLES=400 $(PY) -m pytest tests/chaos tests/integration/test_crd_agreement.py tests/integration/test_reliability.py $(PYTEST_ARGS)

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check operator devtools tests
	$(VENV)/bin/ruff format --check operator devtools tests

fmt: $(STAMP)
	$(VENV)/bin/ruff format operator devtools tests
	$(VENV)/bin/ruff check --fix operator devtools tests

cluster-up: $(STAMP) binaries ## start the local control plane with fake GPU nodes
	$(PY) -m devtools.localcluster up

cluster-down: $(STAMP) ## stop every process of the local control plane
	$(PY) -m devtools.localcluster down

cluster-status: $(STAMP)
	$(PY) -m devtools.localcluster status

demo: $(STAMP) binaries ## local cluster + CRD + operator + every sample, then a table of where they run
	$(PY) -m devtools.localcluster nodes
	$(PY) -m devtools.localcluster demo

run: $(STAMP) ## run the operator against $$KUBECONFIG (default: the local cluster)
	KUBECONFIG=$${KUBECONFIG:-$(KUBECONFIG_LOCAL)} $(PY) -m modeltemplate_operator $(RUN_ARGS)

kind-up: $(STAMP) ## kind cluster + kwok fake GPU nodes (needs Docker)
	hack/kind-up.sh

kind-down: ## delete the kind cluster
	kind delete cluster --name modeltemplate

crds: $(STAMP) ## regenerate crds/ from the pydantic models, and the chart's copies of crds/ and deploy/
	$(PY) -m modeltemplate_operator.api.crdgen crds/
	$(PY) hack/chart_files.py

bench-forwarder: $(STAMP) ## forwarder vs direct benchmark (prints ratios)
	$(PY) benchmarks/bench_forwarder.py

bench-async: $(STAMP) ## ASYNC: one async forwarder vs calling main directly (tasks/s, latency overhead)
	$(PY) benchmarks/bench_async.py $(BENCH_ARGS)

bench-scale: $(STAMP) binaries ## 1000 templates: convergence vs direct apply, restart, RSS; 100x10 models; a 200-model rollout
	$(PY) benchmarks/bench_scale.py $(BENCH_ARGS)

bench-gateway: $(STAMP) binaries ## SGP gateway vs API server: list of 1000 templates (latency, req/s, RSS)
	$(PY) benchmarks/bench_gateway.py $(BENCH_ARGS)
