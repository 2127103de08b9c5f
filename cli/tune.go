package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/protocol"
	"github.com/cl-dev/cl/tune"
)

func init() {
	register(&cli.Command{
		Name:         "tune",
		OnUsageError: onUsageError,
		Usage:        "adapt a ViT to the first stage's classes (APER / RanPAC Phase 1) and write the adapted backbone",
		ArgsUsage:    " ",
		Description: "Trains the parameters of a parameter-efficient variant (adapters, SSF, VPT) of a ViT checkpoint\n" +
			"with a cosine classifier on the first stage's classes (same class order as cl bench), on ONNX\n" +
			"Runtime through gradient graphs, and writes the adapted backbone (--out, usable by cl extract)\n" +
			"and the trained parameters (--params). Methods: " + strings.Join(tune.Methods(), ", ") + ".\n" +
			"Recipes: small-data (default: σ starts at 16, ≥ 300 steps) or pilot (PILOT's: σ = 1, 20 epochs);\n" +
			"docs/TRAINING.md says which to use when.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "method", Usage: "tuning method: " + strings.Join(tune.Methods(), ", "), Required: true},
			&cli.StringFlag{Name: "weights", Usage: "ViT checkpoint FILE (timm model.safetensors or Google .npz, as cl models import)", Required: true},
			&cli.IntFlag{Name: "heads", Usage: "N attention heads of the checkpoint (0 = stored in .npz, else width/64)"},
			&cli.StringFlag{Name: "data", Usage: "labelled training images SPEC (" + data.Specs + ")", Required: true},
			&cli.StringFlag{Name: "out", Usage: "adapted backbone FILE.onnx to write", Required: true},
			&cli.StringFlag{Name: "params", Usage: "also write the trained parameters to FILE.safetensors"},
			&cli.IntFlag{Name: "init", Usage: "N classes in the first stage (0 = --inc)"},
			&cli.IntFlag{Name: "inc", Value: 10, Usage: "N classes per later stage (sets the first stage when --init is 0)"},
			&cli.IntFlag{Name: "seed", Value: 1993, Usage: "class-order seed N (numpy legacy permutation, as cl bench)"},
			&cli.BoolFlag{Name: "no-shuffle", Usage: "classes in the data set's order"},
			&cli.StringFlag{Name: "recipe", Value: "small-data", Usage: "small-data or pilot"},
			&cli.IntFlag{Name: "epochs", Usage: "N epochs (0 = the recipe's)"},
			&cli.IntFlag{Name: "batch", Usage: "N images per step (0 = the recipe's)"},
			&cli.Float64Flag{Name: "lr", Usage: "learning rate (0 = the recipe's)"},
			&cli.Float64Flag{Name: "sigma", Usage: "initial cosine-head scale σ (0 = the recipe's)"},
			&cli.IntFlag{Name: "per-class", Usage: "use at most N training images per class (0 = all)"},
			&cli.Float64Flag{Name: "held-out", Value: 0.1, Usage: "fraction of the images kept out of training to report held-out accuracy per epoch (0 = none)"},
			&cli.StringFlag{Name: "augment", Value: "pilot", Usage: "training augmentation: " + strings.Join(imageproc.Presets(), ", ") + ", or none"},
			&cli.Uint64Flag{Name: "train-seed", Value: 1, Usage: "seed N of initialisation, shuffling and augmentation"},
			&cli.StringFlag{Name: "checkpoint", Usage: "checkpoint FILE written after every epoch (default OUT.ckpt.safetensors)"},
			&cli.BoolFlag{Name: "resume", Usage: "continue from --checkpoint when it exists"},
			&cli.IntFlag{Name: "workers", Value: 2, Usage: "N goroutines decoding and augmenting images"},
		}, ortFlags()...),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("tune takes no arguments (got %q)", c.Args().First())
			}
			o := tuneOptions{
				Method: c.String("method"), Weights: c.String("weights"), Heads: c.Int("heads"), Data: c.String("data"), Out: c.String("out"),
				Params: c.String("params"), Init: c.Int("init"), Inc: c.Int("inc"), Seed: c.Int("seed"), NoShuffle: c.Bool("no-shuffle"),
				Recipe: c.String("recipe"), Epochs: c.Int("epochs"), Batch: c.Int("batch"), LR: c.Float64("lr"), Sigma: c.Float64("sigma"),
				PerClass: c.Int("per-class"), HeldOut: c.Float64("held-out"), Augment: c.String("augment"), TrainSeed: c.Uint64("train-seed"),
				Checkpoint: c.String("checkpoint"), Resume: c.Bool("resume"), Workers: c.Int("workers"),
				Session: ort.SessionOptions{ORTLib: c.String("ort-lib"), Device: c.String("device"), Threads: c.Int("threads")},
			}
			if _, err := tune.Lookup(o.Method); err != nil {
				return usageErrorf("--method: %v", err)
			}
			if _, err := tune.RecipeByName(o.Recipe); err != nil {
				return usageErrorf("--recipe: %v", err)
			}
			if o.HeldOut < 0 || o.HeldOut >= 1 {
				return usageErrorf("--held-out %v: must be in [0, 1)", o.HeldOut)
			}
			for _, f := range []struct {
				name string
				v    int
			}{{"epochs", o.Epochs}, {"batch", o.Batch}, {"per-class", o.PerClass}, {"init", o.Init}, {"heads", o.Heads}} {
				if f.v < 0 {
					return usageErrorf("--%s %d: must be ≥ 0", f.name, f.v)
				}
			}
			if o.Workers < 1 {
				return usageErrorf("--workers %d: must be ≥ 1", o.Workers)
			}
			return runTune(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	})
}

// tuneOptions is everything `cl tune` needs.
type tuneOptions struct {
	Method, Weights, Data, Out, Params string
	Heads                              int
	Init, Inc, Seed                    int
	NoShuffle                          bool
	Recipe                             string
	Epochs, Batch                      int
	LR, Sigma                          float64
	PerClass                           int
	HeldOut                            float64
	Augment                            string
	TrainSeed                          uint64
	Checkpoint                         string
	Resume                             bool
	Workers                            int
	Session                            ort.SessionOptions
}

// TuneSummary is what `cl tune` prints when it is done.
type TuneSummary struct {
	Method      string   `json:"method"`
	Recipe      string   `json:"recipe"`
	Classes     []string `json:"classes"`
	Images      int      `json:"images"`
	HeldOut     int      `json:"held_out"`
	Epochs      int      `json:"epochs"`
	Steps       int      `json:"steps"`
	TrainLoss   float64  `json:"train_loss"`
	HeldOutAcc  float64  `json:"held_out_accuracy"`
	Sigma       float64  `json:"sigma"`
	Seconds     float64  `json:"seconds"`
	Backbone    string   `json:"backbone"`
	Fingerprint string   `json:"weights_sha256"`
}

func runTune(ctx context.Context, o tuneOptions, stdout, stderr io.Writer) error {
	log := newLogger(stderr)
	method, _ := tune.Lookup(o.Method)
	recipe, _ := tune.RecipeByName(o.Recipe)
	if o.Epochs > 0 {
		recipe.Epochs, recipe.MinSteps = o.Epochs, 0
	}
	if o.Batch > 0 {
		recipe.Batch = o.Batch
	}
	if o.LR > 0 {
		recipe.LR = o.LR
	}
	if o.Sigma > 0 {
		recipe.Sigma = float32(o.Sigma)
	}
	raw, err := os.ReadFile(o.Weights)
	if err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	sum := sha256.Sum256(raw)
	fp := hex.EncodeToString(sum[:])
	w, err := vit.Parse(o.Weights, raw, o.Heads)
	if err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	raw = nil
	src, err := data.Open(o.Data)
	if err != nil {
		return usageErrorf("--data: %v", err)
	}
	defer src.Close()
	stage, err := firstStageClasses(len(src.Classes()), o.Init, o.Inc, o.Seed, o.NoShuffle)
	if err != nil {
		return usageErrorf("%v", err)
	}
	all, err := tune.LoadClasses(ctx, src, stage, o.PerClass)
	if err != nil {
		return err
	}
	train, held := splitHeldOut(all, o.HeldOut, o.TrainSeed)
	pp, err := imageproc.NewPreprocessor(models.ForImageSize(w.Image))
	if err != nil {
		return err
	}
	trainTF, err := trainTransform(o.Augment, pp)
	if err != nil {
		return usageErrorf("--augment: %v", err)
	}
	ck := o.Checkpoint
	if ck == "" {
		ck = strings.TrimSuffix(o.Out, ".onnx") + ".ckpt.safetensors"
	}
	if !o.Resume {
		if _, err := os.Stat(ck); err == nil {
			return fmt.Errorf("checkpoint %s exists: pass --resume to continue that run, or remove it", ck)
		}
	}
	log.Info("tuning", "method", method.Name, "recipe", recipe.Name, "classes", strings.Join(all.Classes, ","),
		"train", train.Len(), "held_out", heldLen(held), "epochs", recipe.EpochsFor(train.Len()), "batch", recipe.Batch)
	bar := newTuneProgress(stderr)
	t0 := time.Now()
	res, err := tune.Train(ctx, w, train, held, tune.Config{
		Method: method, Recipe: recipe, Seed: o.TrainSeed, Train: trainTF, Eval: tune.EvalTransform{P: pp},
		Session: o.Session, Workers: o.Workers, Checkpoint: ck, Resume: o.Resume, Fingerprint: fp,
		Progress: bar.update,
	})
	bar.finish()
	if err != nil {
		return err
	}
	baked, err := res.Bake(w, method)
	if err != nil {
		return err
	}
	models.SetMetadata(baked, "cl.tune", tuneRecord(method, recipe, o, fp, res))
	man, _, err := models.ManifestOf(baked)
	if err != nil {
		return err
	}
	man.Backbone = fmt.Sprintf("%s adapted with %s (%s recipe) on %d classes", fmt.Sprintf("ViT W=%d depth %d patch %d at %d", w.Width, w.Depth, w.Patch, w.Image), method.Name, recipe.Name, len(all.Classes))
	models.SetManifest(baked, man)
	if err := models.WriteModel(o.Out, baked); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if o.Params != "" {
		f := res.BakedWeights()
		f.Metadata["cl.tune"] = tuneRecord(method, recipe, o, fp, res)
		if err := f.WriteFile(o.Params); err != nil {
			return fmt.Errorf("--params: %w", err)
		}
	}
	last := res.History[len(res.History)-1]
	s := TuneSummary{Method: method.Name, Recipe: recipe.Name, Classes: all.Classes, Images: train.Len(), HeldOut: heldLen(held),
		Epochs: res.Epochs, Steps: res.Steps, TrainLoss: last.TrainLoss, HeldOutAcc: last.HeldAcc, Sigma: float64(res.Sigma),
		Seconds: time.Since(t0).Seconds(), Backbone: o.Out, Fingerprint: fp}
	held2 := "no held-out images"
	if !math.IsNaN(s.HeldOutAcc) {
		held2 = fmt.Sprintf("held-out top-1 %.2f%% on %d images", s.HeldOutAcc, s.HeldOut)
	}
	fmt.Fprintf(stdout, "%s (%s recipe): %d images of %d classes, %d epochs, %d steps in %.0f s; last epoch loss %.4f, %s; σ = %.3g\nwrote %s\n",
		s.Method, s.Recipe, s.Images, len(s.Classes), s.Epochs, s.Steps, s.Seconds, s.TrainLoss, held2, s.Sigma, o.Out)
	return nil
}

func heldLen(d *tune.Dataset) int {
	if d == nil {
		return 0
	}
	return d.Len()
}

// firstStageClasses returns the source class indices of stage 0 under the
// protocol's class order.
func firstStageClasses(n, init, inc, seed int, noShuffle bool) ([]int, error) {
	if seed < 0 || seed > math.MaxUint32 {
		return nil, fmt.Errorf("--seed %d: must be in [0, 2³²)", seed)
	}
	order, err := protocol.ClassOrder(n, uint32(seed), !noShuffle)
	if err != nil {
		return nil, err
	}
	split, err := protocol.NewSplit(order, init, inc)
	if err != nil {
		return nil, fmt.Errorf("--init/--inc: %w", err)
	}
	lo, hi := split.Range(0)
	return order[lo:hi], nil
}

// splitHeldOut keeps a seeded fraction of every class out of training.
func splitHeldOut(d *tune.Dataset, frac float64, seed uint64) (train, held *tune.Dataset) {
	if frac <= 0 {
		return d, nil
	}
	byClass := make([][]int, len(d.Classes))
	for i, y := range d.Labels {
		byClass[y] = append(byClass[y], i)
	}
	var tr, he []int
	for _, rows := range byClass {
		perm := tune.EpochOrder(len(rows), seed, -1, true)
		k := int(math.Round(frac * float64(len(rows))))
		if k >= len(rows) {
			k = len(rows) - 1
		}
		for j, p := range perm {
			if j < k {
				he = append(he, rows[p])
			} else {
				tr = append(tr, rows[p])
			}
		}
	}
	return d.Subset(sortedInts(tr)), d.Subset(sortedInts(he))
}

func sortedInts(v []int) []int {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

func trainTransform(preset string, pp *imageproc.Preprocessor) (tune.Transform, error) {
	if preset == "none" {
		return tune.EvalTransform{P: pp}, nil
	}
	a, err := imageproc.TrainPreset(preset)
	if err != nil {
		return nil, err
	}
	ag, err := imageproc.NewAugmenter(a.ForModel(pp.Preprocess()))
	if err != nil {
		return nil, err
	}
	return tune.AugmentTransform{A: ag}, nil
}

func tuneRecord(m tune.Method, r tune.Recipe, o tuneOptions, fp string, res *tune.Result) string {
	return fmt.Sprintf(`{"method":%q,"recipe":%q,"epochs":%d,"batch":%d,"lr":%g,"sigma0":%g,"weight_decay":%g,"steps":%d,"train_seed":%d,"class_seed":%d,"init":%d,"inc":%d,"augment":%q,"parent_weights_sha256":%q}`,
		m.Name, r.Name, res.Epochs, r.Batch, r.LR, r.Sigma, r.WeightDecay, res.Steps, o.TrainSeed, o.Seed, o.Init, o.Inc, o.Augment, fp)
}

// tuneProgress draws a one-line progress bar on a terminal and logs one
// line per epoch otherwise.
type tuneProgress struct {
	w    io.Writer
	tty  bool
	last time.Time
	t0   time.Time
}

func newTuneProgress(w io.Writer) *tuneProgress {
	return &tuneProgress{w: w, tty: isTerminal(w), t0: time.Now()}
}

func (p *tuneProgress) update(u tune.Progress) {
	if u.EpochDone {
		line := fmt.Sprintf("epoch %d/%d: loss %.4f, train top-1 %.1f%%, %.1f images/s", u.Epoch, u.Epochs, u.Loss, u.Accuracy, u.ImagesPerSecond)
		if u.HeldOut != nil {
			line += fmt.Sprintf(", held-out loss %.4f top-1 %.1f%%", u.HeldOut.HeldLoss, u.HeldOut.HeldAcc)
		}
		if p.tty {
			fmt.Fprintf(p.w, "\r\033[K%s\n", line)
		} else {
			fmt.Fprintln(p.w, line)
		}
		return
	}
	if !p.tty || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	eta := "?"
	if u.Step > 0 {
		left := time.Duration(float64(time.Since(p.t0)) / float64(u.Step) * float64(u.Steps-u.Step))
		eta = left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\033[Kepoch %d/%d step %d/%d loss %.4f top-1 %.1f%% %.1f img/s ETA %s", u.Epoch, u.Epochs, u.Step, u.Steps, u.Loss, u.Accuracy, u.ImagesPerSecond, eta)
}

func (p *tuneProgress) finish() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
