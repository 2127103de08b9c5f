package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/learners"
)

// `cl eval --learner`: a learner file's accuracy on labelled images.

func evalLearnerFlags() []cli.Flag {
	return learnerImageFlags("to evaluate, instead of --head", "labelled test images",
		&cli.IntFlag{Name: "per-class", Usage: "with --learner: at most `N` images per class (0 = all)"})
}

// evalLearnerOptions is everything `cl eval --learner` needs.
type evalLearnerOptions struct {
	Learner, Data string
	Backbone      learnerBackbone
	PerClass      int
	JSON          bool
}

func evalLearnerFrom(c *cli.Context) error {
	if err := requireFlags(c, "learner", "data"); err != nil {
		return err
	}
	if c.IsSet("head") || c.IsSet("features") {
		return usageErrorf("give either a head (--head, --features) or a learner (--learner, --weights, --data), not both")
	}
	if c.Args().Present() {
		return usageErrorf("eval takes no arguments (got %q)", c.Args().First())
	}
	if c.Int("per-class") < 0 {
		return usageErrorf("--per-class %d: must be ≥ 0", c.Int("per-class"))
	}
	b, err := learnerBackboneFrom(c)
	if err != nil {
		return err
	}
	return runEvalLearner(c.Context, evalLearnerOptions{Learner: c.String("learner"), Data: c.String("data"), Backbone: b,
		PerClass: c.Int("per-class"), JSON: c.Bool("json")}, c.App.Writer, c.App.ErrWriter)
}

// runEvalLearner scores the images of the classes the learner has learned
// (the others are counted as unknown, as cl eval of a head) and prints
// top-1 and top-5 accuracy overall and per class.
func runEvalLearner(ctx context.Context, o evalLearnerOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	l, fi, _, err := openLearner(o.Learner, o.Backbone, 0, log)
	if err != nil {
		return err
	}
	defer learners.Close(l)
	ev, err := loadForLearner(ctx, o.Data, o.PerClass, fi)
	if err != nil {
		return err
	}
	if ev.Unknown > 0 {
		log.Warn("images of classes the learner has not learned are left out", "images", ev.Unknown, "classes", strings.Join(ev.UnknownClasses, ","))
	}
	scores, cols, err := scoreLearner(ctx, l, ev.Images)
	if err != nil {
		return err
	}
	k := min(5, len(cols))
	pred := rankScores(scores, len(cols), k)
	for i, j := range pred {
		pred[i] = cols[j]
	}
	rep := EvalReport{Learner: o.Learner, Method: fi.Method, Data: o.Data, Rows: ev.Images.Len(), Unknown: ev.Unknown,
		UnknownClasses: ev.UnknownClasses, K: k}
	return writeEval(&rep, ev.Images.Labels, pred, k, fi.Names, fmt.Sprintf("%s (%s, %s) on %s", o.Learner, fi.Method,
		countOf(len(cols), "class", "classes"), o.Data), o.JSON, stdout)
}
