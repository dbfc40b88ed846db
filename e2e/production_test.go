package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The real s6-overlay release tarballs cannot be downloaded here, so this
// test proves the production target's local-tarball path, its checksum
// verification and where it puts the user bundle with small fake tarballs
// laid out like the real ones (s6-overlay's Makefile: every tarball is made
// with `tar --owner=0 --group=0 --numeric-owner -C <tree> .`):
//
//   - noarch: /init; package/admin/s6-overlay-<ver>/ and the symlink
//     package/admin/s6-overlay -> s6-overlay-<ver>; command/<script> ->
//     ../package/admin/s6-overlay/command/<script>; etc/s6-overlay/config/;
//     up to 3.2.3.0 also etc/s6-overlay/s6-rc.d/user/ and user2/ (bundles,
//     contents.d/ empty).
//   - <arch>: package/admin/<skaware>-<ver>/command/<prog>, the unversioned
//     link, and command/<prog> -> ../package/admin/<skaware>/command/<prog>.
//   - symlinks-noarch: usr/bin/<script> -> ../../command/<script>.
//
// The fake /init only prints its arguments and runs them: no check here
// needs a real s6-overlay.

// fakeEntry is one tarball entry: a directory (dir), a symlink (link) or a
// regular file (content, mode).
type fakeEntry struct {
	content string
	mode    os.FileMode
	link    string
	dir     bool
}

// fakeRelease describes one set of fake s6-overlay release tarballs.
type fakeRelease struct {
	// version is the noarch tarball's s6-overlay-<version>; empty: a noarch
	// tarball with no version evidence at all.
	version string
	// legacyUser: the noarch tarball ships etc/s6-overlay/s6-rc.d/user/ and
	// user2/, as every release up to 3.2.3.0 does.
	legacyUser bool
}

func (r fakeRelease) trees() map[string]map[string]fakeEntry {
	noarch := map[string]fakeEntry{
		"init":                              {content: "#!/bin/sh\necho fake-s6-overlay-init \"$@\"\nexec \"$@\"\n", mode: 0o755},
		"etc/s6-overlay/config/global_path": {content: "/command:/usr/bin:/bin\n", mode: 0o644},
	}
	if r.version != "" {
		pkg := "package/admin/s6-overlay-" + r.version
		noarch[pkg+"/libexec/stage0"] = fakeEntry{content: "#!/bin/sh\nexit 0\n", mode: 0o755}
		noarch[pkg+"/command/with-contenv"] = fakeEntry{content: "#!/bin/sh\nexec \"$@\"\n", mode: 0o755}
		noarch["package/admin/s6-overlay"] = fakeEntry{link: "s6-overlay-" + r.version}
		noarch["command/with-contenv"] = fakeEntry{link: "../package/admin/s6-overlay/command/with-contenv"}
	}
	if r.legacyUser {
		for _, b := range []string{"user", "user2"} {
			noarch["etc/s6-overlay/s6-rc.d/"+b+"/type"] = fakeEntry{content: "bundle\n", mode: 0o644}
			noarch["etc/s6-overlay/s6-rc.d/"+b+"/contents.d"] = fakeEntry{dir: true}
		}
	}
	arch := map[string]fakeEntry{}
	for _, p := range []struct{ pkg, prog string }{{"s6-2.15.0.0", "s6-svscan"}, {"execline-2.9.9.0", "execlineb"}} {
		name := strings.SplitN(p.pkg, "-", 2)[0]
		arch["package/admin/"+p.pkg+"/command/"+p.prog] = fakeEntry{content: "#!/bin/sh\necho fake " + p.prog + "\n", mode: 0o755}
		arch["package/admin/"+name] = fakeEntry{link: p.pkg}
		arch["command/"+p.prog] = fakeEntry{link: "../package/admin/" + name + "/command/" + p.prog}
	}
	return map[string]map[string]fakeEntry{
		"noarch":          noarch,
		"x86_64":          arch,
		"symlinks-noarch": {"usr/bin/with-contenv": {link: "../../command/with-contenv"}},
	}
}

// write makes s6-overlay-{noarch,x86_64,symlinks-noarch}.tar.xz in dir and
// returns their SHA-256 by name.
func (r fakeRelease) write(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for name, entries := range r.trees() {
		root := t.TempDir()
		for p, e := range entries {
			full := filepath.Join(root, p)
			parent := full
			if !e.dir {
				parent = filepath.Dir(full)
			}
			if err := os.MkdirAll(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			switch {
			case e.dir:
			case e.link != "":
				if err := os.Symlink(e.link, full); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(full, []byte(e.content), e.mode); err != nil {
					t.Fatal(err)
				}
			}
		}
		tarball := filepath.Join(dir, "s6-overlay-"+name+".tar.xz")
		if out, err := exec.Command("tar", "-C", root, "--owner=0", "--group=0", "--numeric-owner", "-cJf", tarball, ".").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v: %s", err, out)
		}
		data, err := os.ReadFile(tarball)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		sums[name] = hex.EncodeToString(sum[:])
	}
	return sums
}

// copyTree copies src (a file or directory) to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v: %s", src, err, out)
	}
}

// buildContext makes a build context like the repository's: every path that
// .dockerignore lets in ("!path" lines), so the copy follows the Dockerfile.
func buildContext(t *testing.T) string {
	t.Helper()
	bctx := t.TempDir()
	for _, p := range []string{"Dockerfile", ".dockerignore"} {
		copyTree(t, filepath.Join(repoRoot, p), filepath.Join(bctx, p))
	}
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "!") {
			continue
		}
		p := strings.TrimSuffix(strings.TrimPrefix(line, "!"), "/")
		if _, err := os.Lstat(filepath.Join(repoRoot, p)); err != nil {
			continue // optional inputs (an unbuilt helper, no s6-overlay-dist/)
		}
		copyTree(t, filepath.Join(repoRoot, p), filepath.Join(bctx, p))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return bctx
}

// productionChecks is run in a production image (as root, with /bin/sh as
// entrypoint: the fake /init is no s6-overlay); it prints one FAIL line per
// broken expectation and exits 1 if there is one.
const productionChecks = `fail=0
check() { what=$1; shift; "$@" || { echo "FAIL: $what"; fail=1; }; }
check "fake tarballs unpacked at /" test -x /init -a -L /command/s6-svscan -a -L /usr/bin/with-contenv
check "/command/s6-svscan resolves into the arch tarball" test "$(/command/s6-svscan)" = "fake s6-svscan"
check "the programs are in /usr/local/bin" test -x /usr/local/bin/perm-watcher -a -x /usr/local/bin/reconcile-profiles
check "rootfs/ is copied" test -f /etc/s6-overlay/s6-rc.d/perm-watcher/run -a -f /etc/s6-overlay/s6-rc.d/reconcile-profiles/up
check "install-user-bundle is installed" test -x /usr/lib/hermes-s6/install-user-bundle
check "no test content" test ! -e /etc/s6-overlay/s6-rc.d/static-test -a ! -e /usr/lib/hermetic-s6
check "the tarballs are removed" test ! -e /tmp/s6-overlay-dist
check "one s6: no Debian s6-svscan" test ! -e /usr/bin/s6-svscan
check "one s6: no Debian execline" test ! -e /usr/bin/execlineb -a ! -e /usr/lib/execline/bin/execlineb
check "user hermes 10000:10000" test "$(id hermes)" = "uid=10000(hermes) gid=10000(hermes) groups=10000(hermes)"
check "HERMES_HOME" test "$HERMES_HOME" = /opt/data
exit $fail
`

// userBundleChecks are the checks of where the membership went, per layout.
var userBundleChecks = map[string]string{
	// Up to 3.2.3.0 s6-overlay reads only s6-rc.d/user/contents.d.
	"s6-rc.d": `fail=0
check() { what=$1; shift; "$@" || { echo "FAIL: $what"; fail=1; }; }
u=/etc/s6-overlay/s6-rc.d/user
check "perm-watcher in $u/contents.d" test -f $u/contents.d/perm-watcher
check "reconcile-profiles in $u/contents.d" test -f $u/contents.d/reconcile-profiles
check "profile-follower in $u/contents.d" test -f $u/contents.d/profile-follower
check "$u/type is still the tarball's" test "$(cat $u/type)" = bundle
check "user2 untouched" test -z "$(ls -A /etc/s6-overlay/s6-rc.d/user2/contents.d)"
check "no user-bundles.d (never read by this version)" test ! -e /etc/s6-overlay/user-bundles.d
exit $fail
`,
	// From 3.2.3.1 on s6-overlay reads user-bundles.d, unless s6-rc.d/user
	// exists (then it writes into it at boot, which fails as -u hermes).
	"user-bundles.d": `fail=0
check() { what=$1; shift; "$@" || { echo "FAIL: $what"; fail=1; }; }
u=/etc/s6-overlay/user-bundles.d/user
check "perm-watcher in $u/contents.d" test -f $u/contents.d/perm-watcher
check "reconcile-profiles in $u/contents.d" test -f $u/contents.d/reconcile-profiles
check "profile-follower in $u/contents.d" test -f $u/contents.d/profile-follower
check "no s6-rc.d/user (it would hide user-bundles.d)" test ! -e /etc/s6-overlay/s6-rc.d/user
exit $fail
`,
}

func TestProductionTargetFromLocalTarballs(t *testing.T) {
	requireImage(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(repoRoot, "rootfs", "usr", "lib", "hermes-s6", "install-user-bundle")); err != nil {
		t.Fatalf("rootfs/usr/lib/hermes-s6/install-user-bundle: %v", err)
	}

	// build builds the production target from a fresh context holding the
	// release's fake tarballs in s6-overlay-dist/, with edit applied to the
	// build arguments; it returns the tag (removed at the end of the test),
	// the output and the error.
	build := func(t *testing.T, suffix string, rel fakeRelease, edit func(map[string]string)) (string, string, error) {
		t.Helper()
		bctx := buildContext(t)
		dist := filepath.Join(bctx, "s6-overlay-dist")
		if err := os.MkdirAll(dist, 0o755); err != nil {
			t.Fatal(err)
		}
		sums := rel.write(t, dist)
		args := map[string]string{
			"S6_OVERLAY_VERSION":                rel.version,
			"S6_OVERLAY_NOARCH_SHA256":          sums["noarch"],
			"S6_OVERLAY_X86_64_SHA256":          sums["x86_64"],
			"S6_OVERLAY_SYMLINKS_NOARCH_SHA256": sums["symlinks-noarch"],
			"TARGETARCH":                        "amd64",
			// Any download attempt fails at once instead of hanging.
			"S6_OVERLAY_URL": "http://127.0.0.1:9/none",
		}
		if edit != nil {
			edit(args)
		}
		tag := derivedTag("dist-production-" + suffix)
		t.Cleanup(func() { _, _ = dockerCLI("rmi", "-f", tag) })
		out, err := dockerBuild(ctx, bctx, "production", tag, args).CombinedOutput()
		return tag, string(out), err
	}
	// The builds wait on the Docker engine more than on the CPU: run them
	// side by side (at most -parallel at once); the group returns when all
	// are done, before ctx is cancelled.
	t.Run("build", func(t *testing.T) {
		for _, tc := range []struct {
			name, tag string
			rel       fakeRelease
			layout    string
		}{
			{"3.2.3.0 reads s6-rc.d/user", "3230", fakeRelease{version: "3.2.3.0", legacyUser: true}, "s6-rc.d"},
			{"3.2.3.2 reads user-bundles.d", "3232", fakeRelease{version: "3.2.3.2"}, "user-bundles.d"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tag, out, err := build(t, tc.tag, tc.rel, nil)
				if err != nil {
					t.Fatalf("build: %v\n%s", err, tail(out, 4000))
				}
				// One container: ENTRYPOINT is /init (the fake one: it prints its
				// arguments and runs them), the command runs every check.
				got, err := exec.CommandContext(ctx, "docker", "run", "--rm", tag, "/bin/sh", "-c",
					"("+productionChecks+") && ("+userBundleChecks[tc.layout]+")").CombinedOutput()
				if err != nil {
					t.Errorf("checks in %s: %v\n%s", tag, err, got)
				}
				if !strings.Contains(string(got), "fake-s6-overlay-init /bin/sh -c") {
					t.Errorf("the entrypoint is not /init:\n%s", got)
				}
			})
		}

		// Every failing build must fail for the reason given, not any reason.
		for _, tc := range []struct {
			name, tag string
			rel       fakeRelease
			edit      func(map[string]string)
			want      string
		}{
			{
				"unknown version fails the build", "unknown",
				fakeRelease{version: ""},
				func(a map[string]string) { a["S6_OVERLAY_VERSION"] = "3.2.3.0" },
				"cannot tell where the installed s6-overlay reads the user bundle",
			},
			{
				"wrong checksum fails the build", "badsum",
				fakeRelease{version: "3.2.3.0", legacyUser: true},
				func(a map[string]string) { a["S6_OVERLAY_X86_64_SHA256"] = strings.Repeat("0", 64) },
				"s6-overlay-x86_64.tar.xz: FAILED",
			},
			{
				"missing checksum fails the build", "nosum",
				fakeRelease{version: "3.2.3.0", legacyUser: true},
				// Empty, not absent: absent would take the default (3.2.3.0's
				// real checksum), which the fake does not match either.
				func(a map[string]string) { a["S6_OVERLAY_SYMLINKS_NOARCH_SHA256"] = "" },
				"no SHA-256 given for s6-overlay-symlinks-noarch.tar.xz",
			},
			{
				"a base with Debian's s6 fails the build", "s6base",
				fakeRelease{version: "3.2.3.0", legacyUser: true},
				func(a map[string]string) { a["BASE_IMAGE"] = hermeticBaseImage },
				"the base image brings its own s6",
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				_, out, err := build(t, tc.tag, tc.rel, tc.edit)
				if err == nil {
					t.Fatalf("build succeeded:\n%s", tail(out, 4000))
				}
				if !strings.Contains(out, tc.want) {
					t.Errorf("build failed, but without %q:\n%s", tc.want, tail(out, 4000))
				}
			})
		}
	})

	// The defaults are the hermes image's pin and the SHA-256 published with
	// that release (S6-OVERLAY-FACTS.md), so `docker build .` works wherever
	// the release host is reachable.
	t.Run("defaults are 3.2.3.0 and its published checksums", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"ARG S6_OVERLAY_VERSION=3.2.3.0\n",
			"ARG S6_OVERLAY_NOARCH_SHA256=b720f9d9340efc8bb07528b9743813c836e4b02f8693d90241f047998b4c53cf\n",
			"ARG S6_OVERLAY_X86_64_SHA256=a93f02882c6ed46b21e7adb5c0add86154f01236c93cd82c7d682722e8840563\n",
			"ARG S6_OVERLAY_AARCH64_SHA256=0952056ff913482163cc30e35b2e944b507ba1025d78f5becbb89367bf344581\n",
			"ARG S6_OVERLAY_SYMLINKS_NOARCH_SHA256=a60dc5235de3ecbcf874b9c1f18d73263ab99b289b9329aa950e8729c4789f0e\n",
		} {
			if !strings.Contains(string(data), want) {
				t.Errorf("Dockerfile lacks %q", strings.TrimSpace(want))
			}
		}
	})
}
