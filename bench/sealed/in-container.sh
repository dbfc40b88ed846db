#!/bin/sh
# bench/sealed/in-container.sh: sealed mode's figures on a test image, as
# hermes, the way the hermes CLI sees them (s6 programs by /command/ path).
#
#   make image   # or any image with hermes-s6 installed
#   bench/sealed/in-container.sh [IMAGE] [SEQ] [BURST] [IDLE_SECONDS]
#                (defaults: hermes-s6:e2e 200 300 60)
#
# Boots IMAGE with HERMES_S6_MODE=sealed, then, as hermes inside it:
#   seq    creates SEQ profiles one at a time (mkdir + SOUL.md) and times each
#          until the first successful `/command/s6-svc -u` on its slot
#          (retried at once on failure; every failure's message is counted);
#   delete deletes them one at a time and times each until the slot is gone
#          and no s6-supervise runs for it;
#   burst  creates BURST profiles at once (xargs) and polls them round-robin,
#          one s6-svc each per round, timing each from the start of the burst
#          until its first success (so a figure is late by at most one round);
#   idle   CPU ticks (utime+stime, 10 ms each) of the root follower and of the
#          hermes reader over IDLE_SECONDS with nothing happening;
#   rss    VmRSS of both with 1,000 profiles in HERMES_HOME (the follower's
#          default cap gives 401 of them a slot: see README, "How many
#          profiles").
# Prints p50/p99/max per phase and the error counts. The host's load average
# is printed before and after: the figures mean something next to each other
# and next to the host benchmark of the same run (go run ./bench/sealed),
# not as absolute times on a shared machine.
set -eu
img=${1:-hermes-s6:e2e}
seq_n=${2:-200}
burst_n=${3:-300}
idle_s=${4:-60}
c=hermes-s6-sealed-bench-$$
out=/tmp/sealed-in-container.$$
trap 'docker rm -f -v "$c" >/dev/null 2>&1; rm -f "$out"' EXIT INT TERM
echo "image $img; host load before: $(cut -d' ' -f1-3 /proc/loadavg)"
docker run -d --name "$c" -e HERMES_S6_MODE=sealed "$img" >/dev/null
i=0
until docker exec -u hermes "$c" grep -q profile=default /opt/data/logs/container-boot.log 2>/dev/null; do
  i=$((i + 1)); [ "$i" -lt 600 ] || { echo "no boot after 60 s" >&2; docker logs "$c" >&2; exit 1; }
  sleep 0.1
done
docker exec -u hermes "$c" sh -c 'echo "s6: $(dpkg-query -W -f "\${Version}" s6 2>/dev/null || echo "not from Debian")"'
docker exec -u hermes -e SEQ="$seq_n" -e BURST="$burst_n" -e IDLE="$idle_s" "$c" sh -c '
set -u
ms() { echo $(( $(date +%s%N) / 1000000 )); }
P=/opt/data/profiles
S=/run/service
mkdir -p $P
: > /tmp/errors.seq; : > /tmp/errors.burst
i=1
while [ "$i" -le "$SEQ" ]; do
  p=s$i
  t0=$(ms)
  mkdir -p $P/$p && : > $P/$p/SOUL.md
  until /command/s6-svc -u $S/gateway-$p 2>>/tmp/errors.seq; do :; done
  echo "seq $(( $(ms) - t0 ))"
  i=$((i + 1))
done
i=1
while [ "$i" -le "$SEQ" ]; do
  p=s$i
  t0=$(ms)
  rm -rf $P/$p
  while [ -e $S/gateway-$p ] || pgrep -f "s6-supervise gateway-$p(/log)?\$" >/dev/null 2>&1; do :; done
  echo "delete $(( $(ms) - t0 ))"
  i=$((i + 1))
done
t0=$(ms)
seq 1 "$BURST" | sed s/^/b/ | (cd $P && xargs mkdir)
seq 1 "$BURST" | sed "s|.*|$P/b&/SOUL.md|" | xargs touch
pending=$(seq 1 "$BURST" | sed s/^/b/)
while [ -n "$pending" ]; do
  next=
  for p in $pending; do
    if /command/s6-svc -u $S/gateway-$p 2>>/tmp/errors.burst; then echo "burst $(( $(ms) - t0 ))"; else next="$next $p"; fi
  done
  pending=$next
done
follower=$(pgrep -f -- "reconcile-profiles --follow")
reader=$(pgrep -f -- "--internal-reader")
ticks() { awk "{ print \$14 + \$15 }" /proc/$1/stat; }
rss() { awk "/^VmRSS/ { print \$2 }" /proc/$1/status; }
sleep 5
f0=$(ticks $follower); r0=$(ticks $reader)
sleep "$IDLE"
echo "idle $IDLE s with $(ls -d $S/gateway-* | wc -l) slots: follower (root) $(( $(ticks $follower) - f0 )) ticks, reader (hermes) $(( $(ticks $reader) - r0 )) ticks; removed slots not yet deleted: $(ls -a $S | grep -c "^\.gw-gone-")"
n=$(ls $P | wc -l)
seq $((n + 1)) 1000 | sed s/^/r/ | (cd $P && xargs mkdir)
seq $((n + 1)) 1000 | sed "s|.*|$P/r&/SOUL.md|" | xargs touch
sleep 10
echo "rss with $(ls $P | wc -l) profiles, $(ls -d $S/gateway-* | wc -l) slots: follower (root) $(rss $follower) KiB, reader (hermes) $(rss $reader) KiB"
for ph in seq burst; do sed "s/.*: //" /tmp/errors.$ph | sort | uniq -c | sed "s/^/error $ph /"; done
' > "$out"
for phase in seq delete burst; do
  grep "^$phase " "$out" | cut -d' ' -f2 | sort -n | awk -v ph="$phase" '
    { v[NR] = $1 } END { if (NR == 0) { print ph ": no samples"; exit }
      h = int((NR + 1) / 2); q = int(NR * 0.99 + 0.5); if (q < 1) q = 1
      printf "%-7s n=%d min=%d ms p50=%d ms p99=%d ms max=%d ms\n", ph, NR, v[1], v[h], v[q], v[NR] }'
done
grep -E '^(idle|rss) ' "$out"
grep '^error ' "$out" | sed 's/^error \([a-z]*\) */failed s6-svc attempts (\1): /' || echo "failed s6-svc attempts: none"
echo "host load after: $(cut -d' ' -f1-3 /proc/loadavg)"
