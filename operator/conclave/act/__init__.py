"""Act: the applier, the only code that writes to the Kubernetes API."""
