#!/bin/sh
# Renders a corral config template into the file the binary reads: a copy of TEMPLATE in which the
# line `# corral:kafka-credentials` becomes
#   "sasl.username" = "…"
#   "sasl.password" = "…"
# from the files username and password of CREDENTIALS_DIR (Secret corral-kafka-client), as TOML
# basic strings. librdkafka takes SASL credentials only as properties, and corral's config files
# have no way to read a property from a file, so the credentials are put in at pod start, into an
# in-memory volume, and never appear in a ConfigMap.
#
# Usage: render-config.sh TEMPLATE OUTPUT CREDENTIALS_DIR
set -eu

if [ $# -ne 3 ]; then
  echo "usage: render-config.sh TEMPLATE OUTPUT CREDENTIALS_DIR" >&2
  exit 2
fi
template=$1
output=$2
credentials=$3
marker='# corral:kafka-credentials'

# Prints the content of file $1 as a TOML basic string; refuses what TOML cannot hold unescaped.
toml_string() {
  if [ ! -s "$1" ]; then
    echo "render-config: $1 is missing or empty: create Secret corral-kafka-client (deploy/README.md)" >&2
    return 1
  fi
  value=$(cat "$1") # without its trailing line breaks
  newline='
'
  case $value in *"$newline"*) value= ;; esac
  if [ -z "$value" ] || printf '%s' "$value" | LC_ALL=C tr -d '\t' | LC_ALL=C grep -q '[[:cntrl:]]'; then
    echo "render-config: $1 holds a control character (a line break?): not a usable SASL credential" >&2
    return 1
  fi
  printf '"%s"' "$(printf '%s' "$value" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

username=$(toml_string "$credentials/username")
password=$(toml_string "$credentials/password")
grep -qxF "$marker" "$template" || {
  echo "render-config: $template has no line '$marker' to put the Kafka credentials at" >&2
  exit 1
}

umask 077
while IFS= read -r line || [ -n "$line" ]; do
  if [ "$line" = "$marker" ]; then
    printf '"sasl.username" = %s\n"sasl.password" = %s\n' "$username" "$password"
  else
    printf '%s\n' "$line"
  fi
done < "$template" > "$output.tmp"
mv "$output.tmp" "$output"
echo "render-config: wrote $output with the Kafka credentials of Secret corral-kafka-client"
