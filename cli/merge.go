package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
)

func init() {
	register(&cli.Command{
		Name:         "merge",
		OnUsageError: onUsageError,
		Usage:        "merge two heads of the same method fitted on the same backbone (adds their statistics)",
		ArgsUsage:    "A.safetensors B.safetensors",
		Description: "The result equals one head fitted on both heads' samples. Classes are matched by name: a class\n" +
			"present in both heads gets the samples of both, B's other classes are appended to A's class list\n" +
			"(heads fitted from files that number their classes differently merge). Heads that learned a common\n" +
			"sample (a head and itself, or a copy) are refused: the sample would count twice.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "merged head `FILE` to write (may be A or B; required)"},
		},
		Action: func(c *cli.Context) error {
			// Flags stop at the first argument in urfave/cli, so accept
			// "cl merge A B --out C" by reading a trailing --out here.
			out := c.String("out")
			var args []string
			rest := c.Args().Slice()
			for i := 0; i < len(rest); i++ {
				switch a := rest[i]; {
				case a == "--out" || a == "-out":
					if i+1 >= len(rest) {
						return usageErrorf("--out needs a file name")
					}
					out = rest[i+1]
					i++
				case strings.HasPrefix(a, "--out="):
					out = strings.TrimPrefix(a, "--out=")
				default:
					args = append(args, a)
				}
			}
			if out == "" {
				return usageErrorf("flag --out is required (cl merge A B --out C)")
			}
			if len(args) != 2 {
				return usageErrorf("merge needs two head files, got %d arguments (cl merge A B --out C)", len(args))
			}
			return runMerge(c.Context, mergeOptions{A: args[0], B: args[1], Out: out}, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// mergeClassNames returns A's class list extended with the names of B's
// classes that A does not list, and the label each of B's classes takes in
// it (classes are matched by name, so heads fitted from files that number
// their classes differently merge).
func mergeClassNames(a, b []string, bLabels []int) ([]string, map[int]int, error) {
	index, names := features.MapClasses(a, b)
	to := map[int]int{}
	for _, l := range bLabels {
		if l >= len(b) {
			return nil, nil, fmt.Errorf("the second head scores label %d but lists only %d class names", l, len(b))
		}
		to[l] = index[l]
	}
	return names, to, nil
}

// checkNotSame refuses to merge a head file with itself: every sample would
// count twice.
func checkNotSame(pathA, pathB string) error {
	sa, errA := os.Stat(pathA)
	sb, errB := os.Stat(pathB)
	if errA == nil && errB == nil && os.SameFile(sa, sb) {
		return fmt.Errorf("%s and %s are the same head file: merging a head with itself would count every sample twice", pathA, pathB)
	}
	return nil
}

// mergeLedgers refuses heads that learned a common sample (their ledgers,
// with B's classes renumbered as in the result, share an entry): the merged
// head would count it twice. It returns the merged ledger, or nil when
// either head keeps none (written by an older cl, or by a program that keeps none; then nothing can be
// checked, which is logged).
func mergeLedgers(ia, ib heads.Info, to map[int]int, pathA, pathB string, log *slog.Logger) (*heads.Ledger, error) {
	if ia.Ledger == nil || ib.Ledger == nil {
		log.Warn("a head keeps no ledger of its learned rows (written by an older cl, or by a program that keeps none): samples learned by both cannot be detected, and the merged head keeps no ledger",
			"a", pathA, "a_ledger", ia.Ledger != nil, "b", pathB, "b_ledger", ib.Ledger != nil)
		return nil, nil
	}
	ib.Ledger.Relabel(to)
	if err := ia.Ledger.CheckDisjoint(ib.Ledger); err != nil {
		return nil, fmt.Errorf("%s and %s: %w; merging them would count those samples twice (merge heads fitted on disjoint samples)", pathA, pathB, err)
	}
	merged := heads.NewLedger()
	merged.Merge(ia.Ledger)
	merged.Merge(ib.Ledger)
	return merged, nil
}

// mergeOptions is everything `cl merge` needs.
type mergeOptions struct{ A, B, Out string }

func runMerge(ctx context.Context, o mergeOptions, stdout, stderr io.Writer) error {
	pathA, pathB, out := o.A, o.B, o.Out
	log := newLogger(stderr)
	if err := checkNotSame(pathA, pathB); err != nil {
		return err
	}
	lock, err := lockForWrite(ctx, "--out", out, stderr)
	if err != nil {
		return err
	}
	defer lock.Release()
	ha, ia, err := heads.Load(pathA)
	if err != nil {
		return err
	}
	hb, ib, err := heads.Load(pathB)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		path string
		h    heads.Head
	}{{pathA, ha}, {pathB, hb}} {
		if heads.InferenceOnly(x.h) {
			return fmt.Errorf("%s: %w", x.path, heads.ErrInferenceOnly)
		}
	}
	if ha.Method() != hb.Method() {
		return fmt.Errorf("%s is %s and %s %s; only heads of the same method merge", pathA, aHead(ha.Method()), pathB, aHead(hb.Method()))
	}
	if !features.Same(ia.Space(), ib.Space()) || (ia.Dim != 0 && ib.Dim != 0 && ia.Dim != ib.Dim) {
		return fmt.Errorf("%s was fitted on %s (dim %d) and %s on %s (dim %d); heads of different feature spaces cannot merge",
			pathA, ia.Space(), ia.Dim, pathB, ib.Space(), ib.Dim)
	}
	names, to, err := mergeClassNames(ia.Classes, ib.Classes, hb.Classes())
	if err != nil {
		return fmt.Errorf("merging %s into %s: %w", pathB, pathA, err)
	}
	ledger, err := mergeLedgers(ia, ib, to, pathA, pathB, log)
	if err != nil {
		return err
	}
	for l, t := range to {
		if l != t {
			if err := heads.Relabel(hb, to); err != nil {
				return fmt.Errorf("renumbering the classes of %s as in %s: %w", pathB, pathA, err)
			}
			log.Info("classes matched by name", "renumbered", pathB)
			break
		}
	}
	if err := atomicfile.CheckWritable(out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	headProgress(ha, stderr)
	err = interruptible(ctx, out, func() error {
		if err := ha.Merge(hb); err != nil {
			return fmt.Errorf("merging %s into %s: %w", pathB, pathA, err)
		}
		if err := heads.Refresh(ha); err != nil {
			return fmt.Errorf("merging %s into %s: %w", pathB, pathA, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ia.Classes, ia.Ledger = names, ledger
	ia.Fingerprint = ia.Space().Adopt(ib.Space()).Fingerprint
	if err := heads.Save(out, ha, ia); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "merged %s and %s into %s (%s): %s\n", pathA, pathB, out, ha.Method(), countOf(len(ha.Classes()), "class", "classes"))
	return nil
}
