#!/bin/sh
# Measure an image's boot and stop times, as the facts sheet reports them for
# s6-overlay: boot = from the container's start (docker inspect StartedAt) to
# the moment the `profile=default` line is in $HERMES_HOME/logs/
# container-boot.log (polled inside the container every 10 ms, container
# clock = host clock); stop = wall time of `docker stop`.
#
# Usage: scripts/boot-times.sh IMAGE [RUNS] [USER]   (RUNS 5; USER: empty for
#        root, or hermes for `docker run -u hermes`)
# Prints one line per run and the median of each.
set -eu
image=${1:?usage: boot-times.sh IMAGE [RUNS] [USER]}
runs=${2:-5}
user=${3:-}
set --
[ -n "$user" ] && set -- -u "$user"

boots= stops=
i=0
while [ "$i" -lt "$runs" ]; do
  i=$((i + 1))
  c=$(docker run -d "$@" "$image")
  ready=$(docker exec -u hermes "$c" sh -c 'i=0
until grep -q " profile=default " /opt/data/logs/container-boot.log 2>/dev/null; do
  i=$((i+1)); [ $i -le 6000 ] || exit 1; sleep 0.01
done; date +%s.%N')
  started=$(docker inspect -f '{{.State.StartedAt}}' "$c")
  started=$(date -d "$started" +%s.%N)
  t0=$(date +%s.%N)
  docker stop "$c" >/dev/null
  t1=$(date +%s.%N)
  code=$(docker inspect -f '{{.State.ExitCode}}' "$c")
  docker rm -v "$c" >/dev/null
  boot=$(awk "BEGIN {print $ready - $started}")
  stop=$(awk "BEGIN {print $t1 - $t0}")
  printf 'run %d: boot to profile=default %.2f s, docker stop %.2f s (exit %s)\n' "$i" "$boot" "$stop" "$code"
  boots="$boots $boot"
  stops="$stops $stop"
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf 'median of %d (%s, %s): boot %.2f s, stop %.2f s\n' "$runs" "$image" "${user:-root}" "$(median "$boots")" "$(median "$stops")"
