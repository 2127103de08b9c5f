package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/learners"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
)

// Learner files (l2p, dualprompt, coda-prompt, ease, aper-*, ranpac-phase1:
// trained with `cl fit --learner`, read through learners.Open) in fit,
// eval, predict and serve: the flags they share and the ViT they run in.

// learnerBackbone is the pre-trained ViT a learner file was trained in, and
// how to run it.
type learnerBackbone struct {
	Weights string
	Heads   int
	Workers int
	Session ort.SessionOptions
}

// learnerFlags are the flags every command that reads a learner file adds
// (its own --learner flag says what the file is for there).
func learnerFlags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "learner", Usage: "learner `FILE` (" + what + "; l2p, dualprompt, coda-prompt, ease, aper-*, ranpac-phase1: needs --weights)", TakesFile: true},
		&cli.StringFlag{Name: "weights", Usage: "with --learner: the pre-trained ViT checkpoint `FILE` it is trained in (as cl bench --weights)", TakesFile: true},
		&cli.IntFlag{Name: "heads", Usage: "with --learner: `N` attention heads of the checkpoint (0 = the learner file's, else stored in .npz, else width/64)"},
		&cli.IntFlag{Name: "workers", Value: 2, Usage: "with --learner: `N` goroutines decoding images"},
	}
}

// learnerBackboneFrom reads the learner flags of c (and the ONNX Runtime
// flags, which the command declares itself).
func learnerBackboneFrom(c *cli.Context) (learnerBackbone, error) {
	if err := requireFlags(c, "weights"); err != nil {
		return learnerBackbone{}, usageErrorf("--learner needs --weights: the pre-trained ViT checkpoint the learner is trained in")
	}
	if c.Int("heads") < 0 {
		return learnerBackbone{}, usageErrorf("--heads %d: must be ≥ 0", c.Int("heads"))
	}
	if c.Int("workers") < 1 {
		return learnerBackbone{}, usageErrorf("--workers %d: must be ≥ 1", c.Int("workers"))
	}
	return learnerBackbone{Weights: c.String("weights"), Heads: c.Int("heads"), Workers: c.Int("workers"),
		Session: ort.SessionOptions{ORTLib: c.String("ort-lib"), Device: c.String("device"), Threads: c.Int("threads")}}, nil
}

// env reads the checkpoint (SHA-256 of its bytes, as cl bench) into a
// learner environment that logs progress to log.
func (b learnerBackbone) env(seed uint64, log *slog.Logger) (learners.Env, error) {
	raw, err := os.ReadFile(b.Weights)
	if err != nil {
		return learners.Env{}, fmt.Errorf("--weights: %w", err)
	}
	sum := sha256.Sum256(raw)
	w, err := vit.Parse(b.Weights, raw, b.Heads)
	if err != nil {
		return learners.Env{}, fmt.Errorf("--weights: %w", err)
	}
	return learners.Env{Weights: w, WeightsSHA256: hex.EncodeToString(sum[:]), Session: b.Session, Workers: b.Workers, Seed: seed,
		Log: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }}, nil
}

// openLearner reads the header of the learner file (a head file or another
// file is refused naming it), then the weights, and loads the learner: a
// learner trained on other weights is refused before its tensors are read.
// Without --heads the weights are read with the heads the file records;
// other --heads are refused.
func openLearner(path string, b learnerBackbone, seed uint64, log *slog.Logger) (learners.Learner, learners.FileInfo, learners.Env, error) {
	fi, err := learners.ReadFileInfo(path)
	if err != nil {
		return nil, learners.FileInfo{}, learners.Env{}, fmt.Errorf("--learner: %w", err)
	}
	if fi.Heads > 0 {
		if b.Heads != 0 && b.Heads != fi.Heads {
			return nil, fi, learners.Env{}, usageErrorf("--heads %d: %s was trained with --heads %d (its %s learned in that attention form); give --heads %d or leave --heads out", b.Heads, path, fi.Heads, fi.Method, fi.Heads)
		}
		b.Heads = fi.Heads
	}
	env, err := b.env(seed, log)
	if err != nil {
		return nil, learners.FileInfo{}, env, err
	}
	l, fi, err := learners.Open(env, path)
	if err != nil {
		return nil, fi, env, fmt.Errorf("--learner: %w", err)
	}
	return l, fi, env, nil
}

// learnerEvalData is labelled images mapped to a learner's label space:
// Images holds the rows of classes the learner has learned (Labels global);
// Unknown counts the other rows and names their classes.
type learnerEvalData struct {
	Images         *tune.Dataset
	Unknown        int
	UnknownClasses []string
}

// loadForLearner reads every image of a labelled --data spec (at most per
// per class when per > 0) and keeps the rows whose class (by name) the
// learner fi has learned.
func loadForLearner(ctx context.Context, spec string, per int, fi learners.FileInfo) (*learnerEvalData, error) {
	src, err := data.Open(spec)
	if err != nil {
		return nil, usageErrorf("--data: %v", err)
	}
	defer src.Close()
	if !data.Labelled(src) {
		return nil, usageErrorf("--data %s is unlabelled: cl eval needs labelled images (use cl predict for unlabelled ones)", spec)
	}
	global := map[string]int{}
	for k, n := range fi.Names {
		global[n] = k
	}
	learned := map[int]bool{}
	for _, k := range fi.Learned {
		learned[k] = true
	}
	out := &learnerEvalData{}
	var keep []int // native classes with images to score
	counts := make([]int, len(src.Classes()))
	for i := 0; i < src.Len(); i++ {
		counts[src.Label(i)]++
	}
	for c, name := range src.Classes() {
		if counts[c] == 0 {
			continue
		}
		if k, ok := global[name]; ok && learned[k] {
			keep = append(keep, c)
			continue
		}
		n := counts[c]
		if per > 0 {
			n = min(n, per)
		}
		out.Unknown += n
		out.UnknownClasses = append(out.UnknownClasses, name)
	}
	sort.Strings(out.UnknownClasses)
	if len(keep) == 0 {
		return out, fmt.Errorf("--data %s: none of its images belongs to a class the learner %s has learned (%s)", spec, fi.Path, learnedNames(fi))
	}
	d, err := tune.LoadClasses(ctx, src, keep, per)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	for i, y := range d.Labels {
		d.Labels[i] = global[d.Classes[y]]
	}
	d.Classes, d.Native = fi.Names, nil
	out.Images = d
	return out, nil
}

// learnedNames lists the classes a learner file has learned, for errors.
func learnedNames(fi learners.FileInfo) string {
	var s []string
	for _, k := range fi.Learned {
		s = append(s, fi.Names[k])
	}
	if len(s) > 12 {
		return strings.Join(s[:12], ", ") + fmt.Sprintf(", … %d in all", len(s))
	}
	return strings.Join(s, ", ")
}

// scoreLearner scores d with the learner: row-major [d.Len(), len(cols)]
// scores and the global labels of the columns.
func scoreLearner(ctx context.Context, l learners.Learner, d *tune.Dataset) ([]float64, []int, error) {
	s, cols, err := l.Scores(ctx, learners.Eval{Images: d, N: d.Len()})
	learners.Forget(l, d)
	if err != nil {
		return nil, nil, err
	}
	if len(s) != d.Len()*len(cols) {
		return nil, nil, fmt.Errorf("%s: %d scores for %d images × %d classes", l.Method(), len(s), d.Len(), len(cols))
	}
	return s, cols, nil
}

// rankScores returns the k best columns of every row of scores [n, c],
// best first; ties go to the lower column (as heads.Rank).
func rankScores(scores []float64, c, k int) []int {
	n := len(scores) / c
	k = min(k, c)
	out := make([]int, 0, n*k)
	idx := make([]int, c)
	for i := 0; i < n; i++ {
		row := scores[i*c : (i+1)*c]
		for j := range idx {
			idx[j] = j
		}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		out = append(out, idx[:k]...)
	}
	return out
}
