"""The runtime that drives observe → decide → act: `conclave run`, leader election, the
supervisors, one reconcile iteration, and the health server."""
