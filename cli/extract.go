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
	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models/ort"
)

func init() {
	register(&cli.Command{
		Name:         "extract",
		OnUsageError: onUsageError,
		Usage:        "compute the features of images with a backbone (once; heads reuse them)",
		ArgsUsage:    "[IMAGE...]",
		Description: "Reads --data (or the IMAGE files given, unlabelled), preprocesses each image as the model's manifest\n" +
			"says, runs the backbone in batches and writes a feature file (float32 [N,D] features, int64 labels,\n" +
			"class names, sample ids; see docs/FORMATS.md). Unlabelled images (images:DIR, a CSV list of paths, or\n" +
			"IMAGE arguments) give a file for cl predict, with no classes and every label -1. Unreadable images\n" +
			"(corrupt, not a regular file, too large to decode within --decode-memory) are skipped with a warning\n" +
			"and listed at the end (--strict: the run fails instead). Ctrl-C stops cleanly and writes nothing.\n" +
			"See docs/EXTRACT.md.\n\n" +
			"--data forms: " + data.Specs + "\n\n" +
			"Examples: cl extract --model mnv2.onnx --data cifar100:DATA/cifar-100-binary:test --out test.safetensors\n" +
			"          cl extract --model mnv2.onnx --out new.safetensors photos/*.jpg",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "backbone `FILE` (.onnx with a cl manifest, see cl models cut; required)", TakesFile: true},
			&cli.StringFlag{Name: "data", Usage: "the images, `SPEC`: " + data.Specs + "; or give IMAGE files as arguments"},
			&cli.StringFlag{Name: "out", Usage: "feature `FILE` to write (.safetensors; required)", TakesFile: true},
			&cli.IntFlag{Name: "batch", Value: 32, Usage: "`N` images per backbone call"},
			&cli.IntFlag{Name: "workers", Usage: "`N` decode/preprocess goroutines", DefaultText: "number of CPUs"},
			&cli.IntFlag{Name: "limit", Usage: "only the first `N` images, in data order", DefaultText: "all"},
			&cli.BoolFlag{Name: "strict", Usage: "fail (writing nothing) on the first unreadable image instead of skipping it"},
			&cli.Int64Flag{Name: "decode-memory", Value: imageproc.DefaultDecodeBudget >> 20,
				Usage: "`MiB` the images being decoded at once may take (estimated from each file's header); a larger image is skipped"},
			&cli.Int64Flag{Name: "buffer-memory", Value: extract.DefaultBufferMemory >> 20,
				Usage: "`MiB` of float32 image buffers a run may hold ((2·workers + 4 + 2·batch) images of the model's input)"},
		}, ortFlags()...),
		Action: func(c *cli.Context) error {
			if err := requireFlags(c, "model", "out"); err != nil {
				return err
			}
			o := extractOptions{Model: c.String("model"), Data: c.String("data"), Out: c.String("out"),
				Images: c.Args().Slice(), ORT: backboneOptions(c),
				Pipeline: extract.Options{Batch: c.Int("batch"), Workers: c.Int("workers"),
					Limit: c.Int("limit"), Strict: c.Bool("strict"),
					DecodeMemory: c.Int64("decode-memory") << 20, BufferMemory: c.Int64("buffer-memory") << 20}}
			switch {
			case o.Data != "" && len(o.Images) > 0:
				return usageErrorf("extract takes --data or IMAGE arguments, not both (got --data %s and %q)", o.Data, o.Images[0])
			case o.Data == "" && len(o.Images) == 0:
				return usageErrorf("extract needs the images: --data %s, or IMAGE files as arguments", data.Specs)
			}
			for _, f := range []struct {
				name string
				v    int64
				min  int64
			}{{"batch", int64(o.Pipeline.Batch), 1}, {"workers", int64(o.Pipeline.Workers), 0}, {"limit", int64(o.Pipeline.Limit), 0},
				{"decode-memory", c.Int64("decode-memory"), 1}, {"buffer-memory", c.Int64("buffer-memory"), 1}} {
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
	// Images are image files to extract unlabelled (instead of Data).
	Images   []string
	ORT      ort.Options
	Pipeline extract.Options
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
	var src data.Source
	var err error
	if len(o.Images) > 0 {
		var files *data.Files
		if files, err = data.OpenPaths(o.Images); err != nil {
			return err
		}
		src = data.Limit(files, o.Pipeline.Limit)
	} else if src, err = data.OpenFirst(o.Data, o.Pipeline.Limit); err != nil {
		return dataSpecError(err)
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
	log.Info("extracting", "images", n, "classes", len(src.Classes()), "data", src.Spec(),
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
		fmt.Fprintf(stderr, "skipped %s:\n", countOf(len(res.Skipped), "unreadable image", "unreadable images"))
		for _, s := range res.Skipped {
			fmt.Fprintf(stderr, "  %s\n", s)
		}
	}
	classes := countOf(len(src.Classes()), "class", "classes")
	if !data.Labelled(src) {
		classes = "unlabelled (for cl predict)"
	}
	fmt.Fprintf(stdout, "wrote %s: %s × %d features, %s, %d skipped; %.1f images/s (%s)\n",
		o.Out, countOf(res.Rows, "row", "rows"), res.D, classes, len(res.Skipped), res.ImagesPerSecond(), res.Elapsed.Round(1e7))
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

// countOf writes n with the singular or plural noun: "1 row", "2 rows".
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
