"""kopf handlers: they translate watch events into "topology X must be looked at" and
keep the cache. They never decide and never write to the API."""
