#!/bin/bash
# An app of the system suite: writes COUNT JSON log lines to stdout (Docker's json-file driver
# keeps them), with sequence numbers, correlation ids and the time written (`at`, Unix seconds:
# the soak's freshness), then exits 0.
#
# Usage: app-writer.sh NAME COUNT BATCH PAUSE [PAD_BYTES] [KIND]
#   every BATCH lines it sleeps PAUSE seconds (PAUSE=@N: paces to N lines a second);
#   PAD_BYTES pads each line;
#   KIND=bad mixes in the bad input of the bad-input scenario (every line still says
#   "systest <name> line <seq>" first, so each is found and counted).
set -euo pipefail
name=$1 count=$2 batch=$3 pause=$4 pad=${5:-0} kind=${6:-good}
padding=$(head -c "$pad" /dev/zero | tr '\0' x)

bad_line() {
  local i=$1
  case $((i % 6)) in
    0) printf 'systest %s line %d invalid utf-8: \xff\xfe\xc3\x28 end\n' "$name" "$i" ;;
    1) printf 'systest %s line %d nul: a\0b\0c\n' "$name" "$i" ;;
    2) printf 'systest %s line %d ' "$name" "$i"; head -c $((10 << 20)) /dev/zero | tr '\0' y; printf '\n' ;;
    3) printf '{"msg":"systest %s line %d","seq":%d,"corr":"%s-%d","deep":' "$name" "$i" "$i" "$name" "$i"
       head -c 5000 /dev/zero | tr '\0' '['; head -c 5000 /dev/zero | tr '\0' ']'; printf '}\n' ;;
    4) printf '{"msg":"systest %s line %d","seq":%d,"corr":"%s-%d","conflict":%d}\n' "$name" "$i" "$i" "$name" "$i" "$i" ;;
    5) printf '{"msg":"systest %s line %d","seq":%d,"corr":"%s-%d","conflict":{"nested":"x%d"}}\n' "$name" "$i" "$i" "$name" "$i" "$i" ;;
  esac
}

start=${EPOCHREALTIME/./}
for ((i = 1; i <= count; i++)); do
  if [ "$kind" = bad ]; then
    bad_line "$i"
  else
    printf '{"level":"info","msg":"systest %s line %d","seq":%d,"corr":"%s-%d","at":%s,"pad":"%s"}\n' \
      "$name" "$i" "$i" "$name" "$i" "$EPOCHREALTIME" "$padding"
  fi
  if ((i % batch == 0)); then
    if [[ $pause == @* ]]; then
      # @N: N lines a second, paced by the clock (the soak's rate).
      due=$((start + i * 1000000 / ${pause#@})) now=${EPOCHREALTIME/./}
      if ((due > now)); then sleep "$(printf '%d.%06d' $(((due - now) / 1000000)) $(((due - now) % 1000000)))"; fi
    else
      sleep "$pause"
    fi
  fi
done
