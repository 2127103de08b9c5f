package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/cl-dev/cl/extract"
	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/models/ort"
)

func init() {
	register(&cli.Command{
		Name:         "extract",
		OnUsageError: onUsageError,
		Usage:        "compute the features of a labelled image data set with a backbone (once; heads reuse them)",
		ArgsUsage:    " ",
		Description: "Reads --data, preprocesses each image as the model's manifest says, runs the backbone in batches\n" +
			"and writes a feature file (float32 [N,D] features, int64 labels, class names, sample ids; see\n" +
			"docs/FORMATS.md). Unreadable images are skipped with a warning and listed at the end (--strict: the\n" +
			"run fails instead). Ctrl-C stops cleanly and writes nothing. See docs/EXTRACT.md.\n\n" +
			"--data forms: " + data.Specs + "\n\n" +
			"Example: cl extract --model mnv2.onnx --data cifar100:DATA/cifar-100-binary:test --out test.safetensors",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "backbone .onnx with a cl manifest (see cl models cut)"},
			&cli.StringFlag{Name: "data", Usage: "the images: " + data.Specs},
			&cli.StringFlag{Name: "out", Usage: "feature file to write (F.safetensors)"},
			&cli.IntFlag{Name: "batch", Value: 32, Usage: "images per backbone call"},
			&cli.IntFlag{Name: "workers", Value: 0, Usage: "decode/preprocess goroutines (0 = number of CPUs)"},
			&cli.IntFlag{Name: "limit", Value: 0, Usage: "only the first N images, in data order (0 = all)"},
			&cli.BoolFlag{Name: "strict", Usage: "fail (writing nothing) on the first unreadable image instead of skipping it"},
		}, ortFlags()...),
		Action: func(c *cli.Context) error {
			if err := requireFlags(c, "model", "data", "out"); err != nil {
				return err
			}
			if c.Args().Present() {
				return usageErrorf("extract takes no arguments (got %q); give the images with --data", c.Args().First())
			}
			o := extractOptions{Model: c.String("model"), Data: c.String("data"), Out: c.String("out"),
				ORT: backboneOptions(c),
				Pipeline: extract.Options{Batch: c.Int("batch"), Workers: c.Int("workers"),
					Limit: c.Int("limit"), Strict: c.Bool("strict")}}
			for _, f := range []struct {
				name string
				v    int
				min  int
			}{{"batch", o.Pipeline.Batch, 1}, {"workers", o.Pipeline.Workers, 0}, {"limit", o.Pipeline.Limit, 0}} {
				if f.v < f.min {
					return usageErrorf("--%s %d: must be ≥ %d", f.name, f.v, f.min)
				}
			}
			o.Terminal = isTerminal(c.App.ErrWriter)
			return runExtract(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// extractOptions is everything `cl extract` needs.
type extractOptions struct {
	Model, Data, Out string
	ORT              ort.Options
	Pipeline         extract.Options
	// Terminal turns the progress bar on (stderr is a terminal).
	Terminal bool
}

// isTerminal reports whether w is a terminal (an *os.File on a tty).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runExtract opens the data (checking every file), checks that --out can be
// written, loads the model, and runs the pipeline. The summary goes to
// stdout; warnings, the progress bar and the list of skipped images to
// stderr.
func runExtract(ctx context.Context, o extractOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	src, err := data.Open(o.Data)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := extract.CheckOut(o.Out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	bb, err := ort.Open(o.Model, o.ORT)
	if err != nil {
		return err
	}
	defer bb.Close()

	logw := stderr
	if o.Terminal {
		o.Pipeline.Progress = stderr
		logw = clearLine{stderr}
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	o.Pipeline.Log = log
	// On the CPU with ONNX Runtime using every core (--threads 0 = its
	// default, all cores), decoding in the gaps between batches beats
	// overlapping it (docs/PERFORMANCE.md, "Extraction").
	o.Pipeline.DecodeBetweenRuns = !bb.Device().CUDA && (o.ORT.Threads == 0 || o.ORT.Threads >= runtime.NumCPU())
	n := src.Len()
	if o.Pipeline.Limit > 0 && o.Pipeline.Limit < n {
		n = o.Pipeline.Limit
	}
	log.Info("extracting", "images", n, "classes", len(src.Classes()), "data", o.Data,
		"model", filepath.Base(o.Model), "dim", bb.Dim(), "input", fmt.Sprintf("%dx%d", bb.InputSize(), bb.InputSize()),
		"device", bb.Device().String())
	res, err := extract.Extract(ctx, src, bb, o.Out, o.Pipeline)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w; nothing written to %s", err, o.Out)
		}
		return err
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintf(stderr, "skipped %d unreadable images:\n", len(res.Skipped))
		for _, s := range res.Skipped {
			fmt.Fprintf(stderr, "  %s\n", s)
		}
	}
	fmt.Fprintf(stdout, "wrote %s: %d rows × %d features, %d classes, %d skipped; %.1f images/s (%s)\n",
		o.Out, res.Rows, res.D, len(src.Classes()), len(res.Skipped), res.ImagesPerSecond(), res.Elapsed.Round(1e7))
	return nil
}

// clearLine erases the progress bar's line before each log record.
type clearLine struct{ w io.Writer }

func (c clearLine) Write(p []byte) (int, error) {
	if _, err := io.WriteString(c.w, "\r\033[K"); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
