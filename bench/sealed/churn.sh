#!/bin/bash
# churn.sh SECS: the churn of issue 16 by hand, in a sealed container of a
# test image (IMG, default hermes-s6:e2e), then how long root and s6-svscan
# take to settle. As hermes: 399 profiles created and deleted every 2 s for
# SECS seconds; with FORGE=1, root also writes forged snapshots of 401 and of
# 5 slots into the reader's pipe every second (as TestSealedChurn does, but
# for the whole churn). Settled: only gateway-default and gateway-keep in the
# scandir, no removed slot left (.gw-gone-*), exactly their 4 root
# s6-supervise, both slots answering s6-svstat. The check is cheap (one
# exec, no s6-svstat per slot) so that it does not itself slow the
# container down. Prints s6-svscan's warnings and root's scan timeouts from
# the container's log; KEEP=1 keeps the container. Needs --cap-add
# SYS_PTRACE only for FORGE.
set -eu
img=${IMG:-hermes-s6:e2e}
secs=${1:-30}
c=$(docker run -d -e LOG_LEVEL="${LOG_LEVEL:-info}" -e HERMES_S6_MODE=sealed --cap-add SYS_PTRACE "$img")
trap '[ -n "${KEEP:-}" ] || docker rm -f "$c" >/dev/null' EXIT
echo "container $c"
sleep 5
docker exec -u hermes "$c" sh -c 'P=/opt/data/profiles; mkdir -p $P/keep && : > $P/keep/SOUL.md'
sleep 2
if [ -n "${FORGE:-}" ]; then
  docker exec "$c" sh -c '{ echo snapshot; echo "p default 1"; echo "p keep 1"; i=1; while [ $i -le 399 ]; do echo "p f$i 1"; i=$((i+1)); done; echo end; } > /tmp/big
{ echo snapshot; echo "p default 1"; echo "p keep 1"; echo "p f1 1"; echo "p f2 0"; echo "p f3 1"; echo end; } > /tmp/small'
  docker exec -d "$c" sh -c "end=\$(( \$(date +%s) + $secs )); while [ \$(date +%s) -lt \$end ]; do for f in /tmp/big /tmp/small; do r=\$(pgrep -u hermes -f '^reconcile-profiles --internal-reader') && cat \$f > /proc/\$r/fd/1 2>/dev/null; sleep 1; done; done"
fi
docker exec -u hermes "$c" sh -c "cd /opt/data/profiles
L=\$(i=1; while [ \$i -le 399 ]; do echo c\$i; i=\$((i+1)); done)
end=\$(( \$(date +%s) + $secs )); n=0
while [ \$(date +%s) -lt \$end ]; do
  mkdir -p \$L 2>/dev/null; for d in \$L; do : > \$d/SOUL.md; done; sleep 1
  rm -rf \$L; sleep 1; n=\$((n+1))
done; echo churn rounds \$n"
t0=$(date +%s%N)
settled=
for _ in $(seq 1 600); do
  out=$(docker exec "$c" sh -c 'S=/run/service; slots=$(ls $S | grep -c ^gateway-); gone=$(ls -A $S | grep -c ^.gw-gone-); sup=$(ps -u root -o args= | grep -c "^s6-supervise gateway-")
echo slots=$slots gone=$gone rootsup=$sup
[ $slots = 2 ] && [ $gone = 0 ] && [ $sup = 4 ] && /command/s6-svstat $S/gateway-keep >/dev/null && /command/s6-svstat $S/gateway-default/log >/dev/null && echo settled') || true
  case $out in *settled*) settled=$(( ($(date +%s%N) - t0) / 1000000 )); break ;; esac
  sleep 0.2
done
log=$(docker logs "$c" 2>&1)
for w in "another instance" "unable to chdir" "too many services" "unable to stat" "still exists"; do
  printf '%s: %s; ' "$w" "$(printf '%s\n' "$log" | grep -E 's6-svscan|s6-supervise' | grep -c "$w" || true)"
done
printf 'scan timeouts: %s\n' "$(printf '%s\n' "$log" | grep -c 'did not read its control FIFO in time' || true)"
echo "settled after ${settled:-never (600 checks)} ms; last: $out"
