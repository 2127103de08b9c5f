package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/learners"
	"github.com/cl-dev/cl/tune"
)

// `cl predict --learner`: the k best classes of images with a learner file,
// in the CSV of cl predict.

// predictLearnerOptions is everything `cl predict --learner` needs.
type predictLearnerOptions struct {
	Learner  string
	Backbone learnerBackbone
	Data     string   // a --data spec ("" with Images)
	Images   []string // image files given as arguments
	Top      int
	Out      string
}

func predictLearnerFrom(c *cli.Context) error {
	if c.IsSet("head") || c.IsSet("features") || c.IsSet("model") {
		return usageErrorf("give either a head (--head with --features or --model) or a learner (--learner, --weights), not both")
	}
	o := predictLearnerOptions{Learner: c.String("learner"), Data: c.String("data"), Images: c.Args().Slice(), Top: c.Int("top"), Out: c.String("out")}
	if (o.Data == "") == (len(o.Images) == 0) {
		return usageErrorf("--learner needs the images: --data SPEC or image files as arguments (one of the two)")
	}
	if o.Top < 1 {
		return usageErrorf("--top %d: want at least 1", o.Top)
	}
	if c.Int("threads") < 0 {
		return usageErrorf("--threads %d: want 0 (one per CPU) or more", c.Int("threads"))
	}
	b, err := learnerBackboneFrom(c)
	if err != nil {
		return err
	}
	o.Backbone = b
	return runPredictLearner(c.Context, o, c.App.Writer, c.App.ErrWriter)
}

func runPredictLearner(ctx context.Context, o predictLearnerOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	if err := checkOut(o.Out); err != nil {
		return err
	}
	l, fi, _, err := openLearner(o.Learner, o.Backbone, 0, log)
	if err != nil {
		return err
	}
	defer learners.Close(l)
	if c := len(fi.Learned); o.Top > c {
		return usageErrorf("--top %d: the learner %s has learned %s", o.Top, o.Learner, countOf(c, "class", "classes"))
	}
	var src data.Source
	if o.Data != "" {
		if src, err = data.Open(o.Data); err != nil {
			return usageErrorf("--data: %v", err)
		}
	} else if src, err = data.OpenPaths(o.Images); err != nil {
		return err
	}
	defer src.Close()
	d, labels, err := loadAll(ctx, src)
	if err != nil {
		return err
	}
	start := time.Now()
	scores, cols, err := scoreLearner(ctx, l, d)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	pred := rankScores(scores, len(cols), o.Top)
	rows, right := 0, 0
	global := map[string]int{}
	for _, k := range cols {
		global[fi.Names[k]] = k
	}
	for i, name := range labels {
		if k, ok := global[name]; ok && name != "" {
			rows++
			if cols[pred[i*o.Top]] == k {
				right++
			}
		}
	}
	err = writePredictions(ctx, o.Out, stdout, d.Len(), o.Top, func(i int, rec []string) {
		rec[1], rec[2] = d.IDs[i], labels[i]
		for r := 0; r < o.Top; r++ {
			rec[3+r] = fi.Names[cols[pred[i*o.Top+r]]]
		}
	})
	if err != nil {
		return err
	}
	logPredicted(log, d.Len(), elapsed, 1, []any{"learner", o.Learner}, rows, right, o.Out)
	return nil
}

// loadAll reads every image of src in its order (labelled or not) and
// returns them with their class names ("" when unlabelled).
func loadAll(ctx context.Context, src data.Source) (*tune.Dataset, []string, error) {
	d := &tune.Dataset{}
	var labels []string
	for i := 0; i < src.Len(); i++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		s, err := src.Load(i)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: sample %s: %w", src.Spec(), src.ID(i), err)
		}
		name := ""
		if y := src.Label(i); y != data.Unlabelled {
			name = src.Classes()[y]
		}
		d.Samples = append(d.Samples, s)
		d.Labels = append(d.Labels, 0)
		d.IDs = append(d.IDs, src.ID(i))
		labels = append(labels, name)
	}
	if d.Len() == 0 {
		return nil, nil, fmt.Errorf("%s holds no images", src.Spec())
	}
	return d, labels, nil
}
