package e2e

// rootProcessCheck defines, for a sh script run as root in the container
// (with CAP_SYS_PTRACE: /proc/PID/exe of a non-dumpable process, such as
// the follower, is unreadable without it), `procs | judge`: one line
// "pid=N exe=E args=A sup=S (why)" per root process (real or effective UID
// 0) that is not the image's own.
//
// The image's own processes are not known by name: a process hermes got
// root to run could call itself s6-supervise or perm-watcher. They differ
// from the stand-in's (Debian's s6 in /usr/bin, `sleep infinity` services)
// to s6-overlay's (s6 in /package/admin/<pkg>-<version>/command,
// s6-linux-init-shutdownd, s6rc-oneshot-runner's s6-ipcserverd, s6-sudod
// and s6-rc-oneshot-run while a oneshot runs). A root process passes only
// if both hold:
//
//  1. Its binary, /proc/PID/exe (the kernel's resolved path), is a regular
//     file that is not deleted and that, with every directory above it, is
//     root's and not writable by group or others: nothing hermes wrote,
//     replaced, renamed or hard-linked into place. A planted binary fails
//     here whatever its name.
//  2. It is in the baseline: the first call (after boot, before any attack)
//     writes every root process's identity, "exe=E args=A sup=S", into
//     /root/.e2e-root-processes (root's 0700 home: out of hermes's reach),
//     where S is the working directory of the nearest root s6-supervise
//     above it (a child of PID 1 running PID 1's own s6-supervise binary),
//     "pid1" for PID 1, "self:DIR" for a supervisor (DIR: the service
//     directory it runs), "-" for none. So an interpreter running a planted
//     script (exe /bin/sh, args naming the script), a program of the image
//     started with other arguments, or one started under another service
//     (a service hermes made) is not in it. The one kind of root process
//     that comes and goes by design is a slot's supervisor: a child of PID
//     1 running PID 1's s6-supervise binary with the arguments
//     `s6-supervise gateway-NAME[/log]` and /run/service/gateway-NAME[/log]
//     as its working directory; the scandir's content is checked apart.
//
// The check's own processes (this shell and what it runs) are left out.
// Which binary a process runs is read from /proc, never from ps's comm.
const rootProcessCheck = `B=/root/.e2e-root-processes
# trusted FILE: FILE and every directory above it are root's and not
# writable by group or others.
trusted() {
  case $1 in /*) ;; *) return 1 ;; esac
  case $1 in *' (deleted)') return 1 ;; esac
  [ -f "$1" ] && [ ! -L "$1" ] || return 1
  f=$1
  while :; do
    set -- $(stat -c '%u %a' "$f" 2>/dev/null)
    [ "$1" = 0 ] && [ $((0$2 & 022)) = 0 ] || return 1
    [ "$f" = / ] && return 0
    f=${f%/*}; [ -n "$f" ] || f=/
  done
}
# procs: "pid<TAB>exe<TAB>slot<TAB>identity" per root process.
procs() {
  { find /proc/[0-9]*/exe /proc/[0-9]*/cwd -maxdepth 0 -printf 'L\t%p\t%l\n' 2>/dev/null
    ps -eo pid=,ppid=,ruid=,euid=,args= | sed 's/^/P /'
  } | awk -F'\t' -v self=$$ '
  $1 == "L" { split($2, q, "/"); if ($3 != "") { if (q[4] == "exe") exe[q[3]] = $3; else cwd[q[3]] = $3 }; next }
  {
    l = substr($0, 3); split(l, w, " "); p = w[1]; pp[p] = w[2]; root[p] = (w[3] == 0 || w[4] == 0)
    a = l; sub(/^ *[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ */, "", a); args[p] = a; order[++n] = p
  }
  END {
    sv = exe[1]; sub(/[^\/]*$/, "s6-supervise", sv)
    for (i = 1; i <= n; i++) {
      p = order[i]
      if (!root[p]) continue
      mine = 0; a = p
      for (k = 0; k < 64 && a > 0; k++) { if (a == self) { mine = 1; break }; a = pp[a] }
      if (mine) continue
      s = "-"; a = pp[p]
      for (k = 0; k < 64 && a > 1; k++) { if (exe[a] == sv && pp[a] == 1 && root[a]) { s = cwd[a]; break }; a = pp[a] }
      if (p == 1) s = "pid1"
      e = (p in exe) ? exe[p] : "-"
      if (e == sv) s = "self:" cwd[p]
      slot = (e == sv && pp[p] == 1 && args[p] ~ /^s6-supervise gateway-[a-z0-9][a-z0-9_-]*(\/log)?$/ && cwd[p] == "/run/service/" substr(args[p], 14))
      printf "%s\t%s\t%d\texe=%s args=%s sup=%s\n", p, e, slot, e, args[p], s
    }
  }'
}
# judge: the lines of procs that are not the image's own, with why. A
# list without PID 1 means the check itself is broken: that must fail too.
judge() {
  ok=" " seen1=
  while IFS='	' read -r p e slot id; do
    [ "$p" = 1 ] && seen1=1
    if [ "$e" = - ]; then
      [ -e /proc/$p ] && echo "pid=$p $id (its binary cannot be read)"
      continue
    fi
    case $ok in *" $e "*) ;; *)
      if trusted "$e"; then ok="$ok$e "; else echo "pid=$p $id (its binary is not root-only: hermes could have written it)"; continue; fi ;;
    esac
    [ "$slot" = 1 ] && continue
    grep -qxF -- "$id" "$B" || echo "pid=$p $id (not one of the image's root processes seen after boot)"
  done
  [ -n "$seen1" ] || echo "the root process check lists no PID 1: it is broken"
}
[ -s "$B" ] || procs | cut -f4 | sort -u > "$B"
`
