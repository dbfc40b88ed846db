package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// makeDist runs scripts/dist.sh (what `make dist` runs) into dir with a fixed
// VERSION and returns the tarball's path.
func makeDist(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "dist.sh"), "-o", dir)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION=e2e")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scripts/dist.sh: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// distEntries reads the tarball's headers (xz -dc, then archive/tar).
func distEntries(t *testing.T, tarball string) []*tar.Header {
	t.Helper()
	raw, err := exec.Command("xz", "-dc", tarball).Output()
	if err != nil {
		t.Fatalf("xz -dc %s: %v", tarball, err)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var hs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatalf("%s: %v", tarball, err)
		}
		hs = append(hs, h)
	}
}

// TestDistTarball checks `make dist`'s tarball as an adopter relies on it,
// then unpacks it, as the README's adoption lines do, onto the test image
// stripped of every file of hermes-s6, boots that and uses it as hermes.
func TestDistTarball(t *testing.T) {
	requireImage(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	out := t.TempDir()
	tarball := makeDist(t, ctx, out)
	name := filepath.Base(tarball)
	var arch string
	switch {
	case strings.HasSuffix(name, "-x86_64.tar.xz"):
		arch = "x86_64"
	case strings.HasSuffix(name, "-aarch64.tar.xz"):
		arch = "aarch64"
	}
	if want := "hermes-s6-e2e-" + arch + ".tar.xz"; arch == "" || name != want {
		t.Fatalf("tarball %s, want hermes-s6-e2e-<x86_64|aarch64>.tar.xz", name)
	}
	entries := distEntries(t, tarball)

	t.Run("layout", func(t *testing.T) {
		var names []string
		got := map[string]*tar.Header{}
		for _, h := range entries {
			names = append(names, h.Name)
			got[h.Name] = h
			if h.Uid != 0 || h.Gid != 0 {
				t.Errorf("%s: owner %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
			}
			if !h.ModTime.Equal(entries[0].ModTime) {
				t.Errorf("%s: mtime %v, want the same as every entry (%v)", h.Name, h.ModTime, entries[0].ModTime)
			}
			if !strings.HasPrefix(h.Name, "./") {
				t.Errorf("%s: not relative to / as ./path (s6-overlay's tarballs are)", h.Name)
			}
			switch h.Typeflag {
			case tar.TypeDir:
				if h.Mode&0o7777 != 0o755 {
					t.Errorf("%s: directory mode %o, want 755", h.Name, h.Mode)
				}
			case tar.TypeReg:
				if m := h.Mode & 0o7777; m != 0o755 && m != 0o644 {
					t.Errorf("%s: file mode %o, want 755 or 644", h.Name, m)
				}
			default:
				t.Errorf("%s: type %q: only directories and regular files belong here", h.Name, h.Typeflag)
			}
			if strings.Contains(h.Name, "user-bundles.d") || strings.Contains(h.Name, "/s6-rc.d/user/") {
				t.Errorf("%s: bundle membership is install-user-bundle's job at install time", h.Name)
			}
		}
		if !sort.StringsAreSorted(names) {
			t.Errorf("names not sorted: %q", names)
		}
		for _, p := range []string{"./usr/local/bin/perm-watcher", "./usr/local/bin/reconcile-profiles",
			"./usr/lib/hermes-s6/install-user-bundle", "./etc/s6-overlay/s6-rc.d/perm-watcher/run"} {
			if h := got[p]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o777 != 0o755 {
				t.Errorf("%s: missing, or not an executable file", p)
			}
		}
		for _, p := range []string{"./etc/s6-overlay/s6-rc.d/perm-watcher/type", "./etc/s6-overlay/s6-rc.d/reconcile-profiles/type",
			"./etc/s6-overlay/s6-rc.d/reconcile-profiles/up", "./etc/s6-overlay/s6-rc.d/perm-watcher/notification-fd"} {
			if h := got[p]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o777 != 0o644 {
				t.Errorf("%s: missing, or not a 0644 file", p)
			}
		}
		// Unpacking must not touch what it shares with the system and s6-overlay.
		for _, p := range []string{"./", ".", "./etc/", "./etc/s6-overlay/", "./etc/s6-overlay/s6-rc.d/", "./usr/",
			"./usr/local/", "./usr/local/bin/", "./usr/lib/"} {
			if got[p] != nil {
				t.Errorf("%s: a shared directory has an entry (unpacking would reset its mode and mtime)", p)
			}
		}
	})

	t.Run("sha256 file as s6-overlay's", func(t *testing.T) {
		data, err := os.ReadFile(tarball)
		if err != nil {
			t.Fatal(err)
		}
		sumFile, err := os.ReadFile(tarball + ".sha256")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%x  %s\n", sha256.Sum256(data), name); string(sumFile) != want {
			t.Errorf("%s.sha256 = %q, want %q", name, sumFile, want)
		}
		// The same commit gives the same bytes.
		again := makeDist(t, ctx, t.TempDir())
		sumAgain, err := os.ReadFile(again + ".sha256")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sumAgain, sumFile) {
			t.Errorf("not reproducible: %q then %q", sumFile, sumAgain)
		}
	})

	t.Run("unpacked onto a base image, it boots", func(t *testing.T) {
		// The base is the test image stripped of hermes-s6, so it carries
		// the test image's s6: on a production image built from real
		// s6-overlay tarballs (scripts/real-image.sh, as .ci/run and make
		// e2e-real run the suite), this is the hermes image's situation.
		s6 := "s6-overlay " + s6OverlayVersion(t)
		if isStandIn(t) {
			s6 = "the stand-in emulating " + s6
		}
		t.Logf("adoption base: %s stripped of hermes-s6 (%s)", testImage, s6)
		tag := derivedTag("dist-unpacked")
		t.Cleanup(func() { _, _ = dockerCLI("rmi", "-f", tag) })
		// The base: the test image without any file of hermes-s6 (every path
		// the tarball holds, and the bundle membership wherever it is).
		var strip []string
		for _, h := range entries {
			p := strings.TrimPrefix(h.Name, ".")
			if h.Typeflag == tar.TypeDir {
				p = strings.TrimSuffix(p, "/")
			}
			strip = append(strip, p)
		}
		for _, d := range []string{"/etc/s6-overlay/s6-rc.d/user/contents.d/", "/etc/s6-overlay/user-bundles.d/user/contents.d/"} {
			strip = append(strip, d+"perm-watcher", d+"profile-follower", d+"reconcile-profiles")
		}
		bctx := t.TempDir()
		copyTree(t, tarball, filepath.Join(bctx, name))
		// Then the README's adoption lines ("Adopt it in the hermes image"),
		// with the checksum pinned from the .sha256 file.
		sumFile, err := os.ReadFile(tarball + ".sha256")
		if err != nil {
			t.Fatal(err)
		}
		sum, _, _ := strings.Cut(string(sumFile), " ")
		dockerfile := fmt.Sprintf(`FROM %s
RUN set -eu; rm -rf %s; \
    for p in /usr/local/bin/perm-watcher /usr/lib/hermes-s6 /etc/s6-overlay/s6-rc.d/perm-watcher; do \
      if [ -e "$p" ]; then echo "not stripped: $p" >&2; exit 1; fi; \
    done
ARG HERMES_S6_TARBALL=%s
ARG HERMES_S6_SHA256=%s
COPY ${HERMES_S6_TARBALL} /tmp/
RUN cd /tmp && echo "${HERMES_S6_SHA256}  ${HERMES_S6_TARBALL}" | sha256sum -c - && \
    tar -C / -Jxpf "${HERMES_S6_TARBALL}" && rm -f "${HERMES_S6_TARBALL}" && \
    /usr/lib/hermes-s6/install-user-bundle perm-watcher profile-follower reconcile-profiles
`, testImage, strings.Join(strip, " "), name, sum)
		if err := os.WriteFile(filepath.Join(bctx, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, "docker", "build", "--force-rm", "-t", tag, bctx)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build:\n%s\n%v\n%s", dockerfile, err, tail(string(out), 4000))
		}

		// As root and as the whole container as hermes (docker run -u hermes,
		// Kubernetes runAsUser), as the hermes image supports both.
		for _, m := range modes {
			t.Run(string(m), func(t *testing.T) {
				t.Parallel()
				// Not ctx: a parallel subtest may wait for a free -parallel
				// slot for minutes on a loaded machine, and ctx's 8 minutes
				// run during that wait (they ran out so in CI at load 70).
				c, err := testcontainers.Run(context.Background(), tag, withUser(m))
				b := &box{Container: c, name: t.Name()}
				if c != nil {
					t.Cleanup(func() {
						if t.Failed() {
							b.dump(t)
						}
						if err := testcontainers.TerminateContainer(c); err != nil {
							t.Logf("terminate: %v", err)
						}
					})
				}
				if err != nil {
					t.Fatalf("start container: %v", err)
				}
				// profile=default in the boot log (read as hermes), perm-watcher ready.
				b.waitReady(t)
				if code, out := b.Exec(t, []string{"/command/s6-svscanctl", "-a", "/run/service"}); code != 0 {
					t.Errorf("s6-svscanctl -a /run/service as hermes: exit %d: %s", code, out)
				}
				// A static s6-rc longrun of the image is hermes's to read and control.
				b.MustSh(t, "/command/s6-svstat /run/service/static-test && /command/s6-svc -u /run/service/static-test")
				// In both modes (-u hermes: s6-rc's symlinks are hermes's, and
				// --check as hermes follows them as s6-svc does).
				if code, out := b.Exec(t, []string{"perm-watcher", "--check"}); code != 0 {
					t.Errorf("perm-watcher --check as hermes: exit %d:\n%s", code, out)
				}
			})
		}
	})
}
