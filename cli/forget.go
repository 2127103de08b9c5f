package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
)

// listValue collects a repeatable string flag without splitting on commas.
type listValue struct{ items []string }

func (l *listValue) Set(v string) error { l.items = append(l.items, v); return nil }
func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.items, " ")
}

func init() {
	register(&cli.Command{
		Name:         "forget",
		OnUsageError: onUsageError,
		Usage:        "remove whole classes, or the exact contribution of given samples, from a head",
		ArgsUsage:    " ",
		Description: "--class removes every statistic of a class (repeatable); --features removes exactly the rows of\n" +
			"a feature file that were learned before (unlearning). Every row must have been learned by the head\n" +
			"(same sample id, class and values, as its ledger records); otherwise nothing changes and the first\n" +
			"row that was not is named. The head is written back atomically, or to --out.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "head", Usage: "head `FILE` (H.safetensors; required)"},
			&freshGeneric{cli.GenericFlag{Name: "class", Usage: "`NAME` of a class to remove (repeatable)"}, func() cli.Generic { return &listValue{} }},
			&cli.StringFlag{Name: "features", Usage: "feature `FILE` whose rows to unlearn (F or F,G for APER)"},
			&cli.StringFlag{Name: "out", Usage: "write the result to `FILE` instead of replacing --head"},
		},
		Action: func(c *cli.Context) error {
			if err := requireFlags(c, "head"); err != nil {
				return err
			}
			if c.Args().Present() {
				return usageErrorf("forget takes no arguments (got %q)", c.Args().First())
			}
			classes := c.Generic("class").(*listValue).items
			feats := c.String("features")
			if (len(classes) > 0) == (feats != "") {
				return usageErrorf("give either --class NAME (repeatable) or --features F, not both or neither")
			}
			out := c.String("out")
			if out == "" {
				out = c.String("head")
			}
			return runForget(c.Context, forgetOptions{Head: c.String("head"), Classes: classes, Features: feats, Out: out},
				c.App.Writer, c.App.ErrWriter)
		},
	})
}

// forgetOptions is everything `cl forget` needs: either Classes or Features.
type forgetOptions struct {
	Head     string
	Classes  []string
	Features string
	Out      string // the file to write (Head when replacing it)
}

func runForget(ctx context.Context, o forgetOptions, stdout, stderr io.Writer) error {
	headPath, classes, featPath, out := o.Head, o.Classes, o.Features, o.Out
	lock, err := lockForWrite(ctx, "--out", out, stderr)
	if err != nil {
		return err
	}
	defer lock.Release()
	h, info, err := heads.Load(headPath)
	if err != nil {
		return fmt.Errorf("--head: %w", err)
	}
	if err := atomicfile.CheckWritable(out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	scored := map[int]bool{}
	var have []string
	for _, l := range h.Classes() {
		scored[l] = true
		have = append(have, info.Classes[l])
	}
	var what string
	if len(classes) > 0 {
		index, _ := features.MapClasses(info.Classes, classes)
		for i, name := range classes {
			l := index[i]
			if l >= len(info.Classes) || !scored[l] {
				return fmt.Errorf("--class %q: %s has no such class (it has: %s)", name, headPath, strings.Join(have, ", "))
			}
			if err := h.RemoveClass(l); err != nil {
				if errors.Is(err, heads.ErrNeedSamples) {
					return fmt.Errorf("--class %q: %s cannot remove a class from its statistics alone (the class's samples are mixed into the shared covariance); "+
						"remove its rows instead: cl features select F.safetensors --class %q --out C.safetensors with the feature file the class was learned from, "+
						"then cl forget --head %s --features C.safetensors", name, aHead(h.Method()), name, headPath)
				}
				return fmt.Errorf("removing class %q: %w", name, err)
			}
			delete(scored, l)
			if info.Ledger != nil {
				info.Ledger.RemoveLabel(l)
			}
		}
		what = fmt.Sprintf("removed %s (%s)", countOf(len(classes), "class", "classes"), strings.Join(classes, ", "))
	} else {
		set, err := readFeatures("features", featPath)
		if err != nil {
			return err
		}
		if err := heads.CheckFeatures(info, set); err != nil {
			return fmt.Errorf("--features %s: %w", featPath, err)
		}
		rest, y, err := checkLearned(info, set, headPath)
		if err != nil {
			return fmt.Errorf("--features %s: %w", featPath, err)
		}
		if err := interruptible(ctx, out, func() error { return h.Unlearn(set.X, y) }); err != nil {
			if isInterrupted(err) {
				return err
			}
			return fmt.Errorf("unlearning %s: %w", featPath, err)
		}
		info.Ledger = rest
		what = fmt.Sprintf("unlearned %s of %s", countOf(set.N, "row", "rows"), featPath)
	}
	if len(h.Classes()) > 0 {
		headProgress(h, stderr)
		if err := interruptible(ctx, out, func() error { return heads.Refresh(h) }); err != nil {
			if isInterrupted(err) {
				return err
			}
			return fmt.Errorf("updating the head after forgetting: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return interrupted(err, out)
	}
	if err := heads.Save(out, h, info); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s from %s; wrote %s (%s left)\n", what, headPath, out, countOf(len(h.Classes()), "class", "classes"))
	return nil
}

// checkLearned verifies, before anything changes, that the head learned
// every row of set (same sample, class and values; heads.Ledger.Without)
// and returns the ledger without them and the rows' head labels. Unlearning
// rows a head never learned would silently corrupt its statistics, so any
// such row refuses the whole request, named in the error.
func checkLearned(info heads.Info, set *features.Set, headPath string) (*heads.Ledger, []int, error) {
	if info.Ledger == nil {
		return nil, nil, fmt.Errorf("%s keeps no ledger of the rows it learned (written by an older cl, or by a program that keeps none), so cl cannot check that these rows were learned; "+
			"refit the head from its feature files with this cl, or remove whole classes with --class", headPath)
	}
	index, _ := features.MapClasses(info.Classes, set.Classes)
	y := make([]int, set.N)
	for i, l := range set.Labels {
		if y[i] = index[l]; y[i] >= len(info.Classes) {
			return nil, nil, fmt.Errorf("row %d has class %q, which %s never learned; nothing was changed", i, set.Classes[l], headPath)
		}
	}
	rows, err := heads.NewLedgerRows(set, y)
	if err != nil {
		return nil, nil, err
	}
	rest, err := info.Ledger.Without(rows, info.Classes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w; nothing was changed (cl forget --features removes only rows that %s learned)", err, headPath)
	}
	return rest, y, nil
}
