package profile

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// WrapperToken is the script whose presence in a process's argv marks the
// container's main command.
const WrapperToken = "main-wrapper.sh"

// ContainerArgv finds the container's main command under procDir (/proc):
// the argv of the first process, PID 1 first and then the others in
// numeric order, that has a main-wrapper.sh token. It returns that argv as
// is (not stripped), or nil if no process has the token. Unreadable
// entries are skipped: a process may exit while it is being read.
func ContainerArgv(procDir string) []string {
	if argv := readCmdline(procDir, 1); hasWrapper(argv) {
		return argv
	}
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil
	}
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 || strconv.Itoa(pid) != e.Name() {
			continue
		}
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	for _, pid := range pids {
		if argv := readCmdline(procDir, pid); hasWrapper(argv) {
			return argv
		}
	}
	return nil
}

func readCmdline(procDir string, pid int) []string {
	data, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "cmdline"))
	if err != nil || len(data) == 0 {
		return nil
	}
	data = bytes.TrimSuffix(data, []byte{0})
	parts := bytes.Split(data, []byte{0})
	argv := make([]string, len(parts))
	for i, p := range parts {
		argv[i] = string(p)
	}
	return argv
}

// isToken reports whether arg names the program base: the token itself or
// any path whose last component is base (/opt/hermes/docker/main-wrapper.sh
// matches main-wrapper.sh; main-wrapper.sh.bak does not).
func isToken(arg, base string) bool {
	if arg == base {
		return true
	}
	i := len(arg) - len(base) - 1
	return i >= 0 && arg[i] == '/' && arg[i+1:] == base
}

func hasWrapper(argv []string) bool {
	for _, a := range argv {
		if isToken(a, WrapperToken) {
			return true
		}
	}
	return false
}

// StripArgv strips a container argv as the contract says: everything up to
// and including the first main-wrapper.sh token, then a leading
// entrypoint-dispatch.sh, then a leading hermes (each matched by its last
// path component). ok is false if argv has no main-wrapper.sh token.
func StripArgv(argv []string) (stripped []string, ok bool) {
	for i, a := range argv {
		if isToken(a, WrapperToken) {
			rest := argv[i+1:]
			if len(rest) > 0 && isToken(rest[0], "entrypoint-dispatch.sh") {
				rest = rest[1:]
			}
			if len(rest) > 0 && isToken(rest[0], "hermes") {
				rest = rest[1:]
			}
			return rest, true
		}
	}
	return nil, false
}

// IsDashboard reports whether a stripped argv runs the dashboard: such a
// container reconciles nothing.
func IsDashboard(stripped []string) bool {
	return len(stripped) > 0 && stripped[0] == "dashboard"
}

// IsLegacyGateway reports whether a stripped argv is the legacy
// "gateway run ..." command, supervised (no --no-supervise).
func IsLegacyGateway(stripped []string) bool {
	if len(stripped) < 2 || stripped[0] != "gateway" || stripped[1] != "run" {
		return false
	}
	for _, a := range stripped[2:] {
		if a == "--no-supervise" {
			return false
		}
	}
	return true
}
