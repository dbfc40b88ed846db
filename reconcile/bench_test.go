package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// benchRoot is a tmpfs, as /run is in the container.
func benchRoot(b *testing.B) string {
	root := os.Getenv("RECONCILE_BENCH_DIR")
	if root == "" {
		root = "/dev/shm"
	}
	d, err := os.MkdirTemp(root, "reconcile-bench-")
	if err != nil {
		b.Skipf("no tmpfs for the benchmark: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// populate makes n named profiles (half of them running) with a
// lifecycle file, plus the default profile and a config.yaml.
func populate(b *testing.B, home string, n int) {
	for i := range n {
		dir := filepath.Join(home, "profiles", fmt.Sprintf("p%05d", i))
		os.MkdirAll(filepath.Join(dir, "state"), 0o755)
		os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("soul"), 0o644)
		state := "stopped"
		if i%2 == 0 {
			state = "running"
		}
		os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(`{"gateway_state":"`+state+`","pid":1234,"platforms":{"telegram":{"state":"connected"}}}`), 0o644)
		os.WriteFile(filepath.Join(dir, "state", "gateway.lifecycle.json"), []byte(`{"phase":"exited"}`), 0o644)
	}
	os.WriteFile(filepath.Join(home, "gateway_state.json"), []byte(`{"gateway_state":"running"}`), 0o644)
	os.WriteFile(filepath.Join(home, "config.yaml"), []byte("model:\n  default: x\ngateway:\n  multiplex_profiles: false\n"), 0o644)
}

// cpuTime is this process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkPass measures a cold boot reconcile: HERMES_HOME pre-populated,
// a fresh empty scandir each iteration, everything on tmpfs. It reports
// ns/profile besides ns/op.
func BenchmarkPass(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("profiles=%d", n), func(b *testing.B) {
			base := benchRoot(b)
			home := filepath.Join(base, "home")
			populate(b, home, n)
			cfg := Config{
				HermesHome: home, User: "hermes", CommandDir: "/command",
				Proc: filepath.Join(base, "proc"), S6Basedir: filepath.Join(base, "basedir"),
				Log: zerolog.Nop(), Now: time.Now,
			}
			var total time.Duration
			var cpu int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				cfg.Scandir = filepath.Join(base, fmt.Sprintf("service-%d", i))
				if err := os.Mkdir(cfg.Scandir, 0o755); err != nil {
					b.Fatal(err)
				}
				if i > 0 { // keep tmpfs small: drop the previous iteration's slots
					os.RemoveAll(filepath.Join(base, fmt.Sprintf("service-%d", i-1)))
				}
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				sum, err := Pass(context.Background(), cfg, nil)
				total += time.Since(start)
				cpu += cpuTime() - cpu0
				if err != nil || len(sum.Slots) != n+1 {
					b.Fatalf("pass: %v, %d slots", err, len(sum.Slots))
				}
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N)/float64(n+1), "ns/profile")
			// CPU time (user+system) is what the pass costs, whatever else
			// the machine runs; wall time (ns/op) depends on the load.
			b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}
