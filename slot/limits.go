package slot

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SvscanNameMax is s6-svscan's default limit on a service directory's
// name: from s6 2.13 (-L name_max, default 251) a longer entry is skipped
// at every scan with "name too long - not spawning service" (seen on
// 2.13.1, 2.15.1 and s6-overlay 3.2.3.0/3.2.3.2's s6; s6 2.11 has no such
// limit). s6-svscan keeps name_max+5 bytes per service for "<name>/log".
const SvscanNameMax = 251

// NameLimit is what bounds a slot's name in one scandir. A slot needs
// gateway-<name> and its staging name .gw-<name>.tmp (as long, never
// longer) to fit the filesystem, and gateway-<name> to fit s6-svscan's
// limit; everything inside a slot (log/, supervise/, .<file>.tmp) and the
// removed slots' .gw-gone-N names are short.
type NameLimit struct {
	FS     int // the scandir filesystem's file name limit (statfs f_namelen)
	Svscan int // s6-svscan's -L (SvscanNameMax unless given)
}

// MaxName is the longest profile name that makes a working slot.
func (l NameLimit) MaxName() int {
	// len(TmpName(n)) == len(DirName(n)): the staging name costs nothing.
	return min(l.FS, l.Svscan) - len(Prefix)
}

// String names the limit for log lines.
func (l NameLimit) String() string {
	return fmt.Sprintf("at most %d bytes: %s<name> must fit the scandir's file names (%d bytes) and s6-svscan's name limit (%d bytes)",
		l.MaxName(), Prefix, l.FS, l.Svscan)
}

// ScandirNameLimit computes the limit once, at start: the filesystem's
// from statfs(2) on scandir, s6-svscan's from PID 1's command line under
// proc (s6-overlay runs s6-svscan as PID 1; -L raises or lowers its limit)
// when PID 1 is s6-svscan, else SvscanNameMax.
func ScandirNameLimit(scandir, proc string) (NameLimit, error) {
	l := NameLimit{FS: 255, Svscan: SvscanNameMax}
	var st unix.Statfs_t
	if err := unix.Statfs(scandir, &st); err != nil {
		return l, &os.PathError{Op: "statfs", Path: scandir, Err: err}
	}
	if st.Namelen > 0 {
		l.FS = int(st.Namelen)
	}
	if comm, err := os.ReadFile(filepath.Join(proc, "1", "comm")); err == nil && strings.TrimSpace(string(comm)) == "s6-svscan" {
		if cmdline, err := os.ReadFile(filepath.Join(proc, "1", "cmdline")); err == nil {
			l.Svscan = SvscanNameMaxOf(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"))
		}
	}
	return l, nil
}

// SvscanNameMaxOf reads s6-svscan's name limit from its argv, as its
// getopt does ("c:C:L:t:d:X:", options end at "--" or the first operand),
// with its clamping to 11..1019.
func SvscanNameMaxOf(argv []string) int {
	n := SvscanNameMax
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			if !strings.ContainsRune("cCLtdX", rune(a[j])) {
				continue // a flag without argument (none today)
			}
			val := a[j+1:]
			if val == "" && i+1 < len(argv) {
				i++
				val = argv[i]
			}
			if a[j] == 'L' {
				if v, err := strconv.Atoi(val); err == nil {
					n = min(max(v, 11), 1019)
				}
			}
			break
		}
	}
	return n
}
