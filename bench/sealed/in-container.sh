#!/bin/sh
# bench/sealed/in-container.sh: sealed mode's latencies on the test image, as
# hermes, the way the hermes CLI would see them (s6 programs by /command/ path).
#
#   make image   # or any image with hermes-s6 installed
#   bench/sealed/in-container.sh [IMAGE] [N]     (default hermes-s6:e2e, 50)
#
# Boots IMAGE with HERMES_S6_MODE=sealed, then, as hermes inside it: creates N
# profiles one at a time (mkdir + SOUL.md) and for each measures the time to
# the first successful `/command/s6-svc -u` on its slot (retried at once on
# failure, every failure's message counted); then deletes them one at a time
# and measures the time until the slot is gone and no s6-supervise runs for it.
# Prints p50/p90/max per phase and the error counts.
set -eu
img=${1:-hermes-s6:e2e}
n=${2:-50}
c=hermes-s6-sealed-bench-$$
trap 'docker rm -f -v "$c" >/dev/null 2>&1' EXIT INT TERM
docker run -d --name "$c" -e HERMES_S6_MODE=sealed "$img" >/dev/null
i=0
until docker exec -u hermes "$c" grep -q profile=default /opt/data/logs/container-boot.log 2>/dev/null; do
  i=$((i + 1)); [ "$i" -lt 600 ] || { echo "no boot after 60 s" >&2; docker logs "$c" >&2; exit 1; }
  sleep 0.1
done
docker exec -u hermes -e N="$n" "$c" sh -c '
set -u
ms() { echo $(( $(date +%s%N) / 1000000 )); }
: > /tmp/errors
i=1
while [ "$i" -le "$N" ]; do
  p=bench$i
  t0=$(ms)
  mkdir -p /opt/data/profiles/$p && : > /opt/data/profiles/$p/SOUL.md
  until /command/s6-svc -u /run/service/gateway-$p 2>>/tmp/errors; do :; done
  echo "create $(( $(ms) - t0 ))"
  i=$((i + 1))
done
i=1
while [ "$i" -le "$N" ]; do
  p=bench$i
  t0=$(ms)
  rm -rf /opt/data/profiles/$p
  while [ -e /run/service/gateway-$p ] || pgrep -f "s6-supervise gateway-$p(/log)?\$" >/dev/null 2>&1; do :; done
  echo "delete $(( $(ms) - t0 ))"
  i=$((i + 1))
done
sed "s/.*: //" /tmp/errors | sort | uniq -c | sed "s/^/error /"
' > /tmp/sealed-in-container.$$
for phase in create delete; do
  grep "^$phase " /tmp/sealed-in-container.$$ | cut -d' ' -f2 | sort -n | awk -v ph="$phase" '
    { v[NR] = $1 } END { if (NR == 0) { print ph ": no samples"; exit }
      h = int((NR + 1) / 2); q = int(NR * 0.9); if (q < 1) q = 1
      printf "%-7s n=%d p50=%d ms p90=%d ms max=%d ms\n", ph, NR, v[h], v[q], v[NR] }'
done
grep '^error ' /tmp/sealed-in-container.$$ | sed 's/^error /failed s6-svc attempts: /' || echo "failed s6-svc attempts: none"
rm -f /tmp/sealed-in-container.$$
