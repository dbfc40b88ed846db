# hermes-s6 image. Classic builder compatible (no BuildKit-only syntax).
#
# Targets (the last one, production, is the default):
#   hermetic       Debian's s6 + execline with hermetic/init, a stand-in for
#                  s6-overlay's /init emulating s6-overlay
#                  HERMETIC_S6_OVERLAY_VERSION (test use only, see e2e/README.md)
#   hermetic-test  hermetic + test-only content (fake hermes CLI, a static
#                  s6-rc longrun); what the e2e suite runs
#   production     s6-overlay v3 (default 3.2.3.0) from its release tarballs,
#                  checksums verified; its base must have no s6 of its own
#
# The Go programs are built outside (make build: CGO_ENABLED=0 go build -o
# bin/ ...) and copied in, so no builder image is needed.
#
# One s6 per image: `common` and production start from BASE_IMAGE, which
# must not carry Debian's s6 or execline (production gets s6-overlay's);
# the hermetic stages start from HERMETIC_BASE_IMAGE and use Debian's.
# scripts/base-image.sh makes both locally (hermes-s6-base:SUITE and
# hermes-s6-base:SUITE-s6).
#
# Note: the classic builder builds every stage before the target, so building
# `production` also builds the (cached, cheap) hermetic stages, which need s6
# and execline in HERMETIC_BASE_IMAGE (a base without them gets them with
# apt-get).

ARG BASE_IMAGE=debian:trixie-slim
ARG HERMETIC_BASE_IMAGE=debian:trixie-slim

FROM ${BASE_IMAGE} AS common
ARG HERMES_UID=10000
ARG HERMES_GID=10000
RUN set -eu; \
    groupadd -g "${HERMES_GID}" hermes; \
    useradd -u "${HERMES_UID}" -g "${HERMES_GID}" -d /opt/data -M -s /bin/sh hermes; \
    mkdir -p /opt/data; \
    chown hermes:hermes /opt/data
# S6_KILL_GRACETIME: s6-overlay waits this long (ms) for stragglers at every
# stop; our programs exit at once on SIGTERM, so keep it low.
ENV HERMES_HOME=/opt/data \
    S6_KILL_GRACETIME=500
ENTRYPOINT ["/init"]
# Each target then adds its s6, and last (they change most often) rootfs/,
# the two programs and VOLUME (after every RUN: with the classic builder a
# RUN below a VOLUME leaves an anonymous volume behind): the same three lines
# in hermetic and production.

# --- hermetic: Debian's s6 and execline, with a stand-in /init ------------
# Its own base (with Debian's s6), so the user setup of `common` is repeated.
FROM ${HERMETIC_BASE_IMAGE} AS hermetic-base
ARG HERMES_UID=10000
ARG HERMES_GID=10000
RUN set -eu; \
    groupadd -g "${HERMES_GID}" hermes; \
    useradd -u "${HERMES_UID}" -g "${HERMES_GID}" -d /opt/data -M -s /bin/sh hermes; \
    mkdir -p /opt/data; \
    chown hermes:hermes /opt/data
ENV HERMES_HOME=/opt/data \
    S6_KILL_GRACETIME=500
ENTRYPOINT ["/init"]
RUN set -eu; \
    if ! command -v s6-svscan >/dev/null 2>&1 || [ ! -x /usr/lib/execline/bin/execlineb ]; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends s6 execline; \
      rm -rf /var/lib/apt/lists/*; \
    fi
# The s6-overlay version the stand-in emulates: where it reads the user
# bundle and what it lays out as evidence of its version (see hermetic/install).
ARG HERMETIC_S6_OVERLAY_VERSION=3.2.3.0
ENV HERMETIC_S6_OVERLAY_VERSION=${HERMETIC_S6_OVERLAY_VERSION}
COPY hermetic/ /usr/lib/hermetic-s6/
COPY rootfs/ /
# bin/ whole (fix-run-owner, the stand-in's setuid helper, is optional there),
# then the stand-in's layout and the user bundle where that version reads it.
COPY bin/ /tmp/hermes-s6-bin/
RUN set -eu; \
    install -m 0755 /tmp/hermes-s6-bin/reconcile-profiles /tmp/hermes-s6-bin/perm-watcher /usr/local/bin/; \
    /usr/lib/hermetic-s6/install "${HERMETIC_S6_OVERLAY_VERSION}"; \
    /usr/lib/hermes-s6/install-user-bundle perm-watcher profile-follower reconcile-profiles

FROM hermetic-base AS hermetic
VOLUME ["/opt/data"]

# --- hermetic-test: test-only content on top of hermetic ------------------
FROM hermetic-base AS hermetic-test
COPY testdata/image/ /
# The fake hermes CLI lives outside testdata/image/ so that no tracked path
# looks like a build output (bin/).
COPY testdata/fake-hermes/hermes /usr/local/bin/hermes
RUN /usr/lib/hermes-s6/install-user-bundle static-test
ENV S6_KILL_GRACETIME=100
VOLUME ["/opt/data"]

# --- production: s6-overlay v3 from its release tarballs -----------------
# On `common`, whose BASE_IMAGE must not bring an s6 of its own: the image
# carries one s6, s6-overlay's. A base with Debian's s6/execline fails the
# build below (`docker exec c s6-svc` would run that older client against
# s6-overlay's supervisors).
FROM common AS production
# The release and the SHA-256 of each tarball. Defaults: 3.2.3.0, the
# version the hermes-agent image pins, with the checksums of its release's
# .sha256 files. Another version needs all four (an empty one fails).
ARG S6_OVERLAY_VERSION=3.2.3.0
ARG S6_OVERLAY_URL=https://github.com/just-containers/s6-overlay/releases/download
ARG S6_OVERLAY_NOARCH_SHA256=b720f9d9340efc8bb07528b9743813c836e4b02f8693d90241f047998b4c53cf
ARG S6_OVERLAY_SYMLINKS_NOARCH_SHA256=a60dc5235de3ecbcf874b9c1f18d73263ab99b289b9329aa950e8729c4789f0e
ARG S6_OVERLAY_X86_64_SHA256=a93f02882c6ed46b21e7adb5c0add86154f01236c93cd82c7d682722e8840563
ARG S6_OVERLAY_AARCH64_SHA256=0952056ff913482163cc30e35b2e944b507ba1025d78f5becbb89367bf344581
# The classic builder does not set TARGETARCH: default to amd64.
ARG TARGETARCH=amd64
# Air-gapped builds: put the tarballs into s6-overlay-dist/ of the build
# context; a tarball found there is used instead of downloading it. Either
# way its checksum is verified before anything is unpacked.
COPY s6-overlay-dist/ /tmp/s6-overlay-dist/
RUN set -eu; \
    for p in s6-svscan s6-supervise execlineb; do \
      for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin /usr/lib/execline/bin; do \
        if [ -e "$d/$p" ]; then \
          echo "production: the base image brings its own s6 ($d/$p); the image must carry only s6-overlay's: use a base without s6 and execline (build argument BASE_IMAGE)" >&2; exit 1; \
        fi; \
      done; \
    done; \
    case "${TARGETARCH}" in \
      amd64) arch=x86_64; archsum="${S6_OVERLAY_X86_64_SHA256}" ;; \
      arm64) arch=aarch64; archsum="${S6_OVERLAY_AARCH64_SHA256}" ;; \
      *) echo "s6-overlay: unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac; \
    dist=/tmp/s6-overlay-dist; \
    set -- "noarch ${S6_OVERLAY_NOARCH_SHA256}" "${arch} ${archsum}" "symlinks-noarch ${S6_OVERLAY_SYMLINKS_NOARCH_SHA256}"; \
    for pair in "$@"; do \
      name="s6-overlay-${pair%% *}.tar.xz"; want="${pair#* }"; \
      if [ -z "${want}" ] || [ "${want}" = "${pair}" ]; then \
        echo "s6-overlay: no SHA-256 given for ${name} (build argument S6_OVERLAY_*_SHA256)" >&2; exit 1; \
      fi; \
      if [ -f "${dist}/${name}" ]; then \
        echo "s6-overlay: using ${name} from the build context"; \
      else \
        url="${S6_OVERLAY_URL}/v${S6_OVERLAY_VERSION}/${name}"; \
        echo "s6-overlay: downloading ${url}"; \
        if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then \
          apt-get update; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates; \
        fi; \
        if command -v curl >/dev/null 2>&1; then curl -fsSL -o "${dist}/${name}" "${url}"; \
        else wget -q -O "${dist}/${name}" "${url}"; fi; \
      fi; \
      echo "${want}  ${dist}/${name}" | sha256sum -c -; \
    done; \
    if ! command -v xz >/dev/null 2>&1; then \
      apt-get update; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends xz-utils; \
    fi; \
    for pair in "$@"; do tar -C / -Jxpf "${dist}/s6-overlay-${pair%% *}.tar.xz"; done; \
    rm -rf "${dist}" /var/lib/apt/lists/*
COPY rootfs/ /
# Bundle membership goes where the s6-overlay just unpacked reads it
# (s6-rc.d/user/contents.d up to 3.2.3.0, user-bundles.d from 3.2.3.1); the
# script fails the build if it cannot tell which.
RUN ["/usr/lib/hermes-s6/install-user-bundle", "perm-watcher", "profile-follower", "reconcile-profiles"]
COPY bin/reconcile-profiles bin/perm-watcher /usr/local/bin/
VOLUME ["/opt/data"]
