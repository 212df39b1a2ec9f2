#!/usr/bin/env bash
# Sums cargo's per-binary "test result:" lines into one closing line: "N passed, N failed".
set -euo pipefail
log=${1:?usage: test-summary.sh <cargo test output>}
awk '
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed;?$/) passed += $i
      if ($(i+1) ~ /^failed;?$/) failed += $i
      if ($(i+1) ~ /^ignored;?$/) ignored += $i
    }
    binaries++
  }
  END {
    printf "\n%d test binaries\n", binaries
    printf "%d passed, %d failed, %d skipped\n", passed, failed, ignored
  }
' "$log"
