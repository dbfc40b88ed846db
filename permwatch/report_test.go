package permwatch

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The reporter logs a service's first refusal, counts the repeats (even
// when two reasons alternate, which defeated "log when it changes"), says
// once when it is cleared, keeps every kind of per-service line within the
// token bucket, and reports what it held back in one summary line.
func TestReporter(t *testing.T) {
	var buf bytes.Buffer
	r := newReporter(zerolog.New(&buf))
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	a, b := errors.New("reason A"), errors.New("reason B")
	for i := 0; i < 1000; i++ {
		err := a
		if i%2 == 1 {
			err = b
		}
		r.refusal("svc", "svc", "/sd/svc", err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("1,000 alternating refusals of one service: %d lines, want 1:\n%s", n, buf.String())
	}
	// Many services at once: the bucket (logBurst) bounds the lines.
	buf.Reset()
	for i := 0; i < 10*logBurst; i++ {
		r.refusal("s", "s"+strings.Repeat("x", i%300)+string(rune('a'+i%26)), "/sd/s", a)
	}
	if n := strings.Count(buf.String(), "\n"); n > logBurst {
		t.Errorf("%d lines for %d new refused services at once, want at most %d", n, 10*logBurst, logBurst)
	}
	// A minute later the bucket is full again, and 60 s of a sustained
	// flood of new refusals writes at most logRate lines a second.
	buf.Reset()
	for s := 0; s < 60; s++ {
		now = now.Add(time.Second)
		for i := 0; i < 100; i++ {
			r.refusal("t", "t"+string(rune(s))+string(rune(i)), "/sd/t", b)
		}
	}
	if n := strings.Count(buf.String(), "\n"); n > logBurst+60*logRate {
		t.Errorf("%d lines in 60 s of a flood, want at most %d", n, logBurst+60*logRate)
	}
	buf.Reset()
	r.summary()
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"refusals":`) || !strings.Contains(out, `"lines_held_back":`) ||
		!strings.Contains(out, `"service":"svc","path":"/sd/svc","count":999`) {
		t.Errorf("summary:\n%s", out)
	}
	if len(out) > 4096 {
		t.Errorf("summary is %d bytes, want a few KiB at most", len(out))
	}
	buf.Reset()
	r.summary()
	if buf.Len() != 0 {
		t.Errorf("a second summary with nothing new: %s", buf.String())
	}
	now = now.Add(time.Minute)
	r.refusal("svc", "svc", "/sd/svc", nil)
	if !strings.Contains(buf.String(), "no longer refused") || !strings.Contains(buf.String(), `"refusals":1000`) {
		t.Errorf("clearing: %s", buf.String())
	}
}
