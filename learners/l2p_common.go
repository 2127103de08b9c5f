package learners

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/tune/optim"
)

// Shared by the prompt-based learners (l2p.go, dualprompt.go,
// codaprompt.go) and EASE (ease.go): the selection modes, the stage
// checks, initialisers and the learner-file format. Their option parsing
// is in popts.go, the environment and frozen queries in promptenv.go, the
// per-stage training loop in stagetrain.go, the state they share in
// learnercore.go and promptbase.go.

// Selection modes of the prompt learners.
const (
	// SelectPerSample picks each image's prompts from its own query (the
	// methods' definition).
	SelectPerSample = "per-sample"
	// SelectBatchVote gives every image of a batch the prompts chosen most
	// often over the batch (PILOT's and the original code's
	// batchwise_prompt); results then depend on how the data is batched.
	SelectBatchVote = "batch-vote"
)

// stageGuard checks a stage for a task-incremental learner: images present,
// classes new and inside the run's label space, and the same label space as
// earlier stages. seen are the classes learned so far.
func promptStageGuard(method string, s Stage, seen []int, names []string) error {
	if s.Images == nil || s.Images.Len() == 0 {
		return fmt.Errorf("%s learns from images; this stage has none (give --weights, --data and --test-data)", method)
	}
	if len(s.Classes) == 0 {
		return fmt.Errorf("%s: stage %d has no classes", method, s.Index+1)
	}
	if names != nil && len(names) != len(s.Names) {
		return fmt.Errorf("%s: stage %d names %d classes, earlier stages %d: a learner follows one run's label space", method, s.Index+1, len(s.Names), len(names))
	}
	old := map[int]bool{}
	for _, c := range seen {
		old[c] = true
	}
	in := map[int]bool{}
	for _, c := range s.Classes {
		if c < 0 || c >= len(s.Names) {
			return fmt.Errorf("%s: stage %d: class %d outside the run's %d classes", method, s.Index+1, c, len(s.Names))
		}
		if old[c] {
			return fmt.Errorf("%s: stage %d repeats class %q learned in an earlier stage: %s assumes every stage brings new classes (the old classes' logits are masked while a stage trains, so their images would have an infinite loss); give the class a new stage or use a prototype method (simplecil, ranpac)", method, s.Index+1, s.Names[c], method)
		}
		in[c] = true
	}
	for i, y := range s.Images.Labels {
		if !in[y] {
			return fmt.Errorf("%s: stage %d: image %s has label %d, which is not one of the stage's classes %v", method, s.Index+1, s.Images.IDs[i], y, s.Classes)
		}
	}
	return nil
}

// uniform fills n values U(lo, hi).
func pUniform(rng *rand.Rand, n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return v
}

// truncNormal fills n values N(0, std²) truncated to [−2, 2] (timm's
// trunc_normal_ of a Linear head).
func pTruncNormal(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		for {
			x := rng.NormFloat64() * std
			if x >= -2 && x <= 2 {
				v[i] = float32(x)
				break
			}
		}
	}
	return v
}

// unitInto writes v / max(‖v‖, 1e-12) into dst (torch's F.normalize), in
// float64, and returns the norm used.
func unitInto(dst []float64, v []float32) float64 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	nr := math.Max(math.Sqrt(ss), 1e-12)
	for i, x := range v {
		dst[i] = float64(x) / nr
	}
	return nr
}

// sortedInts returns a sorted copy.
func pSortedInts(v []int) []int {
	out := append([]int(nil), v...)
	sort.Ints(out)
	return out
}

// classMask is 1 for the classes of the stage, 0 elsewhere ([C]).
func pClassMask(C int, classes []int) []float32 {
	m := make([]float32, C)
	for _, c := range classes {
		m[c] = 1
	}
	return m
}

// Learner files of the prompt learners and EASE: safetensors with the
// trained tensors under their names and metadata
//
//	format         "cl.learner/1"
//	learner.method the registry name
//	learner.weights the SHA-256 of the pre-trained ViT checkpoint they were trained on
//	learner.state  JSON: options, class names, classes learned, stages
//	learner.heads  the attention heads the ViT was run with (cl --heads, resolved)
//	learner.train_seed the training seed (Env.Seed, cl --train-seed)
//
// written atomically (temporary file, fsync, rename). Files written before
// learner.heads and learner.train_seed existed lack them (see runMetadata).
const learnerFormat = "cl.learner/1"

// Metadata keys of what a learner's stages ran with besides the weights.
const (
	mdHeads     = "learner.heads"
	mdTrainSeed = "learner.train_seed"
)

// setRunMetadata records in md the attention heads of env's ViT and the
// training seed env.Seed: what loading the file needs besides the weights
// (the heads), and what its later stages must use to equal one learner
// taught every stage (the seed).
func setRunMetadata(md map[string]string, env Env) {
	if env.Weights != nil {
		md[mdHeads] = strconv.Itoa(env.Weights.Heads)
	}
	md[mdTrainSeed] = strconv.FormatUint(env.Seed, 10)
}

// runMetadata reads what setRunMetadata wrote: heads 0 and hasSeed false
// when the file does not record them (older files).
func runMetadata(path string, md map[string]string) (heads int, seed uint64, hasSeed bool, err error) {
	if v, ok := md[mdHeads]; ok {
		if heads, err = strconv.Atoi(v); err != nil || heads < 1 {
			return 0, 0, false, fmt.Errorf("%s: metadata %s=%q is not a head count", path, mdHeads, v)
		}
	}
	if v, ok := md[mdTrainSeed]; ok {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, false, fmt.Errorf("%s: metadata %s=%q is not a seed", path, mdTrainSeed, v)
		}
		hasSeed = true
	}
	return heads, seed, hasSeed, nil
}

// checkHeads refuses a learner file trained with another number of
// attention heads than env's ViT was parsed with (heads 0: not recorded).
func checkHeads(path, method string, heads int, env Env) error {
	if heads == 0 || env.Weights == nil || env.Weights.Heads == heads {
		return nil
	}
	return fmt.Errorf("%s: the %s learner was trained with --heads %d, but the weights were read with %d heads: give --heads %d (or leave --heads out to use the file's)",
		path, method, heads, env.Weights.Heads, heads)
}

func saveLearner(path, method string, env Env, state string, params []*optim.Param) error {
	f := safetensors.New()
	for _, p := range params {
		f.Tensors[p.Name] = safetensors.FromFloat32s(p.Shape, p.Data)
	}
	f.Metadata["format"] = learnerFormat
	f.Metadata["learner.method"] = method
	f.Metadata["learner.weights"] = env.WeightsSHA256
	f.Metadata["learner.state"] = state
	setRunMetadata(f.Metadata, env)
	if err := f.WriteFile(path); err != nil {
		return fmt.Errorf("%s: writing learner file: %w", method, err)
	}
	return nil
}

// loadLearner reads a learner file and checks its method, weights and
// attention heads.
func loadLearner(path, method string, env Env) (*safetensors.File, string, error) {
	weightsSHA := env.WeightsSHA256
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading learner file: %w", err)
	}
	md := f.Metadata
	if md["format"] != learnerFormat {
		return nil, "", fmt.Errorf("%s is not a cl learner file (format %q, want %q)", path, md["format"], learnerFormat)
	}
	if md["learner.method"] != method {
		return nil, "", fmt.Errorf("%s holds a %q learner, not %s: load it with --method %s", path, md["learner.method"], method, md["learner.method"])
	}
	if md["learner.weights"] != weightsSHA {
		return nil, "", fmt.Errorf("%s was trained on pre-trained weights with SHA-256 %s, but --weights has %s: its prompts only work on the backbone they were trained in", path, short(md["learner.weights"]), short(weightsSHA))
	}
	heads, _, _, err := runMetadata(path, md)
	if err != nil {
		return nil, "", err
	}
	if err := checkHeads(path, method, heads, env); err != nil {
		return nil, "", err
	}
	return f, md["learner.state"], nil
}

func short(s string) string {
	if s == "" {
		return "(none)"
	}
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// learnerTensors reads the named F32 tensors with the wanted shapes.
func learnerTensors(f *safetensors.File, path string, want map[string][]int64) (map[string][]float32, error) {
	out := map[string][]float32{}
	for name, shape := range want {
		t, err := f.Get(name, safetensors.F32, len(shape))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for i := range shape {
			if t.Shape[i] != shape[i] {
				return nil, fmt.Errorf("%s: tensor %q has shape %v, the learner's options need %v", path, name, t.Shape, shape)
			}
		}
		out[name] = t.Float32s()
	}
	return out, nil
}
