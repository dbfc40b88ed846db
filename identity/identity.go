// Package identity resolves the unprivileged user by name at run time and
// drops a root process to it.
//
// The hermes image creates hermes as 10000:10000, but a boot script may remap
// it (PUID/PGID style), so the numbers are never baked in: they are read from
// the user database each time a program starts.
package identity

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// ErrNoSuchUser is returned (wrapped) when the user database has no such name.
var ErrNoSuchUser = errors.New("no such user")

// Identity is a resolved user: its ids and supplementary groups.
type Identity struct {
	Name   string
	UID    int
	GID    int
	Groups []int // supplementary groups, including GID
	Home   string
}

// Lookup resolves name through the user database (/etc/passwd and
// /etc/group; the binaries are static, so NSS modules are not consulted).
func Lookup(name string) (Identity, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return Identity{}, fmt.Errorf("user %q: %w: create it (useradd) or pass --user with an existing name", name, ErrNoSuchUser)
		}
		return Identity{}, fmt.Errorf("user %q: reading the user database: %w", name, err)
	}
	id := Identity{Name: u.Username, Home: u.HomeDir}
	if id.UID, err = strconv.Atoi(u.Uid); err != nil {
		return Identity{}, fmt.Errorf("user %q: uid %q is not numeric", name, u.Uid)
	}
	if id.GID, err = strconv.Atoi(u.Gid); err != nil {
		return Identity{}, fmt.Errorf("user %q: gid %q is not numeric", name, u.Gid)
	}
	gids, err := u.GroupIds()
	if err != nil {
		gids = []string{u.Gid}
	}
	seen := map[int]bool{}
	for _, g := range append([]string{u.Gid}, gids...) {
		n, err := strconv.Atoi(g)
		if err != nil || seen[n] {
			continue
		}
		seen[n] = true
		id.Groups = append(id.Groups, n)
	}
	return id, nil
}

// Drop switches every thread of this process to id: supplementary groups
// first, then real/effective/saved gid, then uid (the order matters: once
// the uid is gone, the process may no longer change its groups). It then
// checks that root cannot be regained, so a partial drop never goes
// unnoticed.
func Drop(id Identity) error {
	if id.UID == 0 {
		return fmt.Errorf("refusing to drop to user %q: it is UID 0", id.Name)
	}
	// syscall.Setgroups/Setresgid/Setresuid apply to all threads since Go
	// 1.16 (they use AllThreadsSyscall), which a Go program needs: any
	// goroutine may run on any thread.
	if err := syscall.Setgroups(id.Groups); err != nil {
		return fmt.Errorf("setgroups(%v) for %s: %w", id.Groups, id.Name, err)
	}
	if err := syscall.Setresgid(id.GID, id.GID, id.GID); err != nil {
		return fmt.Errorf("setresgid(%d) for %s: %w", id.GID, id.Name, err)
	}
	if err := syscall.Setresuid(id.UID, id.UID, id.UID); err != nil {
		return fmt.Errorf("setresuid(%d) for %s: %w", id.UID, id.Name, err)
	}
	if err := syscall.Setresuid(0, 0, 0); err == nil {
		return fmt.Errorf("dropped to %s (uid %d) but could regain root: refusing to continue", id.Name, id.UID)
	}
	if os.Geteuid() != id.UID || os.Getegid() != id.GID {
		return fmt.Errorf("dropped to %s but running as uid %d gid %d", id.Name, os.Geteuid(), os.Getegid())
	}
	return nil
}
