package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/models/ort"
)

// ortFlags are the ONNX Runtime flags shared by every command that runs a
// backbone (extract, predict, serve, models cut): append them to a command's
// Flags and read them back with backboneOptions. A bad --device or --threads
// is a usage error (exit code 2), raised when the flags are parsed.
func ortFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "ort-lib", Usage: "ONNX Runtime shared library `FILE` (default $" + ort.LibEnv +
			", then the location scripts/install-onnxruntime.sh installs to)"},
		&cli.StringFlag{Name: "device", Value: "cpu", Usage: "`DEVICE` the backbone runs on: cpu, cuda or cuda:N",
			Action: func(_ *cli.Context, s string) error { return checkDevice(s) }},
		&cli.IntFlag{Name: "threads", Value: 0, Usage: "`N` ONNX Runtime intra-op threads (0 = all cores)",
			Action: func(_ *cli.Context, n int) error { return checkThreads(n) }},
	}
}

// backboneOptions reads the ortFlags of c into ort.Options (for
// ort.Open).
func backboneOptions(c *cli.Context) ort.Options {
	return ort.Options{ORTLib: c.String("ort-lib"), Device: c.String("device"), Threads: c.Int("threads")}
}

// checkBackboneFlags validates the ortFlags of c; commands declared with
// SkipFlagParsing (see parseAnywhere) call it, as urfave does not run the
// flags' checks for them.
func checkBackboneFlags(c *cli.Context) error {
	if err := checkDevice(c.String("device")); err != nil {
		return err
	}
	return checkThreads(c.Int("threads"))
}

func checkDevice(s string) error {
	if _, err := ort.ParseDevice(s); err != nil {
		return usageErrorf("--device: %v", err)
	}
	return nil
}

func checkThreads(n int) error {
	if n < 0 {
		return usageErrorf("--threads %d: must be ≥ 0 (0 = all cores)", n)
	}
	return nil
}
