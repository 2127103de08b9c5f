package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/models"
)

// ortFlags are the ONNX Runtime flags shared by every command that runs a
// backbone (extract, predict, serve, models cut): append them to a command's
// Flags and read them back with backboneOptions.
func ortFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "ort-lib", Usage: "ONNX Runtime shared library (default $" + models.ORTLibEnv +
			", then the location scripts/install-onnxruntime.sh installs to)"},
		&cli.StringFlag{Name: "device", Value: "cpu", Usage: "where the backbone runs: cpu, cuda or cuda:N"},
		&cli.IntFlag{Name: "threads", Value: 0, Usage: "ONNX Runtime intra-op threads (0 = all cores)"},
	}
}

// backboneOptions reads the ortFlags of c into models.Options. The device is
// validated here so that a bad --device is a usage error (exit code 2).
func backboneOptions(c *cli.Context) (models.Options, error) {
	opts := models.Options{ORTLib: c.String("ort-lib"), Device: c.String("device"), Threads: c.Int("threads")}
	if _, err := models.ParseDevice(opts.Device); err != nil {
		return opts, usageErrorf("--device: %v", err)
	}
	if opts.Threads < 0 {
		return opts, usageErrorf("--threads %d: must be ≥ 0 (0 = all cores)", opts.Threads)
	}
	return opts, nil
}
