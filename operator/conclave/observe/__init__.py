"""Observe: turns what the watches, probes, DNS and RBAC show into core's plain data.
It reads; it never writes to the API and never decides."""
