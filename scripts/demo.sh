#!/bin/sh
# The demo an operator tries first: build the hermetic test image, boot a
# container on a volume holding a few sample profiles, and show, as hermes,
# what reconcile-profiles registered and what hermes can do with it.
#
# Usage: scripts/demo.sh          (make demo)
#        scripts/demo.sh --clean  (make demo-clean: remove the container and volume)
# Env:   HERMES_S6_E2E_IMAGE  image tag (default hermes-s6:e2e, built by make image)
set -eu

image=${HERMES_S6_E2E_IMAGE:-hermes-s6:e2e}
name=hermes-s6-demo
volume=hermes-s6-demo-data

clean() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
}
if [ "${1:-}" = "--clean" ]; then clean; echo "removed $name and $volume"; exit 0; fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_hermes() { docker exec -u hermes "$name" sh -c "$1"; }

clean
step "seeding volume $volume with sample profiles (as hermes)"
# alpha wants to run, beta is stopped, gamma's state file is corrupt,
# "Bad Name" is not a valid profile name: the last two must not stop the others.
docker run --rm -u hermes -v "$volume:/opt/data" --entrypoint sh "$image" -c '
  set -e; cd /opt/data
  printf "{\"gateway_state\":\"running\"}" > gateway_state.json
  for p in alpha beta gamma "Bad Name"; do mkdir -p "profiles/$p"; : > "profiles/$p/SOUL.md"; done
  printf "{\"desired_state\":\"running\",\"gateway_state\":\"stopped\"}" > profiles/alpha/gateway_state.json
  printf "{\"gateway_state\":\"stopped\"}" > profiles/beta/gateway_state.json
  printf "{not json" > profiles/gamma/gateway_state.json
  echo 4242 > profiles/alpha/gateway.pid
  ls -1 profiles'

step "booting $name (PID 1: s6-svscan)"
docker run -d --name "$name" -v "$volume:/opt/data" "$image" >/dev/null
i=0
until docker exec "$name" grep -q 'profile=default' /opt/data/logs/container-boot.log 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 300 ]; then echo "boot reconcile did not finish in 30 s; docker logs $name:" >&2; docker logs "$name" >&2; exit 1; fi
  sleep 0.1
done

step "container-boot.log (written by reconcile-profiles, as hermes)"
as_hermes 'cat "$HERMES_HOME/logs/container-boot.log"'

step "slots in /run/service, as hermes"
as_hermes 'ls -la /run/service /run/service/.s6-svscan'

step "s6-svstat of each gateway, as hermes"
as_hermes 'for s in /run/service/gateway-*; do printf "%-32s %s\n" "${s##*/}" "$(s6-svstat "$s")"; done'

step "perm-watcher --check, as hermes: can hermes control every service?"
as_hermes 'perm-watcher --check' || true

step "as hermes: s6-svc -u gateway-beta, wait until up (s6-svwait -u), s6-svstat"
as_hermes 's6-svc -u /run/service/gateway-beta && s6-svwait -u -t 5000 /run/service/gateway-beta && s6-svstat /run/service/gateway-beta'

step "as hermes: s6-svscanctl -a /run/service (rescan)"
as_hermes 's6-svscanctl -a /run/service && echo ok'

cat <<MSG

The container is still running. Try, as the unprivileged user:
  docker exec -u hermes $name s6-svc -d /run/service/gateway-alpha
  docker exec -u hermes $name s6-svstat /run/service/gateway-alpha
  docker exec -u hermes $name perm-watcher --check
  docker logs $name          # both programs' JSON logs
Remove it with: make demo-clean
MSG
