# The operator image: slim, non-root, the base pinned to a full version. It carries the
# operator only: the build stage copies pyproject.toml, README.md and operator/conclave (not
# the dev harness, operator/conclave_harness) and installs them with no extras;
# tests/unit/test_packaging.py builds a wheel from exactly these COPY lines.
# Build: docker build -t conclave/operator:0.1.0 .
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/conclave ./operator/conclave
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="conclave-operator" \
      org.opencontainers.image.description="A Kubernetes operator that gives clustered workloads discovery, process groups, fenced singletons and partition status" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /install /usr/local
# A numeric user, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --gid 10001 conclave && useradd --uid 10001 --gid 10001 --no-create-home conclave
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["conclave"]
CMD ["run"]
