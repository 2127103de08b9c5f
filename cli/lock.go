package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cl-dev/cl/internal/filelock"
)

// lockForWrite takes the lock of a file the command reads and then rewrites
// (the head of cl fit, the output of cl merge and cl forget), so that two
// commands on one file run one after the other instead of losing an update.
// While another process holds it, a line on stderr says so and the command
// waits; Ctrl-C stops the wait. flag names the file in errors.
func lockForWrite(ctx context.Context, flag, path string, stderr io.Writer) (*filelock.Lock, error) {
	l, err := filelock.Acquire(ctx, path, func(pid int) {
		who := "another cl"
		if pid > 0 {
			who = fmt.Sprintf("process %d", pid)
		}
		fmt.Fprintf(stderr, "cl: waiting for %s, which is writing %s (Ctrl-C to stop)\n", who, path)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(err, path)
		}
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return l, nil
}

// interrupted is the error of a command stopped by Ctrl-C (or SIGTERM)
// before it wrote path.
func interrupted(err error, path string) error {
	if path == "" {
		return fmt.Errorf("interrupted (%w); nothing written", err)
	}
	return fmt.Errorf("interrupted (%w); nothing written to %s", err, path)
}

// interruptible runs fn (learning, solving: minutes for a large RanPAC) on
// its own goroutine and returns its error, or ctx's as soon as ctx is done:
// the command then returns without writing, and the process exits while fn
// is abandoned (heads take no context, so fn itself cannot be stopped).
func interruptible(ctx context.Context, path string, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return interrupted(err, path)
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err == nil && ctx.Err() != nil {
			return interrupted(ctx.Err(), path)
		}
		return err
	case <-ctx.Done():
		return interrupted(ctx.Err(), path)
	}
}

// isInterrupted reports whether err comes from Ctrl-C or SIGTERM.
func isInterrupted(err error) bool { return errors.Is(err, context.Canceled) }
