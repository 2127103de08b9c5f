package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/heads"
)

func init() {
	register(&cli.Command{
		Name:         "eval",
		OnUsageError: onUsageError,
		Usage:        "evaluate a head on labelled features, or a learner on labelled images: top-1 and top-5 accuracy overall and per class",
		ArgsUsage:    " ",
		Description: "Rows whose class the head has not learned are left out of the accuracies and counted as\n" +
			"\"unknown\" (a class-incremental head cannot predict a class it never saw). With --learner (a file\n" +
			"of cl fit --learner) it scores the labelled images of --data in the ViT of --weights instead.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "head", Usage: "head `FILE` (H.safetensors; required unless --learner)"},
			&cli.StringFlag{Name: "features", Usage: "labelled test features `FILE` T.safetensors (or T,U for APER; required)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a table"},
		}, evalLearnerFlags()...),
		Action: func(c *cli.Context) error {
			if c.IsSet("learner") {
				return evalLearnerFrom(c)
			}
			if err := requireFlags(c, "head", "features"); err != nil {
				return err
			}
			if c.Args().Present() {
				return usageErrorf("eval takes no arguments (got %q)", c.Args().First())
			}
			return runEval(c.Context, evalOptions{Head: c.String("head"), Features: c.String("features"), JSON: c.Bool("json")},
				c.App.Writer, c.App.ErrWriter)
		},
	})
}

// ClassAccuracy is one class's row of `cl eval`.
type ClassAccuracy struct {
	Class string  `json:"class"`
	Rows  int     `json:"rows"`
	Top1  float64 `json:"top1"`
	Top5  float64 `json:"top5"`
}

// EvalReport is `cl eval --json`'s object. Accuracies are percentages.
type EvalReport struct {
	Head     string `json:"head,omitempty"`
	Method   string `json:"method"`
	Features string `json:"features,omitempty"`
	// Learner and Data replace Head and Features for a learner file
	// evaluated on images (cl eval --learner).
	Learner string `json:"learner,omitempty"`
	Data    string `json:"data,omitempty"`
	// Rows is the number of rows evaluated; Unknown the rows left out
	// because the head never learned their class (UnknownClasses).
	Rows           int             `json:"rows"`
	Unknown        int             `json:"unknown"`
	UnknownClasses []string        `json:"unknown_classes,omitempty"`
	Top1           float64         `json:"top1"`
	Top5           float64         `json:"top5"`
	K              int             `json:"k"`
	PerClass       []ClassAccuracy `json:"per_class"`
}

// evalOptions is everything `cl eval` needs.
type evalOptions struct {
	Head, Features string
	JSON           bool
}

func runEval(ctx context.Context, o evalOptions, stdout, stderr io.Writer) error {
	headPath, featPath, asJSON := o.Head, o.Features, o.JSON
	log := newLogger(stderr)
	h, info, err := heads.Load(headPath)
	if err != nil {
		return fmt.Errorf("--head: %w", err)
	}
	set, err := readFeatures("features", featPath)
	if err != nil {
		return err
	}
	if err := heads.CheckFeatures(info, set); err != nil {
		return fmt.Errorf("--features %s: %w", featPath, err)
	}
	// head label of each feature class, −1 when the head cannot predict it
	remap := scoredLabels(h, info.Classes, set.Classes)
	unknownNames := map[string]bool{}
	var rows []int
	var y []int
	unknown := 0
	for i, l := range set.Labels {
		if remap[l] < 0 {
			unknown++
			unknownNames[set.Classes[l]] = true
			continue
		}
		rows = append(rows, i)
		y = append(y, remap[l])
	}
	rep := EvalReport{Head: headPath, Method: h.Method(), Features: featPath, Rows: len(rows), Unknown: unknown}
	for n := range unknownNames {
		rep.UnknownClasses = append(rep.UnknownClasses, n)
	}
	sort.Strings(rep.UnknownClasses)
	if unknown > 0 {
		log.Warn("rows of classes the head has not learned are left out", "rows", unknown, "classes", strings.Join(rep.UnknownClasses, ","))
	}
	if len(rows) == 0 {
		return fmt.Errorf("--features %s: none of its rows belongs to a class the head %s has learned", featPath, headPath)
	}
	x := make([]float32, len(rows)*set.D)
	for j, i := range rows {
		copy(x[j*set.D:(j+1)*set.D], set.Row(i))
	}
	pred, k, err := heads.Rank(ctx, h, x, set.D, 5, 0)
	if err != nil {
		return err
	}
	rep.K = k
	return writeEval(&rep, y, pred, k, info.Classes, fmt.Sprintf("%s (%s, %s) on %s", headPath, h.Method(),
		countOf(len(h.Classes()), "class", "classes"), featPath), asJSON, stdout)
}

// writeEval fills rep's accuracies from the true labels y and the k best
// predictions pred [len(y), k] (labels into names) and prints it: one JSON
// object, or title, the overall line and a table per class.
func writeEval(rep *EvalReport, y, pred []int, k int, names []string, title string, asJSON bool, stdout io.Writer) error {
	type acc struct{ n, top1, topk int }
	per := map[int]*acc{}
	var t1, tk int
	for j, label := range y {
		a := per[label]
		if a == nil {
			a = &acc{}
			per[label] = a
		}
		a.n++
		top := pred[j*k : (j+1)*k]
		if top[0] == label {
			a.top1++
			t1++
		}
		for _, p := range top {
			if p == label {
				a.topk++
				tk++
				break
			}
		}
	}
	rep.Top1 = 100 * float64(t1) / float64(len(y))
	rep.Top5 = 100 * float64(tk) / float64(len(y))
	labels := make([]int, 0, len(per))
	for l := range per {
		labels = append(labels, l)
	}
	sort.Ints(labels)
	for _, l := range labels {
		a := per[l]
		rep.PerClass = append(rep.PerClass, ClassAccuracy{Class: names[l], Rows: a.n,
			Top1: 100 * float64(a.top1) / float64(a.n), Top5: 100 * float64(a.topk) / float64(a.n)})
	}
	if asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	fmt.Fprintf(stdout, "%s: %s, top-1 %.2f %%, top-%d %.2f %%", title, countOf(rep.Rows, "row", "rows"), rep.Top1, k, rep.Top5)
	if rep.Unknown > 0 {
		fmt.Fprintf(stdout, " (%s of %s left out)", countOf(rep.Unknown, "row", "rows"), countOf(len(rep.UnknownClasses), "unlearned class", "unlearned classes"))
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "class\trows\ttop-1 %%\ttop-%d %%\t\n", k)
	for _, a := range rep.PerClass {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t\n", a.Class, a.Rows, a.Top1, a.Top5)
	}
	return tw.Flush()
}
