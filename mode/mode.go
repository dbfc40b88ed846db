// Package mode is the switch between open and sealed mode, read the same
// way by both programs (flag --mode, else env HERMES_S6_MODE, else open).
//
// Open mode is the contract's default: hermes owns the scandir, so hermes
// is root-equivalent by s6's design. Sealed mode keeps every control
// hermes needs (s6-svc, s6-svstat on its gateways and static services) and
// takes that equivalence away: the scandir and every slot stay root's, and
// gateway slots follow the profiles continuously (reconcile-profiles
// --follow), with HERMES_HOME read only by a process running as hermes.
package mode

import (
	"fmt"
	"strings"
)

// Env is the container environment variable that selects the mode; s6-rc
// scripts pass it through with-contenv.
const Env = "HERMES_S6_MODE"

// Mode is open or sealed.
type Mode string

// Modes.
const (
	Open   Mode = "open"
	Sealed Mode = "sealed"
)

// Parse accepts "open" and "sealed" (surrounding blanks ignored; empty
// means open, so an unset variable is the default). Anything else is an
// error: a typo must not silently leave a container open.
func Parse(s string) (Mode, error) {
	switch v := strings.TrimSpace(s); v {
	case "", string(Open):
		return Open, nil
	case string(Sealed):
		return Sealed, nil
	default:
		return "", fmt.Errorf("unknown mode %q (from --mode or %s): use open or sealed", s, Env)
	}
}

// FromFlagOrEnv is the flag's value if given, else getenv(Env).
func FromFlagOrEnv(flagValue string, flagSet bool, getenv func(string) string) (Mode, error) {
	if flagSet {
		return Parse(flagValue)
	}
	return Parse(getenv(Env))
}
