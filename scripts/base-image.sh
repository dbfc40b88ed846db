#!/bin/sh
# Build the local base images for hermes-s6's Dockerfile without any
# registry: Debian made by mmdebstrap from Debian's mirror, imported with
# `docker import`. They hold every Debian package the image needs, so that no
# `docker build` step needs the network.
#
# Usage: scripts/base-image.sh [--force] [SUITE]   (SUITE defaults to trixie)
# Makes two images from one mmdebstrap run:
#   hermes-s6-base:SUITE-s6  with Debian's s6 and execline: the base of the
#                            hermetic (stand-in) targets only
#   hermes-s6-base:SUITE     the same without them (purged offline): the base
#                            of `common` and `production`, which must carry
#                            one s6 only, s6-overlay's
# Env:   HERMES_S6_SUITE        suite (overridden by SUITE)
#        DEBIAN_MIRROR          mirror URL (default: the one in /etc/apt sources, else deb.debian.org)
set -eu

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
suite=${1:-${HERMES_S6_SUITE:-trixie}}
case $suite in '' | *[!a-z0-9-]*)
  echo "base-image: bad suite name '$suite' (a Debian suite such as trixie or sid)" >&2
  exit 100
  ;;
esac
plain=hermes-s6-base:$suite
withs6=hermes-s6-base:$suite-s6

# Packages of the images: s6 and execline for the hermetic targets (purged
# from the plain image); xz-utils to unpack s6-overlay's tarballs in the
# production target; passwd for useradd; procps for debugging inside a running
# container.
packages=s6,execline,xz-utils,passwd,procps

if [ "$force" = 0 ] && docker image inspect "$plain" >/dev/null 2>&1 && docker image inspect "$withs6" >/dev/null 2>&1; then
  echo "base-image: $withs6 and $plain already present" >&2
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
# Check-Valid-Until: sid's Release file on a mirror that is not refreshed
# daily can be past its Valid-Until date; the packages are still signed.
set -- --variant=minbase --include="$packages" --format=tar \
  --aptopt='Acquire::Retries "3"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  "$suite" "$tmp/rootfs.tar"
if [ "$suite" = sid ] || [ "$suite" = unstable ]; then
  set -- --aptopt='Acquire::Check-Valid-Until "false"' "$@"
fi
if [ -n "${DEBIAN_MIRROR:-}" ]; then set -- "$@" "$DEBIAN_MIRROR"; fi
echo "base-image: mmdebstrap $suite with $packages" >&2
mmdebstrap --quiet "$@"

docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/sh"]' \
  "$tmp/rootfs.tar" "$withs6" >/dev/null
echo "base-image: built $withs6" >&2

# The plain image: purge s6 and execline (and the libraries only they
# needed) offline; dpkg has everything it needs for a removal.
mkdir "$tmp/plain"
cat >"$tmp/plain/Dockerfile" <<EOF
FROM $withs6
RUN set -eu; \\
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --autoremove s6 execline >/dev/null; \\
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \\
    if command -v s6-svscan || command -v execlineb || [ -e /usr/lib/execline ]; then \\
      echo "base-image: s6 or execline still present after the purge" >&2; exit 1; \\
    fi
EOF
DOCKER_BUILDKIT=0 docker build --force-rm -q -t "$plain" "$tmp/plain" >/dev/null
echo "base-image: built $plain (no s6, no execline)" >&2
