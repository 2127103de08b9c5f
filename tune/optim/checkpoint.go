package optim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cl-dev/cl/internal/safetensors"
)

// Checkpoint layout (all names under a caller-chosen prefix, "" by Save):
//
//	param/<name>                   F32, the parameter's shape: its values
//	optim/<name>/momentum_buffer   F32, same shape (SGD with momentum, once created)
//	optim/<name>/exp_avg           F32, same shape (Adam, AdamW, once created)
//	optim/<name>/exp_avg_sq        F32, same shape (Adam, AdamW, once created)
//	optim/<name>/step              I64 []: updates applied to this parameter
//	optim/steps, optim/epochs      I64 []: the optimizer's counters (schedule position)
//
// Metadata: "optim.kind" (sgd, adam, adamw) and "optim.config" (the Config as
// JSON, for the record; the configuration in force is the loading
// optimizer's own).
const (
	metaKind   = "optim.kind"
	metaConfig = "optim.config"
)

func scalarI64(v int64) safetensors.Tensor {
	return safetensors.FromInt64s([]int64{}, []int64{v})
}

// AddTo writes the parameters' values and the optimizer's state into f under
// prefix (e.g. "" or "tune/"), next to whatever else the caller stores there.
func (o *Optimizer) AddTo(f *safetensors.File, prefix string) error {
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	cfg, err := json.Marshal(o.cfg)
	if err != nil {
		return err
	}
	f.Metadata[prefix+metaKind] = string(o.cfg.Kind)
	f.Metadata[prefix+metaConfig] = string(cfg)
	f.Tensors[prefix+"optim/steps"] = scalarI64(o.steps)
	f.Tensors[prefix+"optim/epochs"] = scalarI64(o.epochs)
	for gi, g := range o.groups {
		for _, p := range g.Params {
			shape := slices.Clone(p.Shape)
			f.Tensors[prefix+"param/"+p.Name] = safetensors.FromFloat32s(shape, p.Data)
			st := o.state[gi][p.Name]
			base := prefix + "optim/" + p.Name + "/"
			f.Tensors[base+"step"] = scalarI64(st.step)
			if st.buf == nil {
				continue
			}
			if o.cfg.Kind == SGD {
				f.Tensors[base+"momentum_buffer"] = safetensors.FromFloat32s(shape, st.buf)
			} else {
				f.Tensors[base+"exp_avg"] = safetensors.FromFloat32s(shape, st.buf)
				f.Tensors[base+"exp_avg_sq"] = safetensors.FromFloat32s(shape, st.sq)
			}
		}
	}
	return nil
}

// Save writes the parameters and the optimizer's state to path as a
// safetensors file, atomically (a crash leaves the previous file intact).
func (o *Optimizer) Save(path string) error {
	f := safetensors.New()
	if err := o.AddTo(f, ""); err != nil {
		return err
	}
	if err := f.WriteFile(path); err != nil {
		return fmt.Errorf("saving optimizer checkpoint: %w", err)
	}
	return nil
}

// Load reads a checkpoint written by Save and restores parameter values and
// state (see RestoreFrom).
func (o *Optimizer) Load(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return fmt.Errorf("loading optimizer checkpoint: %w", err)
	}
	return o.RestoreFrom(f, "", path)
}

// RestoreFrom checks that f (under prefix) holds exactly this optimizer's
// parameters with the same shapes and an optimizer of the same kind, then
// copies the parameter values into the Params' Data and restores moments,
// step counts and the schedule's position. On any mismatch nothing is
// changed and the error lists every difference; source names the file in
// messages.
func (o *Optimizer) RestoreFrom(f *safetensors.File, prefix, source string) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("checkpoint %s: %s", source, fmt.Sprintf(format, a...))
	}
	if k := f.Metadata[prefix+metaKind]; k != string(o.cfg.Kind) {
		if k == "" {
			return fail("has no optimizer state (metadata %q missing); was it written by cl tune?", prefix+metaKind)
		}
		return fail("holds the state of a %s optimizer, this run uses %s", k, o.cfg.Kind)
	}
	// Parameter names and shapes, both ways.
	var problems []string
	want := map[string]bool{}
	for _, g := range o.groups {
		for _, p := range g.Params {
			want[p.Name] = true
			t, ok := f.Tensors[prefix+"param/"+p.Name]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("parameter %q (shape %v) is missing", p.Name, p.Shape))
			case t.DType != safetensors.F32:
				problems = append(problems, fmt.Sprintf("parameter %q is %s, want F32", p.Name, t.DType))
			case !slices.Equal(t.Shape, p.Shape):
				problems = append(problems, fmt.Sprintf("parameter %q has shape %v in the checkpoint, %v here", p.Name, t.Shape, p.Shape))
			}
		}
	}
	var extra []string
	for name := range f.Tensors {
		if rest, ok := strings.CutPrefix(name, prefix+"param/"); ok && !want[rest] {
			extra = append(extra, rest)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		problems = append(problems, fmt.Sprintf("parameter %q is in the checkpoint but not in this model", name))
	}
	if len(problems) > 0 {
		return fail("does not match this model's parameters (a checkpoint of another model, variant or method?):\n  %s", strings.Join(problems, "\n  "))
	}
	// Decode everything before changing anything.
	getI64 := func(name string) (int64, error) {
		t, err := f.Get(prefix+name, safetensors.I64, 0)
		if err != nil {
			return 0, fail("%v", err)
		}
		v := t.Int64s()[0]
		if v < 0 {
			return 0, fail("tensor %q is %d, must be ≥ 0", prefix+name, v)
		}
		return v, nil
	}
	getF32 := func(name string, shape []int64) ([]float32, error) {
		t, ok := f.Tensors[prefix+name]
		if !ok {
			return nil, nil
		}
		if t.DType != safetensors.F32 || !slices.Equal(t.Shape, shape) {
			return nil, fail("tensor %q is %s %v, want F32 %v", prefix+name, t.DType, t.Shape, shape)
		}
		return t.Float32s(), nil
	}
	steps, err := getI64("optim/steps")
	if err != nil {
		return err
	}
	epochs, err := getI64("optim/epochs")
	if err != nil {
		return err
	}
	type loaded struct {
		data []float32
		st   paramState
	}
	all := make([]map[string]loaded, len(o.groups))
	for gi, g := range o.groups {
		all[gi] = map[string]loaded{}
		for _, p := range g.Params {
			var l loaded
			l.data, _ = getF32("param/"+p.Name, p.Shape)
			base := "optim/" + p.Name + "/"
			if l.st.step, err = getI64(base + "step"); err != nil {
				return err
			}
			if o.cfg.Kind == SGD {
				if l.st.buf, err = getF32(base+"momentum_buffer", p.Shape); err != nil {
					return err
				}
			} else {
				if l.st.buf, err = getF32(base+"exp_avg", p.Shape); err != nil {
					return err
				}
				if l.st.sq, err = getF32(base+"exp_avg_sq", p.Shape); err != nil {
					return err
				}
				if (l.st.buf == nil) != (l.st.sq == nil) {
					return fail("parameter %q has only one of exp_avg and exp_avg_sq", p.Name)
				}
			}
			if l.st.buf != nil && l.st.step == 0 && o.cfg.Kind != SGD {
				return fail("parameter %q has Adam moments but step 0", p.Name)
			}
			all[gi][p.Name] = l
		}
	}
	for gi, g := range o.groups {
		for _, p := range g.Params {
			l := all[gi][p.Name]
			copy(p.Data, l.data)
			st := l.st
			o.state[gi][p.Name] = &st
		}
	}
	o.steps, o.epochs = steps, epochs
	return nil
}

// String summarises the optimizer for logs: kind, groups, step and epoch.
func (o *Optimizer) String() string {
	var b strings.Builder
	b.WriteString(string(o.cfg.Kind))
	for gi, g := range o.groups {
		n := 0
		for _, p := range g.Params {
			n += len(p.Data)
		}
		name := g.Name
		if name == "" {
			name = "#" + strconv.Itoa(gi)
		}
		fmt.Fprintf(&b, " [%s: %d tensors, %d values, lr %g, wd %g", name, len(g.Params), n, g.LR, g.WeightDecay)
		if g.Frozen {
			b.WriteString(", frozen")
		}
		b.WriteString("]")
	}
	fmt.Fprintf(&b, " step %d epoch %d", o.steps, o.epochs)
	return b.String()
}
