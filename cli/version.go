package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/openblas"
)

func init() {
	register(&cli.Command{
		Name:  "version",
		Usage: "print the cl version and Go runtime",
		Action: func(c *cli.Context) error {
			return runVersion(c.Context, versionOptions{}, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// versionOptions: `cl version` takes none.
type versionOptions struct{}

func runVersion(ctx context.Context, _ versionOptions, stdout, stderr io.Writer) error {
	if _, err := fmt.Fprintf(stdout, "cl %s (%s, %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH); err != nil {
		return err
	}
	blasLine := "float64 BLAS: " + linalg.Backend()
	if c := openblas.Config(); c != "" {
		blasLine += " — " + c
	}
	_, err := fmt.Fprintln(stdout, blasLine)
	return err
}
