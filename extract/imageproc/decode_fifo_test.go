//go:build unix

package imageproc

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDecodeFileFIFO: a named pipe is refused at once, not read.
func TestDecodeFileFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pipe.png")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
	done := make(chan error, 1)
	go func() { _, err := DecodeFile(p); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "pipe.png: not a regular file") {
			t.Fatalf("DecodeFile of a FIFO: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("DecodeFile blocked on a FIFO")
	}
}
