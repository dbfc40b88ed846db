#!/usr/bin/env bash
# e2e-real.sh [build|test|all]: the e2e suite on the production image built
# from real s6-overlay release-style tarballs, one run per version.
#
#   build: for each version V of S6_OVERLAY_VERSIONS (default "3.2.3.0
#          3.2.3.2"), scripts/real-image.sh S6_OVERLAY_DIST/V PREFIX-V: the
#          production target air-gapped from those tarballs (never copied
#          into the work tree) plus the e2e test layer, PREFIX-V-test.
#   test:  the whole e2e suite on each PREFIX-V-test as it is
#          (HERMES_S6_E2E_NO_BUILD=1), summarized by scripts/e2e-run.sh,
#          then the table version x mode x root/hermes.
#   all:   both (default; what `make e2e-real` runs).
#
# S6_OVERLAY_DIST: the directory holding one directory per version with the
# three tarballs, SHA256SUMS and VERSION (default ../shared/s6-overlay-dist,
# relative to the repository). REAL_IMAGE_PREFIX: the image names (default
# hermes-s6:real). COUNTS: append the counts there (default: a temporary
# file, printed at the end). A missing version directory fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case $what in build | test | all) ;; *) echo "usage: $0 [build|test|all]" >&2; exit 100 ;; esac
dist=${S6_OVERLAY_DIST:-../shared/s6-overlay-dist}
versions=${S6_OVERLAY_VERSIONS:-3.2.3.0 3.2.3.2}
prefix=${REAL_IMAGE_PREFIX:-hermes-s6:real}
die() { printf 'e2e-real.sh: %s\n' "$*" >&2; exit 111; }

for v in $versions; do
  [ -f "$dist/$v/VERSION" ] || die "$dist/$v/ is missing or has no VERSION: the e2e suite on real s6-overlay needs its release-style tarballs (s6-overlay-noarch, -x86_64 and -symlinks-noarch .tar.xz, SHA256SUMS, VERSION) in S6_OVERLAY_DIST/<version>/ (now $dist; set S6_OVERLAY_DIST=DIR)"
done

if [ "$what" != test ]; then
  [ -x bin/perm-watcher ] && [ -x bin/reconcile-profiles ] || die "bin/ is not built: run make build first"
  scripts/base-image.sh "${SUITE:-trixie}"
  for v in $versions; do
    t0=$(date +%s)
    scripts/real-image.sh "$dist/$v" "$prefix-$v"
    echo "e2e-real.sh: $prefix-$v and $prefix-$v-test built in $(($(date +%s) - t0)) s"
  done
fi

if [ "$what" != build ]; then
  counts=${COUNTS:-}
  own=
  if [ -z "$counts" ]; then counts=$(mktemp /tmp/hermes-s6-e2e-counts.XXXXXX) own=1; fi
  rc=0
  for v in $versions; do
    docker image inspect "$prefix-$v-test" >/dev/null 2>&1 || die "$prefix-$v-test is missing: run $0 build first"
    # TestProductionTargetFromLocalTarballs builds the production target
    # from fake tarballs in the source tree, whatever the image: it is not
    # a test of this image (the stand-in runs of make test and .ci/run run it).
    echo "e2e-real.sh: not run on $prefix-$v-test: TestProductionTargetFromLocalTarballs (image-independent: it builds from the source tree; the stand-in run has it)"
    HERMES_S6_E2E_IMAGE=$prefix-$v-test HERMES_S6_E2E_NO_BUILD=1 COUNTS=$counts \
      scripts/e2e-run.sh "real-$v" -skip '^TestProductionTargetFromLocalTarballs$' || rc=1
  done
  if [ -n "$own" ]; then
    echo
    echo "=== e2e on real s6-overlay: leaf tests by run, mode and container user"
    go run ./internal/testsummary -closing "$counts"
    rm -f "$counts"
  fi
  exit $rc
fi
