"""conclave: discovery, process groups, fenced singletons and partition status for clustered workloads."""

__version__ = "0.1.0"
