package learners

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/tune"
)

// Learner files of APER (aper-adapter, aper-ssf, aper-vpt-deep,
// aper-vpt-shallow) and ranpac-phase1 (docs/TRAINING.md, "Adapted
// learners"): one safetensors file in the learner-file format of the prompt
// learners (format "cl.learner/1", learner.method, learner.weights = the
// SHA-256 of the pre-trained checkpoint, learner.state = JSON) holding
//
//   - the trained variant parameters under their models/vit ParamSpec names
//     (adapter_down_w, ssf_*, vpt, …) with tune.SaveParams's metadata
//     tune.sigma and tune.steps, so tune.LoadResult reads them back;
//   - the head's state tensors (heads.Head.State) prefixed "head.";
//   - the head's ledger (heads.Ledger) in the head-file layout, as
//     heads.Ledger.Encode writes it: "ledger.labels" I64 [n],
//     "ledger.sha256" U8 [n,32] and metadata "ledger_ids" (JSON, n ids).
//
// The state JSON has the options New was given, the recipe the adaptation
// ran, the class names, the classes learned ("seen"), the stage count, the
// head's method and parameters. The adapted backbone is not stored: it is
// rebuilt from the weights and the parameters (tune.Result.Bake), as stage 0
// built it, so the loaded learner's features are bit-identical.

// adaptedState is the learner.state JSON of an adapted learner.
type adaptedState struct {
	Options    map[string]string `json:"options"`
	Recipe     tune.Recipe       `json:"recipe"`
	Names      []string          `json:"names"`
	Seen       []int             `json:"seen"`
	Stages     int               `json:"stages"`
	Head       string            `json:"head"`
	HeadParams map[string]string `json:"head_params"`
	HeadDim    int               `json:"head_dim"`
}

// headPrefix prefixes the head's tensors in an adapted learner file.
const headPrefix = "head."

// Save writes the learner file atomically (temporary file, fsync, rename).
func (a *adapted) Save(path string) error {
	if a.head == nil || a.res == nil {
		return fmt.Errorf("%s: nothing learned yet", a.Method())
	}
	tensors, params, err := a.head.State()
	if err != nil {
		return fmt.Errorf("%s: %w", a.Method(), err)
	}
	f := a.res.BakedWeights()
	for n, t := range tensors {
		f.Tensors[headPrefix+n] = t
	}
	if err := a.ledger.Encode(f); err != nil {
		return fmt.Errorf("%s: %w", a.Method(), err)
	}
	st, err := json.Marshal(adaptedState{Options: a.opts, Recipe: a.recipe, Names: a.names, Seen: a.seen, Stages: a.stages,
		Head: a.head.Method(), HeadParams: params, HeadDim: a.head.Dim()})
	if err != nil {
		return err
	}
	f.Metadata["format"] = learnerFormat
	f.Metadata["learner.method"] = a.Method()
	f.Metadata["learner.weights"] = a.env.WeightsSHA256
	f.Metadata["learner.state"] = string(st)
	// tune.SaveParams's metadata, read by tune.LoadResult.
	f.Metadata["tune.method"] = a.method.Name
	f.Metadata["tune.sigma"] = strconv.FormatFloat(float64(a.res.Sigma), 'g', -1, 32)
	f.Metadata["tune.steps"] = strconv.Itoa(a.res.Steps)
	setRunMetadata(f.Metadata, a.env)
	if err := f.WriteFile(path); err != nil {
		return fmt.Errorf("%s: writing learner file: %w", a.Method(), err)
	}
	return nil
}

// isAdaptedMethod reports whether LoadAdapted reads learner files of name
// (the tune methods aper-*, and ranpac-phase1).
func isAdaptedMethod(name string) bool {
	if name == "ranpac-phase1" {
		return true
	}
	_, err := tune.Lookup(name)
	return err == nil
}

// LoadAdapted reads an APER or ranpac-phase1 learner file written by Save:
// it checks the format and that the file was trained on env's weights
// (env.WeightsSHA256; a mismatch wraps ErrOtherWeights and names the file),
// rebuilds the adapted backbone from env.Weights and the stored parameters,
// and loads the head and its ledger. The learner scores as the saved one
// did, bit for bit, and learns further stages. The caller closes it (Close).
func LoadAdapted(env Env, path string) (Learner, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading learner file: %w", err)
	}
	md := f.Metadata
	method := md["learner.method"]
	switch {
	case md["format"] != learnerFormat:
		return nil, fmt.Errorf("%s is not a cl learner file (format %q, want %q)", path, md["format"], learnerFormat)
	case !isAdaptedMethod(method):
		return nil, fmt.Errorf("%s holds a %q learner, not an adapted one (aper-*, ranpac-phase1)", path, method)
	case md["learner.weights"] != env.WeightsSHA256:
		return nil, fmt.Errorf("%s: %w: the %s learner was trained on weights with SHA-256 %s, but the given weights have %s; its adapted parameters only work in the backbone they were trained in (give that checkpoint with --weights)",
			path, ErrOtherWeights, method, short(md["learner.weights"]), short(env.WeightsSHA256))
	}
	var st adaptedState
	if err := json.Unmarshal([]byte(md["learner.state"]), &st); err != nil {
		return nil, fmt.Errorf("%s: %s state: %w", path, method, err)
	}
	ranpac := method == "ranpac-phase1"
	m, err := tune.Lookup(method)
	if ranpac {
		m, err = tune.Lookup("aper-adapter")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l, err := newAdapted(env, m, st.Options, ranpac)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	a := l.(*adapted)
	a.recipe = st.Recipe // the recipe the adaptation ran, whatever today's defaults
	res, err := tune.LoadResult(path, env.Weights, m)
	if err != nil {
		return nil, fmt.Errorf("%s: %s parameters: %w", path, method, err)
	}
	if err := a.openBackbones(res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	if a.head, err = loadAdaptedHead(f, st); err != nil {
		return nil, fmt.Errorf("%s: %s head: %w", path, method, err)
	}
	if d := a.head.Dim(); d != a.headDim() {
		return nil, fmt.Errorf("%s: the %s head has dimension %d, the backbones give %d", path, st.Head, d, a.headDim())
	}
	if a.ledger, err = heads.DecodeLedger(f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if a.ledger == nil {
		return nil, fmt.Errorf("%s: the file has no ledger of the rows its head learned (tensors ledger.labels, ledger.sha256 and metadata ledger_ids): it was not written by cl fit --learner; fit the learner again", path)
	}
	if err := checkAdaptedState(st, a.head, a.ledger); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	a.names, a.seen, a.stages = st.Names, st.Seen, st.Stages
	ok = true
	return a, nil
}

// loadAdaptedHead rebuilds the head from its "head." tensors and the
// state's method and parameters. A loader that panics on a tampered file
// is an error, as in heads.Load.
func loadAdaptedHead(f *safetensors.File, st adaptedState) (h heads.Head, err error) {
	spec, ok := heads.Lookup(st.Head)
	if !ok {
		return nil, fmt.Errorf("unknown head method %q", st.Head)
	}
	tensors := map[string]safetensors.Tensor{}
	for n, t := range f.Tensors {
		if name, ok := strings.CutPrefix(n, headPrefix); ok {
			t.Data = append([]byte(nil), t.Data...)
			tensors[name] = t
		}
	}
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("corrupt %s head: %v", st.Head, r)
		}
	}()
	if h, err = spec.Load(tensors, st.HeadParams); err != nil {
		return nil, err
	}
	if h.Dim() != st.HeadDim {
		return nil, fmt.Errorf("state says dimension %d, the %s head has %d", st.HeadDim, st.Head, h.Dim())
	}
	return h, nil
}

// checkAdaptedState verifies that the classes learned are class names'
// labels, that the head scores exactly them, and that every ledger row's
// label is one of them.
func checkAdaptedState(st adaptedState, h heads.Head, l *heads.Ledger) error {
	if st.Stages < 1 || len(st.Seen) == 0 {
		return fmt.Errorf("state records %d stages and %d classes learned: a saved learner has learned stage 1", st.Stages, len(st.Seen))
	}
	for _, c := range st.Seen {
		if c < 0 || c >= len(st.Names) {
			return fmt.Errorf("learned class %d is outside its %d class names", c, len(st.Names))
		}
	}
	if got, want := h.Classes(), slices.Sorted(slices.Values(st.Seen)); !slices.Equal(got, want) {
		return fmt.Errorf("the head scores classes %v, the state says %v were learned", got, want)
	}
	in := map[int]bool{}
	for _, c := range st.Seen {
		in[c] = true
	}
	for i := range l.Len() {
		if id, y, _ := l.Entry(i); !in[y] {
			return fmt.Errorf("ledger: row %d (sample %q) has class %d, which the learner has not learned", i, id, y)
		}
	}
	return nil
}
