# logq, the query CLI and TUI, for running next to the indexers inside the cluster:
#   kubectl -n corral run logq --rm -it --restart=Never --image=corral-logq:0.1.0 -- \
#     --endpoint http://corral-indexer-0.corral-indexer-headless.corral.svc:7280 … --corr <id>
# Build from the repository root:
#   docker build -f deploy/docker/logq.Dockerfile --build-arg VERSION=0.1.0 -t corral-logq:0.1.0 .
# VERSION must be the workspace version (Cargo.toml): the build checks it against `logq -V`
# (logq's `--version` is the service-version filter).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# The bases are build arguments: `make images` passes the ones scripts/make-base-images.sh makes
# on a machine with no registry; anywhere else the public defaults are pulled.
ARG BUILD_IMAGE=rust:${RUST_VERSION}-${DEBIAN_RELEASE}
ARG RUNTIME_IMAGE=debian:${DEBIAN_RELEASE}-slim

FROM ${BUILD_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# What librdkafka's own configure/make build needs (the list of scripts/install-test-deps.sh).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config make gcc g++ perl libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The same steps up to here in all three Dockerfiles (deploy/docker/*.Dockerfile): a builder's
# layer cache builds the three binaries once for the three images. One cargo build per package:
# built together, features would unify, and the collector would link corral-schema's tantivy.
RUN cargo build --release --locked -p corral-indexer --bin corral-indexer \
 && cargo build --release --locked -p logq --bin logq \
 && cargo build --release --locked -p corral-collector --bin corral-collector
RUN install -m 0755 target/release/logq /usr/local/bin/logq
ARG VERSION
RUN test -n "${VERSION}" || { echo "pass --build-arg VERSION=<workspace version>" >&2; exit 1; }; \
    actual="$(/usr/local/bin/logq -V)"; \
    [ "${actual}" = "logq ${VERSION}" ] \
      || { echo "VERSION=${VERSION} but the binary says: ${actual}" >&2; exit 1; }

FROM ${RUNTIME_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG VERSION
LABEL org.opencontainers.image.title="logq" \
      org.opencontainers.image.description="Query corral: one request across every service, in time order, in a TUI or as text" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/corral-logs/corral"
RUN groupadd --system --gid 10001 corral \
 && useradd --system --uid 10001 --gid corral --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin corral
COPY --from=build /usr/local/bin/logq /usr/local/bin/logq
RUN libs="$(ldd /usr/local/bin/logq)" \
 && if printf '%s\n' "${libs}" | grep 'not found'; then exit 1; fi
# Plain HTTP to the indexers (no TLS stack); writes nothing, so a read-only root filesystem is fine.
# TERM for the TUI under `kubectl run -it`.
ENV TERM=xterm-256color
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/logq"]
