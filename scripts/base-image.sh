#!/bin/sh
# Build the local base image for hermes-s6's Dockerfile without any registry:
# Debian bookworm made by mmdebstrap from Debian's mirror, imported with
# `docker import`. It holds every Debian package the image needs, so that no
# `docker build` step needs the network.
#
# Usage: scripts/base-image.sh [--force] [TAG]   (TAG defaults to hermes-s6-base:bookworm)
# Env:   HERMES_S6_BASE_IMAGE   tag to build (overridden by TAG)
#        DEBIAN_MIRROR          mirror URL (default: the one in /etc/apt sources, else deb.debian.org)
set -eu

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
tag=${1:-${HERMES_S6_BASE_IMAGE:-hermes-s6-base:bookworm}}

# Packages of the image: s6 and execline for the hermetic target; xz-utils to
# unpack s6-overlay's tarballs in the production target; passwd for useradd;
# procps for debugging inside a running container.
packages=s6,execline,xz-utils,passwd,procps

if [ "$force" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base-image: $tag already present" >&2
  exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "base-image: installing mmdebstrap" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "base-image: mmdebstrap is missing; install it (apt-get install mmdebstrap) or run as root" >&2
    exit 111
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# mmdebstrap takes mirrors from the host's apt sources when none is given.
set -- --variant=minbase --include="$packages" --format=tar \
  --aptopt='Acquire::Retries "3"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  bookworm "$tmp/rootfs.tar"
if [ -n "${DEBIAN_MIRROR:-}" ]; then set -- "$@" "$DEBIAN_MIRROR"; fi
echo "base-image: mmdebstrap bookworm with $packages" >&2
mmdebstrap --quiet "$@"

docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/sh"]' \
  "$tmp/rootfs.tar" "$tag" >/dev/null
echo "base-image: built $tag" >&2
