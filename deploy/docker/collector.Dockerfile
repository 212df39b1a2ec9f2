# corral-collector, the node agent (DaemonSet). Build from the repository root:
#   docker build -f deploy/docker/collector.Dockerfile --build-arg VERSION=0.1.0 -t corral-collector:0.1.0 .
# VERSION must be the workspace version (Cargo.toml): the build checks it against `--version`.
#
# The build stage builds all three binaries (its steps are the other Dockerfiles', so a layer
# cache builds them once), the collector on its own; only its binary is copied. Tantivy and the
# TUI are not in its dependency graph, and the build fails if that ever changes.

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
RUN tree="$(cargo tree --locked -p corral-collector -e normal --prefix none)" \
 && if printf '%s\n' "${tree}" | grep -E '^(tantivy|ratatui) ' >/dev/null; then \
      echo "corral-collector depends on tantivy or ratatui: the collector image must not carry them" >&2; exit 1; \
    fi \
 && install -m 0755 target/release/corral-collector /usr/local/bin/corral-collector
ARG VERSION
RUN test -n "${VERSION}" || { echo "pass --build-arg VERSION=<workspace version>" >&2; exit 1; }; \
    actual="$(/usr/local/bin/corral-collector --version)"; \
    [ "${actual}" = "corral-collector ${VERSION}" ] \
      || { echo "VERSION=${VERSION} but the binary says: ${actual}" >&2; exit 1; }

# debian-slim rather than distroless: the prod overlay's render-config init container runs this
# image's /bin/sh. ca-certificates brings libssl (librdkafka's TLS) with it.
FROM ${RUNTIME_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG VERSION
LABEL org.opencontainers.image.title="corral-collector" \
      org.opencontainers.image.description="corral's node agent: tails container logs, parses them and ships records to Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/corral-logs/corral"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
 && groupadd --system --gid 10001 corral \
 && useradd --system --uid 10001 --gid corral --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin corral \
 && install -d -m 0755 /var/lib/corral \
 && install -d -o corral -g corral -m 0750 /var/lib/corral/collector
COPY --from=build /usr/local/bin/corral-collector /usr/local/bin/corral-collector
# Fails the build when a shared library (libssl, libz …) is missing from the runtime base.
RUN libs="$(ldd /usr/local/bin/corral-collector)" \
 && if printf '%s\n' "${libs}" | grep 'not found'; then exit 1; fi
# Non-root by default. The DaemonSet runs it as uid 0 with every capability dropped, to read the
# kubelet's root-owned log files (deploy/base/collector-daemonset.yaml says why), so
# /var/lib/corral is 0755: root without CAP_DAC_OVERRIDE cannot pass a 0750 directory of uid
# 10001 to reach the checkpoint mount below it. Writes only to --data-dir, so it runs with a
# read-only root filesystem.
USER 10001:10001
VOLUME ["/var/lib/corral/collector"]
EXPOSE 7281
ENTRYPOINT ["/usr/local/bin/corral-collector"]
