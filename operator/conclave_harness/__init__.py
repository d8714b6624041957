"""The dev harness: the local control plane, its pod network and fake kubelet, simulated
members, the demo, and fetching helm and kubectl. Tests, benchmarks and `make demo` use
it; the operator never imports it (an import-linter contract checks that)."""
