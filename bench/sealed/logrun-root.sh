#!/bin/sh
# bench/sealed/logrun-root.sh: root's CPU for one start of a slot logger's
# log/run, before (with-contenv sh, id, three s6-setuidgid: the open-mode
# template, which sealed slots used until issue 16) and after (execline,
# s6-applyuidgid first), side by side in one container (issue 16, item 3).
#
#   bench/sealed/logrun-root.sh [IMAGE] [N]   (defaults: hermes-s6:e2e 300)
#
# What runs after the drop to hermes is replaced by /bin/true in both, so
# that the container's CPU (cpuacct) measures root's part of a start: the
# part a dx storm multiplies (each restart of a logger's supervisor runs
# log/run again). Each is run N times from a root sh loop; a loop of N
# /bin/true (the loop's own fork and exec) is subtracted. Prints ms per
# start. A supervisor's own restart (s6-svscan's spawn, s6-supervise's
# start) comes on top: bench/sealed/dx-storm.sh measures it.
set -eu
img=${1:-hermes-s6:e2e}
n=${2:-300}
c=hermes-s6-logrun-root-$$
trap 'docker rm -f -v "$c" >/dev/null 2>&1' EXIT INT TERM
docker run -d --name "$c" -e HERMES_S6_MODE=sealed "$img" >/dev/null
i=0
until docker exec "$c" test -e /run/service/gateway-default/log/supervise/status 2>/dev/null; do
  i=$((i + 1)); [ "$i" -lt 600 ] || { echo "no boot after 60 s" >&2; exit 1; }
  sleep 0.1
done
sleep 2
# As root: this is root's part of a logger start, run by hand.
docker exec -e N="$n" -e IMG="$img" "$c" sh -c '
set -eu
# As under s6-supervise: with-contenv runs execline programs by name.
PATH=/command:$PATH
uid=$(id -u hermes) gid=$(id -g hermes)
cat > /tmp/before <<EOF
#!/command/with-contenv sh
set -e
dir="\${HERMES_HOME:-/opt/data}/logs/gateways/bench"
if [ "\$(id -u)" -eq 0 ]; then
  /command/s6-setuidgid hermes /bin/true
  /command/s6-setuidgid hermes /bin/true
  exec /command/s6-setuidgid hermes /bin/true
fi
EOF
cat > /tmp/after <<EOF
#!/command/execlineb -P
/command/s6-applyuidgid -u $uid -g $gid -G $gid
/bin/true
EOF
chmod 755 /tmp/before /tmp/after
cg=/sys/fs/cgroup/cpuacct/cpuacct.usage
[ -r $cg ] || cg=/sys/fs/cgroup/cpu.stat
usage() { if [ "${cg##*/}" = cpu.stat ]; then awk "/^usage_usec/ { print \$2 * 1000 }" $cg; else cat $cg; fi; }
loop() { i=0; u0=$(usage); while [ $i -lt $N ]; do "$1"; i=$((i + 1)); done; echo $(( $(usage) - u0 )); }
for round in 1 2; do
  base=$(loop /bin/true); before=$(loop /tmp/before); after=$(loop /tmp/after)
  awk -v b=$base -v x=$before -v y=$after -v n=$N -v img="$IMG" -v r=$round "BEGIN {
    printf \"%s round %d: root CPU per log/run start: before %.2f ms, after %.2f ms (loop overhead %.2f ms subtracted)\\n\", img, r, (x - b) / n / 1e6, (y - b) / n / 1e6, b / n / 1e6 }"
done
'
echo "  host load: $(cut -d' ' -f1-3 /proc/loadavg)"
