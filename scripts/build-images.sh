#!/usr/bin/env bash
# `make images`: builds the corral-collector, corral-indexer and logq images from
# deploy/docker/*.Dockerfile (release builds) and prints their sizes.
#
# The base images are build arguments. By default they are made here by
# scripts/make-base-images.sh (this machine's engine has no registry to pull from);
# CORRAL_PUBLIC_BASES=1 uses the Dockerfiles' public defaults (rust:*-bookworm, debian:*-slim).
# Tags: <name>:<workspace version> and <name>:latest; logq also as corral-logq (deploy/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "build-images: $*" >&2; }
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[ -n "$version" ] || { say "no version in Cargo.toml's [workspace.package]"; exit 1; }

base_args=()
if [ "${CORRAL_PUBLIC_BASES:-0}" != 1 ]; then
  scripts/make-base-images.sh
  read -r -a base_args <<<"$(scripts/make-base-images.sh --print-build-args)"
fi

# The engine here has no buildx: the classic builder, which every engine has.
export DOCKER_BUILDKIT=0
for name in corral-collector corral-indexer logq; do
  file="deploy/docker/${name#corral-}.Dockerfile"
  say "building $name:$version from $file"
  started=$SECONDS
  docker build --quiet "${base_args[@]}" --build-arg "VERSION=$version" \
    -f "$file" -t "$name:$version" -t "$name:latest" . >/dev/null
  say "$name:$version built in $((SECONDS - started)) s"
  if [ "$name" = logq ]; then docker tag "logq:$version" "corral-logq:$version"; fi
done
for name in corral-collector corral-indexer logq; do
  size="$(docker image inspect --format '{{.Size}}' "$name:$version")"
  printf 'image %-18s %s MiB\n' "$name:$version" "$((size / 1024 / 1024))"
done
