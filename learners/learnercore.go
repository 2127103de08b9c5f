package learners

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/grad"
	"github.com/cl-dev/cl/tune/optim"
)

// learnerCore is what the image-trained learners (L2P, DualPrompt,
// CODA-Prompt, EASE) hold besides their options and trained tensors.
type learnerCore struct {
	// method is the registry name, in errors, logs and graph names.
	method string
	pe     *promptEnv
	// rng draws the initial tensors of the first stage.
	rng *rand.Rand
	// names are the run's class names (index = global label), fixed by
	// the first stage; nil before.
	names []string
	// train and fwd are the training and forward graphs' sessions, built
	// on first use.
	train, fwd *ort.Session
	// EpochLoss is the mean training loss of every epoch of the last
	// stage learned.
	EpochLoss []float64
}

// newCore checks env for method and seeds its initial stream with tag.
func newCore(method string, env Env, tag uint64) (learnerCore, error) {
	pe, err := newPromptEnv(method, env)
	if err != nil {
		return learnerCore{}, err
	}
	return learnerCore{method: method, pe: pe, rng: pe.stream(tag)}, nil
}

// Method implements Learner.
func (c *learnerCore) Method() string { return c.method }

// DropCache implements CacheDropper: the frozen queries of d.
func (c *learnerCore) DropCache(d *tune.Dataset) { delete(c.pe.queries, d) }

// Close releases the ONNX Runtime sessions.
func (c *learnerCore) Close() {
	for _, s := range []*ort.Session{c.train, c.fwd} {
		if s != nil {
			s.Close()
		}
	}
	c.train, c.fwd = nil, nil
	c.pe.close()
}

// trainSession opens the training graph of the forward model m: spec's
// classifier head and masked cross-entropy on m's features, differentiated
// with respect to trainable (inputs of m and head parameters, in order).
// Its inputs are vit.InputName [n,3,S,S], the trainable tensors, the class
// mask [C] when spec.Mask is grad.MaskInput, and the labels [n]; its
// outputs the loss [1], the logits [n,C] and the gradient of every
// trainable tensor.
func (c *learnerCore) trainSession(m *onnxpb.ModelProto, spec grad.ObjectiveSpec, trainable []string) (*ort.Session, error) {
	obj := grad.NewObjective(m)
	if err := obj.Classifier(spec); err != nil {
		return nil, err
	}
	tg, err := grad.Build(obj.Model(), grad.Spec{Trainable: trainable, Loss: grad.LossName, Keep: []string{grad.LogitsName}})
	if err != nil {
		return nil, fmt.Errorf("%s: differentiating the training graph: %w", c.method, err)
	}
	in := append([]string{vit.InputName}, trainable...)
	if spec.Mask == grad.MaskInput {
		in = append(in, grad.ClassMaskName)
	}
	in = append(in, grad.LabelsName)
	out := []string{grad.LossName, grad.LogitsName}
	for _, n := range trainable {
		out = append(out, grad.GradName(n))
	}
	return c.pe.session(c.method+" training graph", tg, in, out)
}

// tensorSlot is one trained tensor of a learner file: its name, its shape
// and the field that holds its row-major values.
type tensorSlot struct {
	name  string
	shape []int64
	data  *[]float32
}

// paramsOf returns the slots as optimizer parameters (sharing the values).
func paramsOf(slots []tensorSlot) []*optim.Param {
	ps := make([]*optim.Param, len(slots))
	for i, s := range slots {
		ps[i] = &optim.Param{Name: s.name, Shape: s.shape, Data: *s.data}
	}
	return ps
}

// save writes the learner file: the slots' tensors and the JSON of state
// (the learner-file format in l2p_common.go).
func (c *learnerCore) save(path string, state any, slots []tensorSlot) error {
	st, _ := json.Marshal(state)
	return saveLearner(path, c.method, c.pe.env, string(st), paramsOf(slots))
}

// readState opens the learner file of method at path, checks it against
// env's weights and decodes its JSON state into state.
func readState(env Env, path, method string, state any) (*safetensors.File, error) {
	f, st, err := loadLearner(path, method, env)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(st), state); err != nil {
		return nil, fmt.Errorf("%s: %s state: %w", path, method, err)
	}
	return f, nil
}

// readSlots fills every slot with the file's tensor of its name and shape.
func readSlots(f *safetensors.File, path string, slots []tensorSlot) error {
	want := map[string][]int64{}
	for _, s := range slots {
		want[s.name] = s.shape
	}
	got, err := learnerTensors(f, path, want)
	if err != nil {
		return err
	}
	for _, s := range slots {
		*s.data = got[s.name]
	}
	return nil
}
