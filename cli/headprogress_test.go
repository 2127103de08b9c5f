package cli

import (
	"bytes"
	"testing"
	"time"
)

// TestProgressLine checks the terminal progress line: throttled within a
// phase, every phase's end printed with a newline.
func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }
	p := progressLine(&buf, "ranpac", now)
	p("λ search: kernels", 0, 10)
	clock = clock.Add(50 * time.Millisecond)
	p("λ search: kernels", 1, 10) // within 200 ms: skipped
	clock = clock.Add(300 * time.Millisecond)
	p("λ search: kernels", 5, 10)
	clock = clock.Add(time.Second)
	p("λ search: kernels", 10, 10)
	p("solve", 0, 1)
	p("solve", 1, 1)
	want := "\rranpac: λ search: kernels   0 %\x1b[K" +
		"\rranpac: λ search: kernels  50 %\x1b[K" +
		"\rranpac: λ search: kernels done (1.4 s)\x1b[K\n" +
		"\rranpac: solve   0 %\x1b[K" +
		"\rranpac: solve done (0.0 s)\x1b[K\n"
	if got := buf.String(); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
