package tune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune/optim"
)

// Method is a first-session adaptation recipe (docs/METHODS.md §2.2): which
// parameter-efficient variant of the ViT is trained, how its parameters
// start, and the optimiser settings.
type Method struct {
	// Name is the registry name ("aper-adapter", …).
	Name string
	// Summary is one line for help texts.
	Summary string
	// Variant is the models/vit graph variant whose extra inputs are trained.
	Variant vit.Variant
	// Tokens, Layers, Bottleneck, Scale configure the variant (0/nil = the
	// variant's default).
	Tokens     int
	Layers     []int
	Bottleneck int
	Scale      float32
	// Init fills a parameter of the variant; rng is seeded by the run.
	Init func(spec vit.ParamSpec, rng *rand.Rand) []float32
}

// Recipe is the optimisation schedule of a run.
type Recipe struct {
	// Name is "pilot" or "small-data".
	Name string
	// Epochs over the training images.
	Epochs int
	// Batch is the mini-batch size.
	Batch int
	// LR is the base learning rate of the variant's parameters and the head.
	LR float64
	// WeightDecay is SGD's L2 penalty.
	WeightDecay float64
	// Momentum is SGD's momentum.
	Momentum float64
	// Sigma is the cosine head's initial scale σ (learned).
	Sigma float32
	// WarmupEpochs of linear warm-up before the cosine schedule.
	WarmupEpochs int
	// MinSteps raises Epochs until the run makes at least this many
	// optimiser steps (0 = Epochs as given).
	MinSteps int
}

// The recipes. PILOT's APER/RanPAC first-session recipe on CIFAR
// (aper_adapter.json: 20 epochs, SGD 0.9, lr 0.01, batch 48, wd 5e-4,
// cosine annealing to 0, σ starting at 1) assumes ~2,000 optimiser steps; on
// a few hundred images it barely moves a cosine head whose logits stay in
// [−1, 1]. SmallData starts σ at 16 (logits in [−16, 16], so cross-entropy
// saturates and gradients are informative), warms up for one epoch and
// guarantees at least 300 steps; it is the default (docs/TRAINING.md).
var (
	PILOTRecipe     = Recipe{Name: "pilot", Epochs: 20, Batch: 48, LR: 0.01, WeightDecay: 5e-4, Momentum: 0.9, Sigma: 1}
	SmallDataRecipe = Recipe{Name: "small-data", Epochs: 20, Batch: 32, LR: 0.01, WeightDecay: 5e-4, Momentum: 0.9, Sigma: 16, WarmupEpochs: 1, MinSteps: 300}
)

// RecipeByName returns "pilot" or "small-data".
func RecipeByName(s string) (Recipe, error) {
	switch s {
	case "", SmallDataRecipe.Name:
		return SmallDataRecipe, nil
	case PILOTRecipe.Name:
		return PILOTRecipe, nil
	}
	return Recipe{}, fmt.Errorf("recipe %q unknown: use small-data (the default) or pilot", s)
}

// EpochsFor is the number of epochs the recipe runs on n images.
func (r Recipe) EpochsFor(n int) int {
	e := r.Epochs
	if r.MinSteps > 0 && n > 0 {
		per := (n + r.Batch - 1) / r.Batch
		if need := (r.MinSteps + per - 1) / per; need > e {
			e = need
		}
	}
	return e
}

// Optimizer returns the SGD configuration with cosine annealing to 0: per
// epoch without warm-up for the pilot recipe (PILOT steps its
// CosineAnnealingLR once per epoch), per step after a linear warm-up
// otherwise.
func (r Recipe) Optimizer(stepsPerEpoch, epochs int) optim.Config {
	sched := optim.Schedule{Kind: optim.Cosine, Per: optim.PerEpoch, Length: epochs}
	if r.WarmupEpochs > 0 || r.Name != PILOTRecipe.Name {
		total := stepsPerEpoch * epochs
		// At most a fifth of the run warms up, so short runs still anneal.
		warm := min(stepsPerEpoch*r.WarmupEpochs, total/5)
		sched = optim.Schedule{Kind: optim.Cosine, Per: optim.PerStep, Length: total, Warmup: warm}
	}
	return optim.Config{Kind: optim.SGD, Momentum: r.Momentum, Schedule: sched}
}

var methods = map[string]Method{}

func register(m Method) { methods[m.Name] = m }

// Lookup returns a registered method.
func Lookup(name string) (Method, error) {
	m, ok := methods[name]
	if !ok {
		return Method{}, fmt.Errorf("tuning method %q unknown: use one of %s", name, strings.Join(Methods(), ", "))
	}
	return m, nil
}

// Methods lists the registered methods, sorted.
func Methods() []string {
	var s []string
	for n := range methods {
		s = append(s, n)
	}
	sort.Strings(s)
	return s
}

func init() {
	register(Method{Name: "aper-adapter", Summary: "AdaptFormer adapters (bottleneck 64, scale 0.1) parallel to every block's MLP",
		Variant: vit.Adapter, Bottleneck: 64, Scale: 0.1, Init: initAdapter})
	register(Method{Name: "aper-ssf", Summary: "SSF scales and shifts after every projection and norm",
		Variant: vit.SSF, Init: initSSF})
	register(Method{Name: "aper-vpt-deep", Summary: "VPT-deep: 5 prompt tokens before every block",
		Variant: vit.VPTDeep, Tokens: 5, Init: initZeros})
	register(Method{Name: "aper-vpt-shallow", Summary: "VPT-shallow: 5 prompt tokens at the input",
		Variant: vit.VPTShallow, Tokens: 5, Init: initZeros})
}

// initAdapter: down weights as torch.nn.Linear's Kaiming-uniform(a = √5),
// i.e. U(−1/√fan_in, 1/√fan_in) with fan_in = W; up weights and all biases
// zero, so the adapted network starts equal to the pre-trained one.
func initAdapter(s vit.ParamSpec, rng *rand.Rand) []float32 {
	n := numel(s.Shape)
	v := make([]float32, n)
	if s.Name == "adapter_down_w" { // [L,W,r]
		bound := 1 / math.Sqrt(float64(s.Shape[1]))
		for i := range v {
			v[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	return v
}

// initSSF: scales N(1, 0.02²), shifts N(0, 0.02²) (row 0 scale, row 1 shift
// of every [..., 2, dim] parameter).
func initSSF(s vit.ParamSpec, rng *rand.Rand) []float32 {
	n := numel(s.Shape)
	v := make([]float32, n)
	dim := s.Shape[len(s.Shape)-1]
	for i := range v {
		row := (i / dim) % 2
		v[i] = float32(rng.NormFloat64() * 0.02)
		if row == 0 {
			v[i] += 1
		}
	}
	return v
}

// initZeros: VPT tokens start at zero, as PILOT's VPT does.
func initZeros(s vit.ParamSpec, _ *rand.Rand) []float32 { return make([]float32, numel(s.Shape)) }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
