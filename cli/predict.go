package cli

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/models/ort"
)

func init() {
	register(&cli.Command{
		Name:         "predict",
		OnUsageError: onUsageError,
		Usage:        "predict the k best classes of every row of a feature file, or of images, with a head; CSV out",
		ArgsUsage:    "[IMAGE…] (with --model or --learner)",
		Description: "Writes one CSV row per feature row: row,id,label,pred_1…pred_k (class names; label is the\n" +
			"class the feature file gives the row). Predictions are exactly the ranking of the head's scores\n" +
			"(SimpleCIL, APER, NCM and LDA through the int8 shortlist with exact re-scoring). Rows are split\n" +
			"across --threads goroutines. A summary (rows, rows/s, top-1 accuracy on rows whose class the\n" +
			"head knows) goes to stderr. With --model BACKBONE.onnx it predicts straight from images: --data SPEC\n" +
			"(as cl extract) or image files as arguments; the images go through cl extract's pipeline first.\n" +
			"With --learner (a file of cl fit --learner) and --weights it predicts from images the same way.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "head", Usage: "head `FILE` (H.safetensors; required unless --learner)"},
			&cli.StringFlag{Name: "features", Usage: "features `FILE` F.safetensors (or F,G for APER; required without --model)"},
			&cli.StringFlag{Name: "model", Usage: "backbone `FILE` (.onnx): predict from images (--data or IMAGE arguments) instead of --features"},
			&cli.StringFlag{Name: "data", Usage: "images `SPEC` for --model or --learner, as cl extract --data (DIR, list:FILE.csv, idx:…, cifar10:…)"},
			&cli.StringFlag{Name: "ort-lib", Usage: "ONNX Runtime shared library `FILE` for --model (default $" + ort.LibEnv + ")"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "`DEVICE` the backbone runs on: cpu, cuda or cuda:N",
				Action: func(_ *cli.Context, s string) error { return checkDevice(s) }},
			&cli.IntFlag{Name: "top", Value: 1, Usage: "`K` classes per row, best first (1 … number of classes)"},
			&cli.StringFlag{Name: "out", Usage: "CSV `FILE` to write (atomically)", DefaultText: "standard output"},
			&cli.IntFlag{Name: "threads", Usage: "`N` goroutines ranking rows, and ONNX Runtime threads with --model or --learner (0: one per CPU)"},
		}, learnerFlags("to predict with, instead of --head: images from --data or arguments")...),
		Action: func(c *cli.Context) error {
			if c.IsSet("learner") {
				return predictLearnerFrom(c)
			}
			var img *imageInput
			if c.String("model") != "" {
				if err := requireFlags(c, "head"); err != nil {
					return err
				}
				img = &imageInput{Model: c.String("model"), Data: c.String("data"), Images: c.Args().Slice(),
					ORT: ort.Options{ORTLib: c.String("ort-lib"), Device: c.String("device"), Threads: c.Int("threads")}}
				switch {
				case c.String("features") != "":
					return usageErrorf("--model predicts from images: give --data SPEC or image files, not --features")
				case (img.Data == "") == (len(img.Images) == 0):
					return usageErrorf("--model needs the images: --data SPEC or image files as arguments (one of the two)")
				}
			} else {
				if err := requireFlags(c, "head", "features"); err != nil {
					return err
				}
				if c.Args().Present() {
					return usageErrorf("predict takes image arguments only with --model (got %q)", c.Args().First())
				}
				if c.String("data") != "" {
					return usageErrorf("--data needs --model (the backbone that turns the images into features)")
				}
			}
			if c.Int("top") < 1 {
				return usageErrorf("--top %d: want at least 1", c.Int("top"))
			}
			if c.Int("threads") < 0 {
				return usageErrorf("--threads %d: want 0 (one per CPU) or more", c.Int("threads"))
			}
			return runPredict(c.Context, predictOptions{
				Head: c.String("head"), Features: c.String("features"), Top: c.Int("top"),
				Out: c.String("out"), Threads: c.Int("threads"), Images: img,
			}, c.App.Writer, c.App.ErrWriter)
		},
	})
}

type predictOptions struct {
	Head, Features, Out string
	Top, Threads        int
	// Images, when set, replaces Features: predict from images.
	Images *imageInput
}

func runPredict(ctx context.Context, o predictOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	if err := checkOut(o.Out); err != nil {
		return err
	}
	h, info, err := heads.Load(o.Head)
	if err != nil {
		return fmt.Errorf("--head: %w", err)
	}
	var set *features.Set
	if o.Images != nil {
		if set, err = extractForPredict(ctx, *o.Images, log); err != nil {
			return err
		}
		o.Features = "(images through " + o.Images.Model + ")"
	} else if strings.Contains(o.Features, ",") { // two files joined (APER)
		set, err = readFeatures("features", o.Features)
	} else if set, err = features.ReadAny(o.Features); err != nil { // labelled or not
		err = fmt.Errorf("--features: %w", err)
	}
	if err != nil {
		return err
	}
	if err := heads.CheckFeatures(info, set); err != nil {
		return fmt.Errorf("--features %s: %w", o.Features, err)
	}
	if c := len(h.Classes()); o.Top > c {
		return usageErrorf("--top %d: the head %s has %s", o.Top, o.Head, countOf(c, "class", "classes"))
	}
	threads := o.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	start := time.Now()
	pred, _, err := heads.RankParallel(ctx, h, set.X, set.D, o.Top, threads)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)

	remap := scoredLabels(h, info.Classes, set.Classes)
	rows, right := 0, 0
	for i, l := range set.Labels {
		if l == features.Unlabelled {
			continue
		}
		if k := remap[l]; k >= 0 {
			rows++
			if pred[i*o.Top] == k {
				right++
			}
		}
	}
	err = writePredictions(ctx, o.Out, stdout, set.N, o.Top, func(i int, rec []string) {
		rec[1] = ""
		if i < len(set.IDs) {
			rec[1] = set.IDs[i]
		}
		rec[2] = ""
		if l := set.Labels[i]; l != features.Unlabelled {
			rec[2] = set.Classes[l]
		}
		for r := 0; r < o.Top; r++ {
			rec[3+r] = info.Classes[pred[i*o.Top+r]]
		}
	})
	if err != nil {
		return err
	}
	logPredicted(log, set.N, elapsed, 0, []any{"threads", threads}, rows, right, o.Out)
	return nil
}

// checkOut checks early that --out FILE can be written ("" is stdout).
func checkOut(out string) error {
	if out != "" {
		if err := atomicfile.CheckWritable(out); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	return nil
}

// writePredictions writes the CSV of cl predict, a header
// row,id,label,pred_1…pred_top and n rows, atomically to out, or to stdout
// when out is "". fill sets rec[1] (the row's id), rec[2] (its label, ""
// when unlabelled) and rec[3:] (the top class names, best first) of row i;
// rec[0] is i.
func writePredictions(ctx context.Context, out string, stdout io.Writer, n, top int, fill func(i int, rec []string)) error {
	write := func(w io.Writer) error {
		cw := csv.NewWriter(w)
		head := []string{"row", "id", "label"}
		for r := 1; r <= top; r++ {
			head = append(head, "pred_"+strconv.Itoa(r))
		}
		if err := cw.Write(head); err != nil {
			return err
		}
		rec := make([]string, len(head))
		for i := 0; i < n; i++ {
			rec[0] = strconv.Itoa(i)
			fill(i, rec)
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	var err error
	if out != "" {
		if err := ctx.Err(); err != nil {
			return interrupted(err, out)
		}
		err = atomicfile.WriteFile(out, write)
	} else {
		err = write(stdout)
	}
	if err != nil {
		return fmt.Errorf("writing predictions: %w", err)
	}
	return nil
}

// logPredicted logs the summary of a prediction run: n rows in elapsed
// (rows_per_s with rateDigits decimals), the attributes who (what
// predicted), the top-1 accuracy over the rows labelled with a class the
// predictor knows (rows of them, right of them correct; left out when rows
// is 0) and out.
func logPredicted(log *slog.Logger, n int, elapsed time.Duration, rateDigits int, who []any, rows, right int, out string) {
	attrs := []any{"rows", n, "seconds", fmt.Sprintf("%.3f", elapsed.Seconds()),
		"rows_per_s", strconv.FormatFloat(float64(n)/max(elapsed.Seconds(), 1e-9), 'f', rateDigits, 64)}
	attrs = append(attrs, who...)
	if rows > 0 {
		attrs = append(attrs, "top1_percent", fmt.Sprintf("%.2f", 100*float64(right)/float64(rows)), "labelled_known_rows", rows)
	}
	if out != "" {
		attrs = append(attrs, "out", out)
	}
	log.Info("predicted", attrs...)
}
