#!/usr/bin/env bash
# e2e-run.sh NAME [go test flags...]: one run of the e2e suite (./e2e/) on
# the image the environment names (HERMES_S6_E2E_IMAGE, ...), summarized for
# a log by internal/testsummary: a line per finished test, the output of
# failed ones, a table of every test with the skip reasons, go test's own
# closing lines, and the run's wall time. With COUNTS=FILE the run's counts
# (by mode and container user) are appended to FILE for the closing table
# (go run ./internal/testsummary -closing FILE). The raw `go test -json`
# stream is kept in ${E2E_JSON_DIR:-/tmp}/hermes-s6-e2e-NAME.json.
#
# Exit status: go test's, or 1 if the summary saw a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 NAME [go test flags...]" >&2; exit 100; }
name=$1
shift
json=${E2E_JSON_DIR:-/tmp}/hermes-s6-e2e-$name.json
# Build the summarizer first, so its compile time is not counted in the run.
sum=$(mktemp /tmp/hermes-s6-testsummary.XXXXXX)
trap 'rm -f "$sum"' EXIT
go build -o "$sum" ./internal/testsummary

printf '=== e2e run %s: image %s%s\n' "$name" "${HERMES_S6_E2E_IMAGE:-hermes-s6:e2e}" \
  "$([ "${HERMES_S6_E2E_NO_BUILD:-}" = 1 ] && echo ' (as it is: HERMES_S6_E2E_NO_BUILD=1)')"
start=$(date +%s)
rc=0
go test -count=1 -timeout "${E2E_TIMEOUT:-20m}" -json "$@" ./e2e/ 2>&1 | tee "$json" |
  "$sum" -run "$name" ${COUNTS:+-counts "$COUNTS"} || rc=$?
# pipefail: rc is go test's failure, or the summary's (which also fails a
# run with no test at all).
printf '=== e2e run %s: %s in %d s (json: %s)\n' "$name" "$([ $rc = 0 ] && echo passed || echo FAILED)" "$(($(date +%s) - start))" "$json"
exit $rc
