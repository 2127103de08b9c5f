// Package cli wires cl's commands (urfave/cli/v2): flag parsing, calling the
// packages that do the work, printing. One file per command; no algorithm
// code lives here.
//
// Results go to stdout (a table for people, --json for programs); logs and
// progress go to stderr. Exit codes: 0 ok, 1 failure, 2 usage error.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/urfave/cli/v2"
)

// Version is the cl release, overridable at link time with
// -ldflags "-X github.com/cl-dev/cl/cli.Version=…".
var Version = "0.1.0-dev"

var commands []*cli.Command

// register adds a top-level command; each command file calls it from init.
func register(c *cli.Command) { commands = append(commands, c) }

// UsageError marks a bad command line (exit code 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// newLogger is the stderr logger every command's run function builds from
// its stderr writer.
func newLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// usageErrorf builds a UsageError.
func usageErrorf(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// NewApp builds the cl application writing to stdout and stderr.
func NewApp(stdout, stderr io.Writer) *cli.App {
	cmds := append([]*cli.Command(nil), commands...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return &cli.App{
		Name:      "cl",
		Usage:     "continual learning on frozen pre-trained vision models",
		Version:   Version,
		Writer:    stdout,
		ErrWriter: stderr,
		Commands:  cmds,
		Description: "Extract features once with a frozen ONNX backbone (cl extract), then fit, evaluate and\n" +
			"update class-incremental heads many times (cl fit, cl eval, cl bench).",
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return UsageError{err}
		},
		HideHelpCommand: true,
	}
}

// Main runs cl with os.Args and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	app := NewApp(os.Stdout, os.Stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "cl:", err)
	var ue UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
