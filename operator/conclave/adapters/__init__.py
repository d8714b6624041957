"""Transport and shared state: the API client (the only module that imports ``kubernetes``),
the cache of watched objects and the Prometheus registry. Nothing here decides."""
