#!/bin/sh
# Make the adopter's tarball: dist/hermes-s6-<version>-<arch>.tar.xz and its
# .sha256 (the format of s6-overlay's own: "<sha256>  <file name>").
#
# It unpacks at / like s6-overlay's tarballs (tar -C / -Jxpf), owned by root:
#   ./usr/local/bin/perm-watcher, ./usr/local/bin/reconcile-profiles
#                                      the two static programs (0755)
#   ./etc/s6-overlay/s6-rc.d/<svc>/    the s6-rc definitions of rootfs/
#   ./usr/lib/hermes-s6/               install-user-bundle (run it after
#                                      unpacking: it puts the bundle membership
#                                      where the installed s6-overlay reads it)
# Directories it shares with the system or s6-overlay (/, /etc, /usr/local/bin,
# /etc/s6-overlay/s6-rc.d, ...) have no entry, so unpacking it never changes
# their owner, mode or mtime. Modes are normalised (0755 directories and
# executables, 0644 the rest), names sorted, every mtime is SOURCE_DATE_EPOCH
# (default: the last commit's time): the same commit gives the same bytes.
#
# Usage: scripts/dist.sh [-o DIR]      (DIR defaults to dist)
# Env:   VERSION            (default: git describe --tags --always --dirty)
#        GOARCH             amd64 (x86_64) or arm64 (aarch64); default: go env GOARCH
#        SOURCE_DATE_EPOCH  mtime of every entry
set -eu
cd "$(dirname "$0")/.."

out=dist
while [ $# -gt 0 ]; do
  case "$1" in
    -o) [ $# -ge 2 ] || { echo "dist: -o needs a directory" >&2; exit 100; }; out=$2; shift 2 ;;
    *) echo "usage: scripts/dist.sh [-o DIR]" >&2; exit 100 ;;
  esac
done

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
goarch=${GOARCH:-$(go env GOARCH)}
case "$goarch" in
  amd64) arch=x86_64 ;;
  arm64) arch=aarch64 ;;
  *) echo "dist: unsupported GOARCH $goarch (amd64 or arm64, as the Dockerfile's s6-overlay)" >&2; exit 100 ;;
esac
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
name=hermes-s6-$version-$arch.tar.xz

# Shared directories: never packed (see above).
shared='. ./etc ./etc/s6-overlay ./etc/s6-overlay/s6-rc.d ./usr ./usr/lib ./usr/local ./usr/local/bin'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
stage=$tmp/root
mkdir -p "$stage/usr/local/bin"
cp -R rootfs/. "$stage/"
# Bundle membership is install-user-bundle's job: a user-bundles.d/ here
# would be ignored by s6-overlay up to 3.2.3.0 and is the deprecated
# layout's conflict from 3.2.3.1 on.
if [ -e "$stage/etc/s6-overlay/user-bundles.d" ] || [ -e "$stage/etc/s6-overlay/s6-rc.d/user" ]; then
  echo "dist: rootfs/ declares bundle membership (user-bundles.d or s6-rc.d/user); install-user-bundle must do it at install time" >&2
  exit 111
fi
[ -x "$stage/usr/lib/hermes-s6/install-user-bundle" ] || {
  echo "dist: rootfs/usr/lib/hermes-s6/install-user-bundle is missing or not executable" >&2
  exit 111
}

CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -trimpath \
  -ldflags "-s -w -buildid= -X main.version=$version" \
  -o "$stage/usr/local/bin/" ./cmd/perm-watcher ./cmd/reconcile-profiles

# Normalised modes: a checkout's umask must not change the bytes.
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -perm /0111 -exec chmod 0755 {} +
find "$stage" -type f ! -perm /0111 -exec chmod 0644 {} +

list=$tmp/list
(cd "$stage" && find . -mindepth 1 \( -type d -o -type f \) -print) | LC_ALL=C sort | while read -r p; do
  keep=1
  if [ -d "$stage/$p" ]; then
    for s in $shared; do [ "$p" = "$s" ] && keep=0; done
  fi
  if [ "$keep" = 1 ]; then printf '%s\n' "$p"; fi
done >"$list"

mkdir -p "$out"
tar -C "$stage" --no-recursion --verbatim-files-from -T "$list" \
  --format=gnu --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -cf - |
  xz -T1 -6 -c >"$out/$name.tmp"
mv -f "$out/$name.tmp" "$out/$name"
(cd "$out" && sha256sum "$name" >"$name.sha256")
echo "$out/$name"
