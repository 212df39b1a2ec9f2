#!/usr/bin/env bash
# Makes the base images deploy/docker/*.Dockerfile build FROM, on a machine whose Docker engine
# has no registry to pull from:
#   corral-local/debian:bookworm-slim  a minimal Debian (debootstrap --variant=minbase) — the
#                                      runtime base, in place of debian:bookworm-slim;
#   corral-local/rust:<ver>-bookworm   that Debian with a C toolchain and this machine's Rust
#                                      toolchain (rustc --print sysroot) — the build base, in
#                                      place of rust:<ver>-bookworm. It trusts the CAs this
#                                      machine trusts (registries may be behind a TLS proxy).
# Debian's packages come from the Debian package registry; nothing is pulled from an image
# registry. Images that already exist are kept (pass --rebuild to make them again). Prints the
# build arguments that select them, for `docker build`.
#
# Usage: scripts/make-base-images.sh [--rebuild] [--print-build-args]
set -euo pipefail
cd "$(dirname "$0")/.."

release=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="${CORRAL_BASE_DIR:-$PWD/target/base-images}"
rebuild=false
print_args=false
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=true ;;
    --print-build-args) print_args=true ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "make-base-images: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "make-base-images: $*" >&2; }
die() { say "$*"; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info fails)"
sysroot="$(rustc --print sysroot)" || die "rustc is not installed"
rust_version="$(rustc --version | awk '{print $2}')"
runtime_image="corral-local/debian:${release}-slim"
build_image="corral-local/rust:${rust_version}-${release}"

if $print_args; then
  echo "--build-arg RUNTIME_IMAGE=${runtime_image} --build-arg BUILD_IMAGE=${build_image}"
  exit 0
fi

mkdir -p "$work"
if $rebuild || ! have_image "$runtime_image"; then
  rootfs="$work/rootfs-${release}"
  if [ ! -f "$rootfs/.complete" ]; then
    command -v debootstrap >/dev/null || {
      say "installing debootstrap from Debian's packages"
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >&2
    }
    rm -rf "$rootfs"
    say "debootstrap --variant=minbase $release from $mirror (about a minute)"
    debootstrap --variant=minbase --include=ca-certificates "$release" "$rootfs" "$mirror" \
      >"$work/debootstrap.log" 2>&1 || die "debootstrap failed; see $work/debootstrap.log"
    # What debian:*-slim leaves out too: apt lists and the downloaded .debs, docs, man pages, logs.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/var/log/*
    touch "$rootfs/.complete"
  fi
  say "importing $runtime_image"
  tar -C "$rootfs" --exclude=./.complete -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$runtime_image" >/dev/null
fi

if $rebuild || ! have_image "$build_image"; then
  context="$work/rust-context"
  rm -rf "$context"
  mkdir -p "$context/rust"
  # The toolchain without its HTML docs (~800 MB).
  for part in bin lib libexec etc; do
    [ -e "$sysroot/$part" ] && cp -a "$sysroot/$part" "$context/rust/"
  done
  # This machine's trust store: registries may be reached through a TLS-inspecting proxy whose
  # CA only the host trusts. One certificate per file, as update-ca-certificates wants.
  mkdir -p "$context/host-ca"
  awk -v dir="$context/host-ca" '/BEGIN CERTIFICATE/ {n++} n {print > (dir "/host-" n ".crt")}' \
    /etc/ssl/certs/ca-certificates.crt
  say "building $build_image from $runtime_image and the Rust toolchain at $sysroot"
  # The C toolchain and libraries the official rust:*-bookworm image (buildpack-deps) carries
  # and corral's build needs: a linker for rustc, librdkafka's configure/make, OpenSSL, zlib.
  docker build --quiet -t "$build_image" -f - "$context" >/dev/null <<EOF
FROM ${runtime_image}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      gcc g++ libc6-dev make perl pkg-config libssl-dev zlib1g-dev \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY host-ca /usr/local/share/ca-certificates/host
RUN update-ca-certificates >/dev/null
COPY rust /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN cargo --version && rustc --version
EOF
  rm -rf "$context"
fi

for image in "$runtime_image" "$build_image"; do
  size="$(docker image inspect --format '{{.Size}}' "$image")"
  say "$image: $((size / 1024 / 1024)) MiB"
done
