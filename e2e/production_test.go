package e2e

import (
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
// test proves the production target's local-tarball path and its checksum
// verification with small fake tarballs laid out like the real ones.

// fakeTarballs makes s6-overlay-{noarch,x86_64,symlinks-noarch}.tar.xz in dir
// and returns their SHA-256 by name.
func fakeTarballs(t *testing.T, dir string) map[string]string {
	t.Helper()
	trees := map[string]map[string]string{
		"noarch": {
			"init":                              "#!/bin/sh\necho fake-s6-overlay-init \"$@\"\nexec \"$@\"\n",
			"package/admin/s6-overlay/etc/fake": "noarch\n",
		},
		"x86_64": {
			"package/admin/s6/command/fake": "x86_64\n",
		},
		"symlinks-noarch": {
			"command/fake-symlinks": "symlinks-noarch\n",
		},
	}
	sums := map[string]string{}
	for name, files := range trees {
		root := t.TempDir()
		for p, content := range files {
			full := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		tarball := filepath.Join(dir, "s6-overlay-"+name+".tar.xz")
		if out, err := exec.Command("tar", "-C", root, "--owner=0", "--group=0", "-cJf", tarball, ".").CombinedOutput(); err != nil {
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

// copyTree copies src (a file or directory, relative to the repo) into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v: %s", src, err, out)
	}
}

func TestProductionTargetFromLocalTarballs(t *testing.T) {
	requireImage(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// A build context like the repository's, with the fakes in s6-overlay-dist/.
	bctx := t.TempDir()
	for _, p := range []string{"Dockerfile", ".dockerignore", "rootfs", "hermetic", "testdata/image", "testdata/fake-hermes", "bin/reconcile-profiles", "bin/perm-watcher"} {
		copyTree(t, filepath.Join(repoRoot, p), filepath.Join(bctx, p))
	}
	dist := filepath.Join(bctx, "s6-overlay-dist")
	if err := os.MkdirAll(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	sums := fakeTarballs(t, dist)
	args := map[string]string{
		"S6_OVERLAY_NOARCH_SHA256":          sums["noarch"],
		"S6_OVERLAY_X86_64_SHA256":          sums["x86_64"],
		"S6_OVERLAY_SYMLINKS_NOARCH_SHA256": sums["symlinks-noarch"],
		"TARGETARCH":                        "amd64",
		// Any download attempt fails at once instead of hanging.
		"S6_OVERLAY_URL": "http://127.0.0.1:9/none",
	}
	tag := "hermes-s6:e2e-production-fake"
	t.Cleanup(func() { _, _ = dockerCLI("rmi", "-f", tag) })

	t.Run("right checksums", func(t *testing.T) {
		out, err := dockerBuild(ctx, bctx, "production", tag, args).CombinedOutput()
		if err != nil {
			t.Fatalf("build: %v\n%s", err, tail(string(out), 4000))
		}
		// All three tarballs are unpacked at /, our programs and rootfs are there.
		got, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--entrypoint", "/bin/sh", tag, "-c",
			`cat /package/admin/s6-overlay/etc/fake /package/admin/s6/command/fake /command/fake-symlinks
test -x /init && test -x /usr/local/bin/perm-watcher && test -x /usr/local/bin/reconcile-profiles
test -f /etc/s6-overlay/s6-rc.d/perm-watcher/run && test ! -e /etc/s6-overlay/s6-rc.d/static-test
test ! -e /tmp/s6-overlay-dist && id hermes && echo "$HERMES_HOME"`).CombinedOutput()
		if err != nil {
			t.Fatalf("run: %v\n%s", err, got)
		}
		for _, want := range []string{"noarch", "x86_64", "symlinks-noarch", "uid=10000(hermes) gid=10000(hermes)", "/opt/data"} {
			if !strings.Contains(string(got), want) {
				t.Errorf("production image lacks %q:\n%s", want, got)
			}
		}
		// ENTRYPOINT is /init (here the fake one), which runs the command.
		got, err = exec.CommandContext(ctx, "docker", "run", "--rm", tag, "echo", "hello").CombinedOutput()
		if err != nil || !strings.Contains(string(got), "fake-s6-overlay-init echo hello") {
			t.Errorf("docker run: %v: %s", err, got)
		}
	})

	t.Run("wrong checksum fails the build", func(t *testing.T) {
		bad := map[string]string{}
		for k, v := range args {
			bad[k] = v
		}
		bad["S6_OVERLAY_X86_64_SHA256"] = strings.Repeat("0", 64)
		out, err := dockerBuild(ctx, bctx, "production", tag+"-bad", bad).CombinedOutput()
		_, _ = dockerCLI("rmi", "-f", tag+"-bad")
		if err == nil {
			t.Fatalf("build with a wrong checksum succeeded:\n%s", tail(string(out), 4000))
		}
		if !strings.Contains(string(out), "s6-overlay-x86_64.tar.xz: FAILED") {
			t.Errorf("build failed, but not on the checksum:\n%s", tail(string(out), 4000))
		}
	})

	t.Run("missing checksum fails the build", func(t *testing.T) {
		bad := map[string]string{}
		for k, v := range args {
			bad[k] = v
		}
		delete(bad, "S6_OVERLAY_SYMLINKS_NOARCH_SHA256")
		out, err := dockerBuild(ctx, bctx, "production", tag+"-bad2", bad).CombinedOutput()
		_, _ = dockerCLI("rmi", "-f", tag+"-bad2")
		if err == nil {
			t.Fatalf("build without a checksum succeeded:\n%s", tail(string(out), 4000))
		}
		if !strings.Contains(string(out), "no SHA-256 given for s6-overlay-symlinks-noarch.tar.xz") {
			t.Errorf("build failed, but not for the missing checksum:\n%s", tail(string(out), 4000))
		}
	})
}
