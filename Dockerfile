# The operator image: slim, non-root, the base pinned to a full version.
# Build: docker build -t conclave/operator:0.1.0 .
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /install /usr/local
# A numeric user, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --gid 10001 conclave && useradd --uid 10001 --gid 10001 --no-create-home conclave
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["conclave"]
CMD ["run"]
