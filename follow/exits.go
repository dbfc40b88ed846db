package follow

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Root hears a slot's supervisors exit the way s6's own tools hear a
// service's events: it subscribes to the slot's event/ fifodir (and its
// log/'s), where s6-supervise writes one byte per event to every
// subscriber's FIFO, 'x' as it exits (ftrigw_notify; s6-svwait reads the
// same). So an exit costs root one read, and a slot nobody touches costs
// it nothing: no polling, no /proc walk. hermes cannot forge an event: in
// sealed mode event/ is root's (03730 root:root, as s6-supervise makes it),
// and only root processes write into it.
//
// The FIFO's name is s6's subscriber format, which s6-supervise checks
// before writing: "ftrig1:@" + a TAI64N stamp (24 hex digits) + ":" + 6
// characters, 39 bytes in all (s6 2.11 to 2.15, ftrigw_notifyb_nosig).
// One left by a crash is unlinked by s6-supervise itself, the first time it
// finds no reader on it.

// exitSub is root's subscription to one slot's exits.
type exitSub struct {
	files []*os.File // each one's Name() is its FIFO's path
}

// subscribeExits subscribes to the event fifodirs of dirs (a slot and its
// log/): every 'x' s6-supervise writes there sends name on out (dropped
// when out is full: the guard needs a rate, not every exit).
func subscribeExits(name string, dirs []string, out chan<- string) (*exitSub, error) {
	s := &exitSub{}
	for _, d := range dirs {
		f, err := subscribeFifodir(filepath.Join(d, "event"))
		if err != nil {
			s.close()
			return nil, err
		}
		s.files = append(s.files, f)
		go readExits(f, name, out)
	}
	return s, nil
}

// openFifodir opens fifodir (an event/ directory) without following a
// symlink.
func openFifodir(fifodir string) (int, error) {
	dfd, err := unix.Open(fifodir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: fifodir, Err: err}
	}
	return dfd, nil
}

// subscribeFifodir makes a subscriber FIFO in fifodir and opens it for
// reading, without blocking and without following a symlink.
func subscribeFifodir(fifodir string) (*os.File, error) {
	dfd, err := openFifodir(fifodir)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	name, err := ftrigName(time.Now())
	if err != nil {
		return nil, err
	}
	p := filepath.Join(fifodir, name)
	if err := unix.Mkfifoat(dfd, name, 0o600); err != nil {
		return nil, &os.PathError{Op: "mkfifo", Path: p, Err: err}
	}
	// Read and write: the FIFO never reads as closed between two
	// notifications (s6-supervise opens, writes and closes it each time).
	fd, err := unix.Openat(dfd, name, unix.O_RDWR|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Unlinkat(dfd, name, 0)
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	// Non-blocking: os.NewFile hands it to Go's poller, so a waiting read
	// costs no thread.
	return os.NewFile(uintptr(fd), p), nil
}

// ftrigName is a subscriber FIFO name as s6's ftrig1_make makes it.
func ftrigName(now time.Time) (string, error) {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("a subscriber name for an event fifodir: %w", err)
	}
	for i := range rnd {
		rnd[i] = alnum[int(rnd[i])%len(alnum)]
	}
	// TAI64N: 2^62 + TAI seconds (UTC + 10 s, then the leap seconds s6
	// adds; only the format matters here), then the nanoseconds.
	return fmt.Sprintf("ftrig1:@%016x%08x:%s", uint64(1)<<62+uint64(now.Unix())+10, now.Nanosecond(), rnd[:]), nil
}

// readExits sends name on out for each read holding an 'x', until f is
// closed.
func readExits(f *os.File, name string, out chan<- string) {
	buf := make([]byte, 64)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		if bytes.IndexByte(buf[:n], 'x') >= 0 {
			select {
			case out <- name:
			default:
			}
		}
	}
}

// close ends the subscription: its readers return, its FIFOs go.
func (s *exitSub) close() {
	if s == nil {
		return
	}
	for _, f := range s.files {
		_ = f.Close()
		// Through the directory, opened as it was to make the FIFO.
		if dfd, err := openFifodir(filepath.Dir(f.Name())); err == nil {
			_ = unix.Unlinkat(dfd, filepath.Base(f.Name()), 0)
			unix.Close(dfd)
		}
	}
	s.files = nil
}
