#!/bin/sh
# bench/sealed/dx-storm.sh: what a `dx` storm by hermes costs the container,
# side by side for several images in one run (issue 16, item 3).
#
#   bench/sealed/dx-storm.sh [SLOTS] [STORM_SECONDS] IMAGE...
#       (e.g. 200 30 hermes-s6:real-3.2.3.0-test hermes-s6:real-i16b-3.2.3.0-test)
#
# For each IMAGE, in turn (the list may repeat images, to interleave them):
# boots it with HERMES_S6_MODE=sealed, creates SLOTS profiles as hermes (no
# state file: registered down, so only their loggers run, as in the issue),
# waits until every slot's log/ has a supervisor, then measures, from the
# container's own cpuacct cgroup (every process of the container: root's,
# and hermes's, the storm itself included, so an upper bound of root's):
#   idle   10 s with nothing happening;
#   storm  STORM_SECONDS of hermes writing `dx` into every gateway's and
#          log/'s control FIFO every 0.5 s (one `/command/s6-svc -dx` with
#          every slot, its only way in: the FIFOs are root:hermes 0620),
#          and each half of it (root takes stormed slots out for a while,
#          follow/guard.go: the second half is the steady state);
#   after  the 10 s after it;
#   rounds ROUNDS (env, default 5; 0 skips them) times: dx every slot once, then wait
#          until every root s6-supervise is back: container CPU per
#          supervisor restart, which holds on a loaded machine too (there
#          the storm phase cannot restart every supervisor every second),
#          and the cores it makes at s6-svscan's most, 2 x SLOTS restarts
#          a second.
# s6-svscan restarts an exited supervisor at most once a second, so the
# storm restarts about 2 x SLOTS supervisors a second, whatever the rate.
# Prints cores (CPU seconds per second) per phase, the root s6-supervise
# count at the end, and the host's load average (a shared machine: compare
# the images of one run, not runs).
set -eu
slots=${1:?usage: dx-storm.sh SLOTS STORM_SECONDS IMAGE...}
storm=${2:?usage: dx-storm.sh SLOTS STORM_SECONDS IMAGE...}
shift 2
[ $# -gt 0 ] || { echo "usage: dx-storm.sh SLOTS STORM_SECONDS IMAGE..." >&2; exit 100; }
c=hermes-s6-dx-storm-$$
trap 'docker rm -f -v "$c" >/dev/null 2>&1' EXIT INT TERM
for img; do
  docker rm -f -v "$c" >/dev/null 2>&1 || true
  docker run -d --name "$c" -e HERMES_S6_MODE=sealed "$img" >/dev/null
  i=0
  until docker exec -u hermes "$c" grep -q profile=default /opt/data/logs/container-boot.log 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 600 ] || { echo "$img: no boot after 60 s" >&2; docker logs "$c" >&2; exit 1; }
    sleep 0.1
  done
  docker exec -u hermes -e SLOTS="$slots" -e STORM="$storm" -e ROUNDS="${ROUNDS:-5}" -e IMG="$img" "$c" sh -c '
set -u
P=/opt/data/profiles S=/run/service
mkdir -p $P
i=1; while [ $i -le $SLOTS ]; do mkdir -p $P/dx$i && : > $P/dx$i/SOUL.md; i=$((i + 1)); done
i=0
until [ "$(ls -d $S/gateway-dx*/log/supervise/status 2>/dev/null | wc -l)" -ge "$SLOTS" ]; do
  i=$((i + 1)); [ $i -lt 1200 ] || { echo "slots not all supervised after 120 s" >&2; exit 1; }
  sleep 0.1
done
sleep 5
cg=/sys/fs/cgroup/cpuacct/cpuacct.usage
[ -r $cg ] || cg=/sys/fs/cgroup/cpu.stat
usage() { if [ "${cg##*/}" = cpu.stat ]; then awk "/^usage_usec/ { print \$2 * 1000 }" $cg; else cat $cg; fi; }
ns() { date +%s%N; }
cores() { awk -v u=$(( $3 - $1 )) -v t=$(( $4 - $2 )) "BEGIN { printf \"%.3f\", u / t }"; }
sups() { ps -u root -o comm= | grep -c "^s6-supervise"; }
want=$(sups)
u0=$(usage); t0=$(ns); sleep 10; u1=$(usage); t1=$(ns)
end=$(( $(date +%s) + STORM )) half=$(( $(date +%s) + STORM / 2 )) um=
while [ $(date +%s) -lt $end ]; do
  [ -n "$um" ] || [ $(date +%s) -lt $half ] || { um=$(usage); tm=$(ns); }
  /command/s6-svc -dx $S/gateway-dx* $S/gateway-dx*/log 2>/dev/null || :
  sleep 0.5
done
u2=$(usage); t2=$(ns)
sleep 10
u3=$(usage); t3=$(ns)
echo "$IMG: $SLOTS slots: idle $(cores $u0 $t0 $u1 $t1) cores, dx storm ${STORM}s $(cores $u1 $t1 $u2 $t2) cores (first half $(cores $u1 $t1 $um $tm), second half $(cores $um $tm $u2 $t2)), 10 s after $(cores $u2 $t2 $u3 $t3) cores"
# Per restart, whatever the machine'"'"'s load: ROUNDS times, dx every slot
# once and wait until every supervisor is back (s6-svscan restarts them
# 1 s later); container CPU over all rounds / restarts.
[ "$ROUNDS" -gt 0 ] || exit 0
i=0; until [ "$(sups)" -ge "$want" ]; do i=$((i + 1)); [ $i -lt 600 ] || break; sleep 0.1; done
u4=$(usage); r=0
# rounds DIRS...: container CPU (ns) for ROUNDS times dx on DIRS, each
# round waiting until every root supervisor is back. The wait polls ps once
# a second only (a ps walks every process: polled fast, it would cost more
# than what is measured).
rounds() {
  a=$(usage) r=0
  while [ $r -lt $ROUNDS ]; do
    /command/s6-svc -dx "$@" 2>/dev/null || :
    sleep 2
    i=0; until [ "$(sups)" -ge "$want" ]; do i=$((i + 1)); [ $i -lt 60 ] || { echo "supervisors not back after 60 s: $(sups) of $want" >&2; break; }; sleep 1; done
    r=$((r + 1))
  done
  echo $(( $(usage) - a ))
}
per() { awk -v u=$1 -v n=$2 "BEGIN { printf \"%.2f\", u / n / 1e6 }"; }
both=$(rounds $S/gateway-dx* $S/gateway-dx*/log)
gw=$(rounds $S/gateway-dx*)
idle=$(a=$(usage); sleep $((3 * ROUNDS)); echo $(( $(usage) - a )))
echo "  $ROUNDS rounds, container CPU per supervisor restart: gateway and log/ $(per $both $(( 2 * SLOTS * ROUNDS ))) ms, gateway (down: the supervisor alone) $(per $gw $(( SLOTS * ROUNDS ))) ms (idle over as long: $(per $idle $(( SLOTS * ROUNDS ))) ms); at s6-svscan'"'"'s most, one restart per service a second: $(awk -v u=$both -v n=$ROUNDS "BEGIN { printf \"%.2f\", u / n / 1e9 }") cores; root s6-supervise $(sups) of $want"
'
  echo "  host load: $(cut -d' ' -f1-3 /proc/loadavg)"
  docker rm -f -v "$c" >/dev/null
done
