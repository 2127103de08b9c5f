//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"runtime"

	onnxrt "github.com/yalue/onnxruntime_go"
)

// build creates ONNX Runtime session options for o on dev; the caller
// destroys them.
func (o SessionOptions) build(dev Device) (*onnxrt.SessionOptions, error) {
	so, err := onnxrt.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ONNX Runtime session options: %w", err)
	}
	fail := func(err error) (*onnxrt.SessionOptions, error) {
		so.Destroy()
		return nil, err
	}
	if o.Threads > 0 {
		if err := so.SetIntraOpNumThreads(o.Threads); err != nil {
			return fail(fmt.Errorf("setting %d threads: %w", o.Threads, err))
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			return fail(fmt.Errorf("setting inter-op threads: %w", err))
		}
	}
	if o.NoOptimization {
		if err := so.SetGraphOptimizationLevel(onnxrt.GraphOptimizationLevelDisableAll); err != nil {
			return fail(fmt.Errorf("turning graph optimizations off: %w", err))
		}
	}
	if o.NoMemPattern {
		if err := so.SetMemPattern(false); err != nil {
			return fail(fmt.Errorf("turning the memory pattern off: %w", err))
		}
	}
	if o.Profile != "" {
		if err := so.EnableProfiling(o.Profile); err != nil {
			return fail(fmt.Errorf("profiling to %s: %w", o.Profile, err))
		}
	}
	if o.NoSpinning {
		for _, k := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
			if err := so.AddSessionConfigEntry(k, "0"); err != nil {
				return fail(fmt.Errorf("setting %s: %w", k, err))
			}
		}
	}
	if dev.CUDA {
		if err := appendCUDA(so, dev); err != nil {
			return fail(err)
		}
	}
	return so, nil
}

// Session runs any ONNX graph with named inputs and outputs of the types
// Tensor carries (the training graphs, prompt variants, goldens). Backbone is
// the specialised one-image-input form. A Session is safe for concurrent Runs.
type Session struct {
	name    string
	inputs  []string
	outputs []string
	device  Device
	s       *onnxrt.DynamicAdvancedSession
}

// NewSession creates a session on the serialized model onnx (name is used in
// errors). inputs and outputs fix the order of Run's arguments and results.
func NewSession(name string, onnx []byte, inputs, outputs []string, opts SessionOptions) (*Session, error) {
	dev, err := ParseDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	if opts.Threads < 0 {
		return nil, fmt.Errorf("threads %d: must be ≥ 0 (0 = all cores)", opts.Threads)
	}
	if len(outputs) == 0 {
		return nil, fmt.Errorf("%s: a session needs at least one output", name)
	}
	if _, err := Init(opts.ORTLib); err != nil {
		return nil, err
	}
	so, err := opts.build(dev)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := onnxrt.NewDynamicAdvancedSessionWithONNXData(onnx, inputs, outputs, so)
	if err != nil {
		if dev.CUDA {
			return nil, cudaError(dev, err)
		}
		return nil, fmt.Errorf("ONNX Runtime cannot load %s: %w", name, err)
	}
	return &Session{name: name, inputs: append([]string(nil), inputs...), outputs: append([]string(nil), outputs...), device: dev, s: s}, nil
}

// Inputs are the input names in Run's order.
func (s *Session) Inputs() []string { return s.inputs }

// Outputs are the output names in Run's order.
func (s *Session) Outputs() []string { return s.outputs }

// Device is where the session runs.
func (s *Session) Device() Device { return s.device }

// Run feeds in (one Tensor per input, in Inputs order) and returns the
// outputs in Outputs order, copied into Go memory.
func (s *Session) Run(in []Tensor) ([]Tensor, error) {
	if s.s == nil {
		return nil, ErrClosed
	}
	if len(in) != len(s.inputs) {
		return nil, fmt.Errorf("%s: %d inputs given, the session takes %d (%v)", s.name, len(in), len(s.inputs), s.inputs)
	}
	vals := make([]onnxrt.Value, len(in))
	defer func() {
		for _, v := range vals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range in {
		v, err := toValue(t)
		if err != nil {
			return nil, fmt.Errorf("%s: input %q: %w", s.name, s.inputs[i], err)
		}
		vals[i] = v
	}
	outs := make([]onnxrt.Value, len(s.outputs))
	if err := s.s.Run(vals, outs); err != nil {
		return nil, fmt.Errorf("running %s: %w", s.name, err)
	}
	runtime.KeepAlive(in)
	res := make([]Tensor, len(outs))
	var firstErr error
	for i, v := range outs {
		if v == nil {
			continue
		}
		t, err := fromValue(v)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: output %q: %w", s.name, s.outputs[i], err)
		}
		res[i] = t
		v.Destroy()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return res, nil
}

// Close releases the session; later Runs return ErrClosed.
func (s *Session) Close() error {
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}

func toValue(t Tensor) (onnxrt.Value, error) {
	shape := onnxrt.NewShape(t.Shape...)
	n, set := t.Len(), 0
	check := func(l int) error {
		set++
		if l != n {
			return fmt.Errorf("%d values for shape %v (%d)", l, t.Shape, n)
		}
		return nil
	}
	var v onnxrt.Value
	var err error
	switch {
	case t.F32 != nil:
		if err = check(len(t.F32)); err == nil {
			v, err = onnxrt.NewTensor(shape, t.F32)
		}
	case t.F64 != nil:
		if err = check(len(t.F64)); err == nil {
			v, err = onnxrt.NewTensor(shape, t.F64)
		}
	case t.I64 != nil:
		if err = check(len(t.I64)); err == nil {
			v, err = onnxrt.NewTensor(shape, t.I64)
		}
	case t.U8 != nil:
		if err = check(len(t.U8)); err == nil {
			v, err = onnxrt.NewTensor(shape, t.U8)
		}
	case t.Bool != nil:
		if err = check(len(t.Bool)); err == nil {
			b := make([]uint8, len(t.Bool))
			for i, x := range t.Bool {
				if x {
					b[i] = 1
				}
			}
			v, err = onnxrt.NewCustomDataTensor(shape, b, onnxrt.TensorElementDataTypeBool)
		}
	default:
		if n == 0 {
			v, err = onnxrt.NewTensor(shape, []float32{})
		} else {
			return nil, errors.New("no data")
		}
	}
	return v, err
}

func fromValue(v onnxrt.Value) (Tensor, error) {
	shape := []int64(v.GetShape())
	switch x := v.(type) {
	case *onnxrt.Tensor[float32]:
		return Tensor{Shape: shape, F32: append([]float32{}, x.GetData()...)}, nil
	case *onnxrt.Tensor[float64]:
		return Tensor{Shape: shape, F64: append([]float64{}, x.GetData()...)}, nil
	case *onnxrt.Tensor[int64]:
		return Tensor{Shape: shape, I64: append([]int64{}, x.GetData()...)}, nil
	case *onnxrt.Tensor[uint8]:
		return Tensor{Shape: shape, U8: append([]uint8{}, x.GetData()...)}, nil
	case *onnxrt.CustomDataTensor:
		if x.DataType() == onnxrt.TensorElementDataTypeBool {
			d := x.GetData()
			b := make([]bool, len(d))
			for i, c := range d {
				b[i] = c != 0
			}
			return Tensor{Shape: shape, Bool: b}, nil
		}
	}
	return Tensor{Shape: shape}, fmt.Errorf("element type %v is not supported by cl's sessions", v.GetONNXType())
}
