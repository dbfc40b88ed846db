package follow

import (
	"sync"
	"time"
)

// DefaultScanTimeout bounds one scan (RootConfig.Scan): s6-svscan reading
// its control FIFO, scanning, and reading it again.
const DefaultScanTimeout = 10 * time.Second

// scanGate keeps root's changes to the scandir and s6-svscan's scans apart.
//
// s6-svscan knows services by device and inode, and a scan that stops
// early never marks the services it did not reach as gone. On 2.13 and
// 2.15 a scan stops at an entry it cannot stat (a slot renamed away
// between its readdir and its stat), and at the first service past its
// table's size. Then a removed slot stays active in its table: it keeps
// restarting a supervisor that cannot chdir into the directory ("unable
// to chdir", hundreds a second under churn), the entry is never freed, and
// once enough have leaked, every later scan stops at "too many services"
// and no new slot is ever supervised. Root caused the first by renaming
// slots in and out while s6-svscan was scanning, and could not tell when a
// scan it had asked for was over.
//
// So every change root makes to the scandir's visible names (a slot
// renamed in or out) is made under mu, and a scan (s6.Scan: it returns
// when the scan is over) holds mu for its whole length: no scan root asks
// for ever sees the scandir change under it. gen counts finished scans;
// a change made at gen g is known to s6-svscan once gen > g.
type scanGate struct {
	mu   sync.Mutex // held by a change, or by a whole scan
	scan func() error
	gen  uint64 // finished scans (under mu)
}

func newScanGate(scan func() error) *scanGate { return &scanGate{scan: scan} }

// change runs f, a change to the scandir's names, between scans; it
// returns the generation to pass to scanSince.
func (g *scanGate) change(f func() error) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen, f()
}

// scanSince makes sure a whole scan has run after generation since: it
// returns at once if one has (another change's scan covered this one),
// else runs one. Concurrent callers queue on mu, so a burst of removals
// costs s6-svscan a scan or two, not one each.
func (g *scanGate) scanSince(since uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen > since {
		return nil
	}
	if err := g.scan(); err != nil {
		return err
	}
	g.gen++
	return nil
}

// generation is the number of scans over so far.
func (g *scanGate) generation() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}
