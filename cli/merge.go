package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/atomicfile"
)

func init() {
	register(&cli.Command{
		Name:         "merge",
		OnUsageError: onUsageError,
		Usage:        "merge two heads of the same method fitted on the same backbone (adds their statistics)",
		ArgsUsage:    "A.safetensors B.safetensors",
		Description: "The result equals one head fitted on both heads' samples. A class present in both heads gets\n" +
			"the samples of both. Class labels must agree: a class B numbers differently from A is an error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "merged head file to write (may be A or B)"},
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
			return runMerge(args[0], args[1], out, c.App.Writer, logger(c))
		},
	})
}

// mergeClassNames returns A's class list extended with B's names so that
// every label B scores keeps its name, or an error when the two numberings
// disagree.
func mergeClassNames(a, b []string, bLabels []int) ([]string, error) {
	names := append([]string(nil), a...)
	for _, l := range bLabels {
		if l >= len(b) {
			return nil, fmt.Errorf("the second head scores label %d but lists only %d class names", l, len(b))
		}
		for len(names) <= l {
			names = append(names, b[len(names)])
		}
		if names[l] != b[l] {
			return nil, fmt.Errorf("label %d is class %q in the first head but %q in the second; heads merge only when they number classes alike (fit both from feature files with the same class list)", l, names[l], b[l])
		}
	}
	idx := map[string]int{}
	for i, n := range names {
		if j, dup := idx[n]; dup {
			return nil, fmt.Errorf("class %q would have two labels (%d and %d) in the merged head; fit both heads from feature files with the same class list", n, j, i)
		}
		idx[n] = i
	}
	return names, nil
}

func runMerge(pathA, pathB, out string, stdout io.Writer, log *slog.Logger) error {
	ha, ia, err := heads.Load(pathA)
	if err != nil {
		return err
	}
	hb, ib, err := heads.Load(pathB)
	if err != nil {
		return err
	}
	if ha.Method() != hb.Method() {
		return fmt.Errorf("%s is a %s head and %s a %s head; only heads of the same method merge", pathA, ha.Method(), pathB, hb.Method())
	}
	if ia.Fingerprint() != ib.Fingerprint() || (ia.Dim != 0 && ib.Dim != 0 && ia.Dim != ib.Dim) {
		return fmt.Errorf("%s was fitted on model %q (%s, dim %d) and %s on model %q (%s, dim %d); heads of different feature spaces cannot merge",
			pathA, ia.Model, ia.Preprocess, ia.Dim, pathB, ib.Model, ib.Preprocess, ib.Dim)
	}
	names, err := mergeClassNames(ia.Classes, ib.Classes, hb.Classes())
	if err != nil {
		return fmt.Errorf("merging %s into %s: %w", pathB, pathA, err)
	}
	if err := atomicfile.CheckWritable(out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := ha.Merge(hb); err != nil {
		return fmt.Errorf("merging %s into %s: %w", pathB, pathA, err)
	}
	if err := heads.Refresh(ha); err != nil {
		return fmt.Errorf("merging %s into %s: %w", pathB, pathA, err)
	}
	ia.Classes = names
	if err := heads.Save(out, ha, ia); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "merged %s and %s into %s (%s): %d classes\n", pathA, pathB, out, ha.Method(), len(ha.Classes()))
	return nil
}
