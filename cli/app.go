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
	cmds := append([]*cli.Command{helpCommand}, commands...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	finishCommands("cl", cmds)
	return &cli.App{
		Name:      "cl",
		HelpName:  "cl",
		Usage:     "continual learning on frozen pre-trained vision models",
		Version:   Version,
		Writer:    stdout,
		ErrWriter: stderr,
		Commands:  cmds,
		// urfave adds --help only when it adds its own help command; cl has
		// its own (helpCommand), so the flag is declared here.
		Flags: []cli.Flag{cli.HelpFlag},
		Description: "Extract features once with a frozen ONNX backbone (cl extract), then fit, evaluate and\n" +
			"update class-incremental heads many times (cl fit, cl eval, cl bench). cl help COMMAND shows\n" +
			"a command's flags. Exit codes: 0 ok, 1 failure, 2 usage error.",
		OnUsageError: flagErrorFunc("cl"),
		// Without arguments: the help; an unknown command: a usage error.
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("unknown command %q (see cl --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		// Main turns errors into exit codes; urfave must not exit itself.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// exitCode is the process exit code of a command's error: 0 for none, 2
// for a usage error, 1 for any other failure.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// Main runs cl with os.Args and returns the process exit code.
func Main(ctx context.Context, args []string) int {
	app := NewApp(os.Stdout, os.Stderr)
	err := app.RunContext(ctx, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cl:", err)
	}
	return exitCode(err)
}
