#!/usr/bin/env bash
# real-image.sh DIST_DIR TAG: the production target built air-gapped from the
# real s6-overlay release-style tarballs in DIST_DIR (s6-overlay-noarch,
# -x86_64, -symlinks-noarch .tar.xz with their SHA256SUMS and VERSION, as in
# the shared s6-overlay-dist/<version>/), tagged TAG, plus the e2e test layer
# of e2e/README.md ("Any image") tagged TAG-test.
#
# The tarballs are copied into the s6-overlay-dist/ of a temporary build
# context (never into the work tree, so they cannot be committed and two
# builds cannot mix versions), and their checksums are passed as build
# arguments from SHA256SUMS: these builds are not the published bytes, whose
# sums are the Dockerfile's defaults.
#
# Needs: bin/ built (make build) and the base image hermes-s6-base:SUITE
# (scripts/base-image.sh; SUITE=trixie by default, the hermes image's base).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 DIST_DIR TAG   (e.g. ../shared/s6-overlay-dist/3.2.3.0 hermes-s6:real-3.2.3.0)" >&2; exit 100; }
[ $# -eq 2 ] || usage
dist=$1 tag=$2
die() { echo "real-image.sh: $*" >&2; exit 111; }

for f in VERSION SHA256SUMS s6-overlay-noarch.tar.xz s6-overlay-x86_64.tar.xz s6-overlay-symlinks-noarch.tar.xz; do
  [ -f "$dist/$f" ] || die "$dist/$f is missing: DIST_DIR must hold a release's three tarballs, SHA256SUMS and VERSION"
done
for b in reconcile-profiles perm-watcher; do
  [ -x "bin/$b" ] || die "bin/$b is missing: run make build first"
done
version=$(tr -d ' \n' <"$dist/VERSION")
sum() { awk -v n="$1" '$2 == n || $2 == "*"n { print $1 }' "$dist/SHA256SUMS"; }
noarch=$(sum s6-overlay-noarch.tar.xz) x86=$(sum s6-overlay-x86_64.tar.xz) links=$(sum s6-overlay-symlinks-noarch.tar.xz)
[ -n "$noarch" ] && [ -n "$x86" ] && [ -n "$links" ] || die "$dist/SHA256SUMS lacks a sum for one of the three tarballs"
suite=${SUITE:-trixie}
base=${BASE_IMAGE:-hermes-s6-base:$suite}
# The classic builder builds every stage before the target, the hermetic
# ones too: their base must exist locally as well (no registry).
hbase=${HERMETIC_BASE_IMAGE:-hermes-s6-base:$suite-s6}
for i in "$base" "$hbase"; do
  docker image inspect "$i" >/dev/null 2>&1 || die "base image $i is missing: run scripts/base-image.sh $suite"
done

ctx=$(mktemp -d /tmp/hermes-s6-real-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/bin" "$ctx/s6-overlay-dist" "$ctx/testdata"
cp Dockerfile .dockerignore "$ctx/"
cp -a rootfs hermetic "$ctx/"
cp -a testdata/image testdata/fake-hermes "$ctx/testdata/"
cp -a bin/reconcile-profiles bin/perm-watcher "$ctx/bin/"
[ -x bin/fix-run-owner ] && cp -a bin/fix-run-owner "$ctx/bin/"
cp "$dist"/s6-overlay-*.tar.xz "$ctx/s6-overlay-dist/"

echo "real-image.sh: production target, s6-overlay $version from $dist -> $tag"
log=$(mktemp /tmp/hermes-s6-real-build.XXXXXX)
trap 'rm -rf "$ctx" "$log"' EXIT
build() { DOCKER_BUILDKIT=0 docker build "$@" >"$log" 2>&1 || { tail -40 "$log" >&2; die "docker build of $tag failed (above)"; }; }
build --target production -t "$tag" \
  --build-arg BASE_IMAGE="$base" --build-arg HERMETIC_BASE_IMAGE="$hbase" \
  --build-arg S6_OVERLAY_VERSION="$version" \
  --build-arg S6_OVERLAY_NOARCH_SHA256="$noarch" \
  --build-arg S6_OVERLAY_X86_64_SHA256="$x86" \
  --build-arg S6_OVERLAY_SYMLINKS_NOARCH_SHA256="$links" \
  "$ctx"

# The test layer (e2e/README.md, "Any image"): the fake hermes CLI and the
# static-test longrun in the user bundle, nothing else.
echo "real-image.sh: test layer -> $tag-test"
build -t "$tag-test" -f - "$ctx" <<EOF
FROM $tag
COPY testdata/image/ /
COPY testdata/fake-hermes/hermes /usr/local/bin/hermes
RUN /usr/lib/hermes-s6/install-user-bundle static-test
ENV S6_KILL_GRACETIME=100
EOF
echo "real-image.sh: $tag and $tag-test ready"
