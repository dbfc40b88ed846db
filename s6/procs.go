package s6

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RootProcsIn lists the processes running as root whose working directory
// is one of dirs (absolute, clean paths), reading proc (a procfs mount,
// "/proc" in production).
//
// It is how root knows that no s6-supervise still runs in a service
// directory it has renamed out of the scandir, before deleting it. The
// control FIFO cannot say so: s6-svscan spawns s6-supervise by name, and
// the new process chdirs into the service directory first and opens
// supervise/control only later. Under load that window lasted over a
// second (TestSealedAttacksInContainer, create/delete churn of one name):
// a slot renamed out then looked unsupervised, was deleted, and left a
// root s6-supervise running in a deleted directory. Once a directory is
// renamed to a name s6-svscan ignores, no new supervisor can enter it (s6
// resolves service names from the scandir), so the processes this finds
// only go away.
//
// Only processes whose effective UID is root count: a service's own
// processes run as the user after dropping privileges, may outlive their
// supervisor, and must not be able to keep root from ever deleting the
// directory. A process that exits while it is read is skipped; zombies
// have no working directory.
func RootProcsIn(proc string, dirs ...string) ([]int, error) {
	byDir, err := RootProcsByDir(proc, dirs)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, d := range dirs {
		pids = append(pids, byDir[d]...)
		delete(byDir, d) // a directory named twice counts once
	}
	return pids, nil
}

// RootProcsByDir is RootProcsIn for many directories at once, in one walk
// of proc: the root processes found, by working directory (only dirs that
// have one are keys). Removing a batch of slots costs one walk, not one per
// slot.
func RootProcsByDir(proc string, dirs []string) (map[string][]int, error) {
	want := set(dirs)
	pids, err := processes(proc)
	if err != nil {
		return nil, err
	}
	out := map[string][]int{}
	for _, pid := range pids {
		p := filepath.Join(proc, strconv.Itoa(pid))
		cwd, err := os.Readlink(p + "/cwd")
		if err != nil || !want[cwd] {
			continue
		}
		if euid, ok := effectiveUID(p); ok && euid == 0 {
			out[cwd] = append(out[cwd], pid)
		}
	}
	return out, nil
}

// effectiveUID reads the effective UID from a process's status file (the
// owner of /proc/<pid> is root for any process that made itself
// non-dumpable, so it cannot be trusted for this).
func effectiveUID(procPid string) (uint64, bool) {
	b, err := os.ReadFile(procPid + "/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				return 0, false
			}
			u, err := strconv.ParseUint(f[1], 10, 32)
			return u, err == nil
		}
	}
	return 0, false
}

// RootSupervisorsOf reports which of names (service directory names
// relative to the scandir, "gateway-a" or "gateway-a/log") have a root
// s6-supervise process, read from proc: argv[0] ending in s6-supervise and
// argv[1] the name, as s6-svscan spawns it. A supervisor s6-svscan has
// forked is one from the exec on, before it has made its way into the
// directory or opened its control FIFO (which can take seconds on a loaded
// machine): the control FIFO alone cannot tell a slow supervisor from none.
func RootSupervisorsOf(proc string, names []string) (map[string]bool, error) {
	want := set(names)
	pids, err := processes(proc)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, pid := range pids {
		p := filepath.Join(proc, strconv.Itoa(pid))
		b, err := os.ReadFile(p + "/cmdline")
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(argv) < 2 || filepath.Base(argv[0]) != "s6-supervise" || !want[argv[1]] {
			continue
		}
		if euid, ok := effectiveUID(p); ok && euid == 0 {
			out[argv[1]] = true
		}
	}
	return out, nil
}

// processes lists the pids in proc.
func processes(proc string) ([]int, error) {
	f, err := os.Open(proc)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, &os.PathError{Op: "readdir", Path: proc, Err: err}
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func set(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, i := range items {
		m[i] = true
	}
	return m
}
