package cli

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
)

func init() {
	register(&cli.Command{
		Name:         "predict",
		OnUsageError: onUsageError,
		Usage:        "predict the k best classes of every row of a feature file with a head; CSV out",
		ArgsUsage:    " ",
		Description: "Writes one CSV row per feature row: row,id,label,pred_1…pred_k (class names; label is the\n" +
			"class the feature file gives the row). Predictions are exactly the ranking of the head's scores\n" +
			"(SimpleCIL, APER, NCM and LDA through the int8 shortlist with exact re-scoring). Rows are split\n" +
			"across --threads goroutines. A summary (rows, rows/s, top-1 accuracy on rows whose class the\n" +
			"head knows) goes to stderr.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "head", Usage: "head `FILE` (H.safetensors; required)"},
			&cli.StringFlag{Name: "features", Usage: "features `FILE` F.safetensors (or F,G for APER; required)"},
			&cli.IntFlag{Name: "top", Value: 1, Usage: "`K` classes per row, best first (1 … number of classes)"},
			&cli.StringFlag{Name: "out", Usage: "CSV `FILE` to write (atomically)", DefaultText: "standard output"},
			&cli.IntFlag{Name: "threads", Usage: "`N` goroutines ranking rows (0: one per CPU)"},
		},
		Action: func(c *cli.Context) error {
			if err := requireFlags(c, "head", "features"); err != nil {
				return err
			}
			if c.Args().Present() {
				return usageErrorf("predict takes no arguments (got %q)", c.Args().First())
			}
			if c.Int("top") < 1 {
				return usageErrorf("--top %d: want at least 1", c.Int("top"))
			}
			if c.Int("threads") < 0 {
				return usageErrorf("--threads %d: want 0 (one per CPU) or more", c.Int("threads"))
			}
			return runPredict(c.Context, predictOptions{
				Head: c.String("head"), Features: c.String("features"), Top: c.Int("top"),
				Out: c.String("out"), Threads: c.Int("threads"),
			}, c.App.Writer, c.App.ErrWriter)
		},
	})
}

type predictOptions struct {
	Head, Features, Out string
	Top, Threads        int
}

func runPredict(ctx context.Context, o predictOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	if o.Out != "" {
		if err := atomicfile.CheckWritable(o.Out); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	h, info, err := heads.Load(o.Head)
	if err != nil {
		return fmt.Errorf("--head: %w", err)
	}
	var set *features.Set
	if strings.Contains(o.Features, ",") { // two files joined (APER)
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
	write := func(w io.Writer) error {
		cw := csv.NewWriter(w)
		head := []string{"row", "id", "label"}
		for r := 1; r <= o.Top; r++ {
			head = append(head, "pred_"+strconv.Itoa(r))
		}
		if err := cw.Write(head); err != nil {
			return err
		}
		rec := make([]string, len(head))
		for i := 0; i < set.N; i++ {
			rec[0] = strconv.Itoa(i)
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
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	if o.Out != "" {
		err = atomicfile.WriteFile(o.Out, write)
	} else {
		err = write(stdout)
	}
	if err != nil {
		return fmt.Errorf("writing predictions: %w", err)
	}
	attrs := []any{"rows", set.N, "seconds", fmt.Sprintf("%.3f", elapsed.Seconds()),
		"rows_per_s", fmt.Sprintf("%.0f", float64(set.N)/max(elapsed.Seconds(), 1e-9)), "threads", threads}
	if rows > 0 {
		attrs = append(attrs, "top1_percent", fmt.Sprintf("%.2f", 100*float64(right)/float64(rows)), "labelled_known_rows", rows)
	}
	if o.Out != "" {
		attrs = append(attrs, "out", o.Out)
	}
	log.Info("predicted", attrs...)
	return nil
}
