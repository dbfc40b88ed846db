package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hermes-s6/hermes-s6/mode"
	"github.com/hermes-s6/hermes-s6/perms"
	"github.com/hermes-s6/hermes-s6/permwatch"
)

// TestParseArgs: every way the command line can be wrong exits 100 with a
// message that names the problem; good command lines parse to the config
// Run gets. No root needed: the effective UID is an argument.
func TestParseArgs(t *testing.T) {
	const root, user = 0, 10000
	tests := []struct {
		name     string
		args     []string
		euid     int
		code     int
		exit     bool
		stderr   []string // substrings of stderr
		stdout   []string // substrings of stdout
		validate func(t *testing.T, o options)
	}{
		{name: "defaults", euid: root, validate: func(t *testing.T, o options) {
			c := o.cfg
			if c.Scandir != "/run/service" || c.User != "hermes" || c.Policy != perms.PolicyOwner || c.Once || o.check || o.notifyFD != -1 {
				t.Errorf("defaults: %+v check=%v notify=%d", c, o.check, o.notifyFD)
			}
			if o.nice != -10 {
				t.Errorf("default --nice %d, want -10", o.nice)
			}
			if c.Resync != 5*time.Minute {
				t.Errorf("default --resync %v, want 5m (an idle 60 s window must hold no full pass)", c.Resync)
			}
			if strings.Join(c.Exclude, ",") != "s6rc-*,s6-linux-*,s6-svscan-log,perm-watcher,profile-follower" {
				t.Errorf("default excludes %v", c.Exclude)
			}
		}},
		{name: "all flags", euid: root, args: []string{"--scandir", "/x", "--user", "bob", "--policy", "group", "--exclude", "a*", "--exclude", "b",
			"--no-default-excludes", "--once", "--resync", "0", "--degraded-interval", "250ms", "--log-format", "console", "--log-level", "debug"},
			validate: func(t *testing.T, o options) {
				c := o.cfg
				if c.Scandir != "/x" || c.User != "bob" || c.Policy != perms.PolicyGroup || !c.Once || c.Resync != 0 ||
					c.DegradedInterval != 250*time.Millisecond || strings.Join(c.Exclude, ",") != "a*,b" {
					t.Errorf("parsed %+v", c)
				}
			}},
		{name: "check as non-root", euid: user, args: []string{"--check"}, validate: func(t *testing.T, o options) {
			if !o.check {
				t.Error("check not set")
			}
		}},
		{name: "nice default and zero", euid: root, args: []string{"--nice", "0"}, validate: func(t *testing.T, o options) {
			if o.nice != 0 {
				t.Errorf("--nice 0: %d", o.nice)
			}
		}},
		{name: "nice out of range", euid: root, args: []string{"--nice", "30"}, code: 100, exit: true, stderr: []string{"--nice 30"}},
		{name: "unknown flag", euid: root, args: []string{"--frobnicate"}, code: 100, exit: true, stderr: []string{"frobnicate", "--help"}},
		{name: "positional argument", euid: root, args: []string{"/run/service"}, code: 100, exit: true, stderr: []string{`unexpected argument "/run/service"`}},
		{name: "bad policy", euid: root, args: []string{"--policy", "world"}, code: 100, exit: true, stderr: []string{"--policy", "world"}},
		{name: "bad duration", euid: root, args: []string{"--resync", "soon"}, code: 100, exit: true, stderr: []string{"soon", "resync"}},
		{name: "negative resync", euid: root, args: []string{"--resync", "-1s"}, code: 100, exit: true, stderr: []string{"--resync must not be negative"}},
		{name: "negative degraded interval", euid: root, args: []string{"--degraded-interval", "-1s"}, code: 100, exit: true, stderr: []string{"--degraded-interval"}},
		{name: "bad exclude glob", euid: root, args: []string{"--exclude", "["}, code: 100, exit: true, stderr: []string{"--exclude"}},
		{name: "empty scandir", euid: root, args: []string{"--scandir", ""}, code: 100, exit: true, stderr: []string{"--scandir"}},
		{name: "bad log level", euid: root, args: []string{"--log-level", "loud"}, code: 100, exit: true, stderr: []string{"loud"}},
		{name: "bad log format", euid: root, args: []string{"--log-format", "xml"}, code: 100, exit: true, stderr: []string{"xml"}},
		{name: "check and once", euid: root, args: []string{"--check", "--once"}, code: 100, exit: true, stderr: []string{"--check", "--once"}},
		{name: "negative notify-fd", euid: root, args: []string{"--notify-fd", "-3"}, code: 100, exit: true, stderr: []string{"--notify-fd -3"}},
		{name: "closed notify-fd", euid: root, args: []string{"--notify-fd", "987"}, code: 100, exit: true, stderr: []string{"--notify-fd 987", "not an open file descriptor"}},
		// Not root: the container may run as the user itself; RunAsUser
		// decides against the user database (TestRunAsUser).
		{name: "non-root without check", euid: user, validate: func(t *testing.T, o options) {
			if !o.asUser || o.euid != user {
				t.Errorf("asUser %v euid %d, want true %d", o.asUser, o.euid, user)
			}
		}},
		{name: "non-root once", euid: user, args: []string{"--once"}, validate: func(t *testing.T, o options) {
			if !o.asUser || !o.cfg.Once {
				t.Errorf("asUser %v once %v", o.asUser, o.cfg.Once)
			}
		}},
		{name: "root is not as-user", euid: root, validate: func(t *testing.T, o options) {
			if o.asUser {
				t.Error("asUser set for root")
			}
		}},
		{name: "sealed mode implies the sealed policy", euid: root, args: []string{"--mode", "sealed"}, validate: func(t *testing.T, o options) {
			if o.cfg.Policy != perms.PolicySealed {
				t.Errorf("policy %q, want sealed", o.cfg.Policy)
			}
		}},
		{name: "sealed mode refuses another policy", euid: root, args: []string{"--mode", "sealed", "--policy", "owner"}, code: 100, exit: true, stderr: []string{"contradicts sealed mode"}},
		{name: "unknown mode", euid: root, args: []string{"--mode", "closed"}, code: 100, exit: true, stderr: []string{"unknown mode", "HERMES_S6_MODE"}},
		{name: "version", euid: user, args: []string{"--version"}, code: 0, exit: true, stdout: []string{"perm-watcher dev"}},
		{name: "help", euid: user, args: []string{"--help"}, code: 0, exit: true, stdout: []string{
			"owner  (default)", "group ", "s6-svperms", // both policies
			"Threat model", "without following symlinks", "root-owned", // the threat model
			"Exit codes: 0 ok", "1 --check", "100 wrong usage", "111 system failure", // exit codes
			"--resync", "5m0s", "zero CPU", "--notify-fd", "max_user_watches", // flags and their why
			"-u hermes", // running as the user
		}},
		{name: "-h", euid: root, args: []string{"-h"}, code: 0, exit: true, stdout: []string{"Threat model"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			o, code, exit := parseArgs(tc.args, tc.euid, &stdout, &stderr)
			if code != tc.code || exit != tc.exit {
				t.Fatalf("parseArgs(%q): code %d exit %v, want %d %v\nstdout: %s\nstderr: %s", tc.args, code, exit, tc.code, tc.exit, &stdout, &stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, &stderr)
				}
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, &stdout)
				}
			}
			if tc.code == 100 {
				if stdout.Len() != 0 || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
					t.Errorf("a usage error should be one line on stderr and nothing on stdout:\nstdout: %s\nstderr: %s", &stdout, &stderr)
				}
			}
			if tc.validate != nil {
				tc.validate(t, o)
			}
		})
	}
}

// TestParseArgsCheckMode: --check learns the mode from --mode, else from
// HERMES_S6_MODE (docker exec -u hermes sees the container's environment);
// with neither it is not explicit, and Check may infer it.
func TestParseArgsCheckMode(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      permwatch.CheckModeOf
	}{
		{"neither", "", nil, permwatch.CheckModeOf{Mode: mode.Open}},
		{"env sealed", "sealed", nil, permwatch.CheckModeOf{Mode: mode.Sealed, Explicit: true}},
		{"env open", "open", nil, permwatch.CheckModeOf{Mode: mode.Open, Explicit: true}},
		{"flag wins", "open", []string{"--mode", "sealed"}, permwatch.CheckModeOf{Mode: mode.Sealed, Explicit: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(mode.Env, tc.env)
			var out, errb bytes.Buffer
			o, code, exit := parseArgs(append([]string{"--check"}, tc.args...), 10000, &out, &errb)
			if exit {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if o.checkMode != tc.want {
				t.Errorf("checkMode %+v, want %+v", o.checkMode, tc.want)
			}
			if tc.want.Mode == mode.Sealed && o.cfg.Policy != perms.PolicySealed {
				t.Errorf("sealed mode with policy %s", o.cfg.Policy)
			}
		})
	}
}
