# The operator image: plain Debian 12 (bookworm) with Debian's own python3 (3.11), non-root,
# read-only friendly. It carries the operator only: the build stage copies pyproject.toml,
# README.md and operator/conclave (not the dev harness, operator/conclave_harness) and
# builds a wheel of them with no extras; tests/unit/test_packaging.py builds a wheel from
# exactly these COPY lines. Every Python dependency comes from image/requirements.txt,
# pinned with hashes (`make lock`), so the build resolves nothing.
#
# Build: podman build -t conclave/operator:0.1.0 .      (or docker build; `make image`)
# Pin the base by digest for a release: --build-arg BASE=debian:bookworm-slim@sha256:...
# tests/e2e/test_image.py builds it on a base made locally with debootstrap (no image
# registry is reachable there) and runs it as the chart does against a real control plane.
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
# Only when given (never empty, which pip would read as "no verification"): a mirror, and
# behind a TLS-inspecting proxy its CA bundle, mounted into the build.
ARG PIP_INDEX_URL
ARG PIP_CERT
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY image/requirements.txt image/build-requirements.txt ./image/
# Every dependency as a wheel, each checked against its hash (a package published only as
# source, such as erlang-py, is built here with the locked build backend, not a fetched one).
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --require-hashes --no-deps -r image/build-requirements.txt \
    && /opt/build/bin/pip wheel --no-cache-dir --require-hashes --no-deps --no-build-isolation \
        --wheel-dir /wheels -r image/requirements.txt
COPY pyproject.toml README.md ./
COPY operator/conclave ./operator/conclave
# The runtime venv gets the wheels only: no pip, no build backend.
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && python3 -m venv --without-pip /opt/conclave \
    && /opt/build/bin/pip --python /opt/conclave/bin/python install --no-cache-dir --no-deps --no-index \
        /wheels/*.whl

FROM ${BASE}
ARG BASE
LABEL org.opencontainers.image.title="conclave-operator" \
      org.opencontainers.image.description="A Kubernetes operator that gives clustered workloads discovery, process groups, fenced singletons and partition status" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"
# The same python3 the build stage's venv was made with (one Debian release, one package).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/conclave /opt/conclave
ENV PATH=/opt/conclave/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric user, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["conclave"]
CMD ["run"]
