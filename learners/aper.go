package learners

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
)

// APER (docs/METHODS.md §2.2) and RanPAC with Phase 1 (§2.3): adapt a
// parameter-efficient variant of the ViT on the first stage's classes
// (tune.Train), then keep it frozen. APER classifies by cosine prototypes
// over [pre-trained features ; adapted features]; ranpac-phase1 runs RanPAC
// on the adapted features.
func init() {
	for _, name := range tune.Methods() {
		m, _ := tune.Lookup(name)
		Register(Spec{Name: name, NeedsImages: true, Options: adaptOptions(),
			Summary: "APER: " + m.Summary + ", adapted on stage 0; prototypes on [pre-trained ; adapted] features",
			New: func(env Env, o map[string]string) (Learner, error) {
				return newAdapted(env, m, o, false)
			}})
	}
	Register(Spec{Name: "ranpac-phase1", NeedsImages: true, Options: mergeOptions(adaptOptions(), ranpacOptions()),
		Summary: "RanPAC with Phase 1: adapters trained on stage 0, then random projection + ridge on the adapted features",
		New: func(env Env, o map[string]string) (Learner, error) {
			m, _ := tune.Lookup("aper-adapter")
			return newAdapted(env, m, o, true)
		}})
}

func adaptOptions() map[string]string {
	return map[string]string{"recipe": "small-data", "epochs": "0", "batch": "0", "lr": "0", "sigma": "0",
		"augment": "pilot", "held_out": "0"}
}

func ranpacOptions() map[string]string {
	spec, _ := heads.Lookup("ranpac")
	o := map[string]string{}
	for _, x := range spec.Options() {
		o[x.Key] = x.Default
	}
	return o
}

func mergeOptions(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}

// adapted is an APER or RanPAC-Phase-1 learner.
type adapted struct {
	env    Env
	method tune.Method
	recipe tune.Recipe
	aug    string
	ranpac bool
	rpOpts [][2]string

	// opts are the options New was given (kept in the learner file).
	opts map[string]string

	pre, ada *ort.Backbone // pre-trained and adapted backbones (ada after stage 0)
	// res holds the trained variant parameters (after stage 0), saved with
	// the head so that LoadAdapted rebuilds the adapted backbone.
	res  *tune.Result
	head heads.Head
	// feature caches by dataset: the adapted backbone's features of the
	// evaluation images do not change after stage 0.
	cache map[*tune.Dataset][]float32
	// names are the run's class names (fixed by stage 0), seen the global
	// labels learned in stage order, stages the number of stages learned,
	// ledger the rows the head learned.
	names  []string
	seen   []int
	stages int
	ledger *heads.Ledger
}

func newAdapted(env Env, m tune.Method, o map[string]string, ranpac bool) (Learner, error) {
	name := m.Name
	known := adaptOptions()
	if ranpac {
		name = "ranpac-phase1"
		known = mergeOptions(known, ranpacOptions())
	}
	if err := CheckOptions(name, o, known); err != nil {
		return nil, err
	}
	if env.Weights == nil {
		return nil, fmt.Errorf("%s trains the backbone's first stage: it needs the pre-trained ViT checkpoint (--weights)", name)
	}
	get := func(k string) string {
		if v, ok := o[k]; ok {
			return v
		}
		return known[k]
	}
	rec, err := tune.RecipeByName(get("recipe"))
	if err != nil {
		return nil, err
	}
	num := func(k string) (float64, error) {
		v, err := strconv.ParseFloat(get(k), 64)
		if err != nil || v < 0 || math.IsInf(v, 0) {
			return 0, fmt.Errorf("%s: option %s=%q must be a number ≥ 0", name, k, get(k))
		}
		return v, nil
	}
	for _, f := range []struct {
		k   string
		set func(float64)
	}{
		{"epochs", func(v float64) { rec.Epochs, rec.MinSteps = int(v), 0 }},
		{"batch", func(v float64) { rec.Batch = int(v) }},
		{"lr", func(v float64) { rec.LR = v }},
		{"sigma", func(v float64) { rec.Sigma = float32(v) }},
	} {
		v, err := num(f.k)
		if err != nil {
			return nil, err
		}
		if v > 0 {
			f.set(v)
		}
	}
	a := &adapted{env: env, method: m, recipe: rec, aug: get("augment"), ranpac: ranpac, cache: map[*tune.Dataset][]float32{},
		opts: map[string]string{}, ledger: heads.NewLedger()}
	for k, v := range o {
		a.opts[k] = v
	}
	if ranpac {
		rp := ranpacOptions()
		for _, p := range sortedPairs(o) {
			if _, ok := rp[p[0]]; ok {
				a.rpOpts = append(a.rpOpts, p)
			}
		}
	}
	return a, nil
}

func (a *adapted) Method() string {
	if a.ranpac {
		return "ranpac-phase1"
	}
	return a.method.Name
}

func (a *adapted) Learn(ctx context.Context, s Stage) error {
	if s.Images == nil {
		return fmt.Errorf("%s learns from images; this run has feature files only (give --weights, --data and --test-data)", a.Method())
	}
	if err := a.checkStage(s); err != nil {
		return err
	}
	if s.Index == 0 {
		if err := a.adapt(ctx, s); err != nil {
			return err
		}
	}
	x, err := a.features(ctx, s.Images, s.Features, s.Dim, false)
	if err != nil {
		return err
	}
	rows, err := heads.NewLedgerRowsFrom(x, len(x)/max(s.Images.Len(), 1), s.Images.IDs, s.Images.Labels)
	if err != nil {
		return fmt.Errorf("%s: stage %d: %w", a.Method(), s.Index+1, err)
	}
	// A sample learned twice would count twice in the prototypes or
	// RanPAC's statistics.
	if err := a.ledger.CheckNew(rows); err != nil {
		return fmt.Errorf("%s: stage %d: %w", a.Method(), s.Index+1, err)
	}
	if err := a.head.Learn(x, s.Images.Labels); err != nil {
		return err
	}
	if err := a.head.EndStage(); err != nil {
		return err
	}
	a.ledger.Add(rows)
	a.names = s.Names
	have := map[int]bool{}
	for _, c := range a.seen {
		have[c] = true
	}
	for _, c := range s.Classes {
		if !have[c] {
			a.seen = append(a.seen, c)
		}
	}
	a.stages++
	return nil
}

// checkStage refuses a stage out of order (stage 0 adapts the backbone and
// comes first, once), of another label space than earlier stages, or with
// an image whose label is not one of the stage's classes.
func (a *adapted) checkStage(s Stage) error {
	switch {
	case s.Index != a.stages:
		return fmt.Errorf("%s: stage %d given after %d stages learned: stages come in order, stage 1 adapts the backbone", a.Method(), s.Index+1, a.stages)
	case s.Images.Len() == 0:
		return fmt.Errorf("%s: stage %d has no images", a.Method(), s.Index+1)
	case a.names != nil && len(a.names) != len(s.Names):
		return fmt.Errorf("%s: stage %d names %d classes, earlier stages %d: a learner follows one run's label space", a.Method(), s.Index+1, len(s.Names), len(a.names))
	}
	in := map[int]bool{}
	for _, c := range s.Classes {
		if c < 0 || c >= len(s.Names) {
			return fmt.Errorf("%s: stage %d: class %d outside the run's %d classes", a.Method(), s.Index+1, c, len(s.Names))
		}
		in[c] = true
	}
	for i, y := range s.Images.Labels {
		if !in[y] {
			return fmt.Errorf("%s: stage %d: image %s has label %d, which is not one of the stage's classes %v", a.Method(), s.Index+1, s.Images.IDs[i], y, s.Classes)
		}
	}
	return nil
}

// adapt trains the variant on stage 0 and opens both backbones and the head.
func (a *adapted) adapt(ctx context.Context, s Stage) error {
	w := a.env.Weights
	// Dense labels 0..m−1 for the stage's classes (tune.Train's head).
	dense := map[int]int{}
	var names []string
	for k, c := range s.Classes {
		dense[c] = k
		names = append(names, s.Names[c])
	}
	train := &tune.Dataset{Samples: s.Images.Samples, IDs: s.Images.IDs, Classes: names, Native: s.Classes}
	for _, y := range s.Images.Labels {
		k, ok := dense[y]
		if !ok {
			return fmt.Errorf("%s: stage 1 has an image of class %q, which is not one of the stage's classes", a.Method(), s.Names[y])
		}
		train.Labels = append(train.Labels, k)
	}
	pp, err := imageproc.NewPreprocessor(models.ForImageSize(w.Image))
	if err != nil {
		return err
	}
	var trainTF tune.Transform = tune.EvalTransform{P: pp}
	if a.aug != "none" {
		p, err := imageproc.TrainPreset(a.aug)
		if err != nil {
			return fmt.Errorf("%s: option augment: %w", a.Method(), err)
		}
		ag, err := imageproc.NewAugmenter(p.ForModel(pp.Preprocess()))
		if err != nil {
			return err
		}
		trainTF = tune.AugmentTransform{A: ag}
	}
	// The adaptation depends only on the weights, the method, the recipe,
	// the seeds and stage 0's images: cache it (APER-adapter and
	// ranpac-phase1 share it; reruns skip training).
	key := sha256.New()
	fmt.Fprintf(key, "%s|%s|%+v|%d|%s|%d|%d|%g", a.env.WeightsSHA256, a.method.Name, a.recipe, a.env.Seed, a.aug,
		a.method.Bottleneck, a.method.Tokens, a.method.Scale)
	for i, id := range train.IDs {
		fmt.Fprintf(key, "|%s:%d", id, train.Labels[i])
	}
	cached := ""
	if a.env.CacheDir != "" {
		cached = filepath.Join(a.env.CacheDir, "tune-"+hex.EncodeToString(key.Sum(nil))[:24]+".safetensors")
	}
	var res *tune.Result
	if cached != "" {
		if r, err := tune.LoadResult(cached, w, a.method); err == nil {
			a.env.Logf("%s: adaptation of stage 1 from the cache (%s)", a.Method(), cached)
			res = r
		}
	}
	if res == nil {
		t0 := time.Now()
		a.env.Logf("%s: adapting %s on %d images of %d classes (%s recipe, %d epochs)", a.Method(), a.method.Variant, train.Len(), len(names), a.recipe.Name, a.recipe.EpochsFor(train.Len()))
		r, err := tune.Train(ctx, w, train, nil, tune.Config{Method: a.method, Recipe: a.recipe, Seed: a.env.Seed,
			Train: trainTF, Eval: tune.EvalTransform{P: pp}, Session: a.env.Session, Workers: max(a.env.Workers, 1),
			Fingerprint: a.env.WeightsSHA256,
			Progress: func(p tune.Progress) {
				if p.EpochDone {
					a.env.Logf("%s: epoch %d/%d loss %.4f train top-1 %.1f%% (%.1f images/s)", a.Method(), p.Epoch, p.Epochs, p.Loss, p.Accuracy, p.ImagesPerSecond)
				}
			}})
		if err != nil {
			return fmt.Errorf("%s: adapting on stage 1: %w", a.Method(), err)
		}
		res = r
		a.env.Logf("%s: adapted in %.0f s (%d steps), σ = %.3g", a.Method(), time.Since(t0).Seconds(), res.Steps, res.Sigma)
		if cached != "" {
			if err := os.MkdirAll(a.env.CacheDir, 0o755); err == nil {
				if err := res.SaveParams(cached, map[string]string{"tune.method": a.method.Name}); err != nil {
					a.env.Logf("%s: adaptation not cached: %v", a.Method(), err)
				}
			}
		}
	}
	if err := a.openBackbones(res); err != nil {
		return err
	}
	if !a.ranpac {
		a.head = heads.NewAPER()
		return nil
	}
	spec, _ := heads.Lookup("ranpac")
	cfg, err := spec.Parse(a.rpOpts)
	if err != nil {
		return fmt.Errorf("ranpac-phase1: %w", err)
	}
	a.head, err = spec.New(cfg)
	return err
}

// openBackbones keeps res and opens the adapted backbone (the variant with
// res's parameters baked in as initializers) and, for APER, the
// pre-trained one. Stage 0 and LoadAdapted build them the same way from
// the weights and the parameters, so their features agree bit for bit.
func (a *adapted) openBackbones(res *tune.Result) error {
	a.Close()
	w := a.env.Weights
	baked, err := res.Bake(w, a.method)
	if err != nil {
		return err
	}
	bytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(baked)
	if err != nil {
		return err
	}
	opts := ort.Options{ORTLib: a.env.Session.ORTLib, Device: a.env.Session.Device, Threads: a.env.Session.Threads}
	if a.ada, err = ort.OpenData(a.Method()+" adapted backbone", bytes, opts); err != nil {
		return err
	}
	a.res = res
	if a.ranpac {
		return nil
	}
	plain, err := vit.Build(w, vit.Options{})
	if err != nil {
		return err
	}
	pb, err := proto.MarshalOptions{Deterministic: true}.Marshal(plain)
	if err != nil {
		return err
	}
	a.pre, err = ort.OpenData("pre-trained backbone", pb, opts)
	return err
}

// headDim is the feature width the head learns: W (RanPAC, adapted
// features) or 2W (APER, [pre-trained ; adapted]).
func (a *adapted) headDim() int {
	if a.ranpac {
		return a.ada.Dim()
	}
	return a.pre.Dim() + a.ada.Dim()
}

// DropCache implements CacheDropper: the features of d.
func (a *adapted) DropCache(d *tune.Dataset) { delete(a.cache, d) }

// Close releases the backbones' ONNX Runtime sessions.
func (a *adapted) Close() {
	for _, b := range []*ort.Backbone{a.pre, a.ada} {
		if b != nil {
			b.Close()
		}
	}
	a.pre, a.ada = nil, nil
}

// features returns the learner's features of d: the adapted backbone's
// (RanPAC) or [pre-trained ; adapted] (APER). frozen are the pre-trained
// features of d when the caller has them (saves one pass); keep caches the
// result (evaluation images, scored after every stage).
func (a *adapted) features(ctx context.Context, d *tune.Dataset, frozen []float32, dim int, keep bool) ([]float32, error) {
	if x, ok := a.cache[d]; ok {
		return x, nil
	}
	ad, err := Extract(ctx, a.ada, d, max(a.env.Workers, 1))
	if err != nil {
		return nil, err
	}
	x := ad
	if !a.ranpac {
		if frozen == nil || dim != a.pre.Dim() {
			if frozen, err = Extract(ctx, a.pre, d, max(a.env.Workers, 1)); err != nil {
				return nil, err
			}
		}
		x = concatRows(frozen, a.pre.Dim(), ad, a.ada.Dim())
	}
	if keep {
		a.cache[d] = x
	}
	return x, nil
}

func (a *adapted) Scores(ctx context.Context, e Eval) ([]float64, []int, error) {
	if a.head == nil {
		return nil, nil, fmt.Errorf("%s: nothing learned yet", a.Method())
	}
	if e.Images == nil {
		return nil, nil, fmt.Errorf("%s scores images; this evaluation has feature files only", a.Method())
	}
	x, err := a.features(ctx, e.Images, e.Features, e.Dim, true)
	if err != nil {
		return nil, nil, err
	}
	s, err := a.head.Scores(x)
	return s, a.head.Classes(), err
}
