//go:build cgo

package vit

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/internal/testenv/orttest"
	"github.com/cl-dev/cl/models/onnxpb"
	"github.com/cl-dev/cl/models/ort"
)

// needORT is orttest.Need: ONNX Runtime or skip (fail under CI=true).
func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

// feed is one named float32 input.
type feed struct {
	name  string
	shape []int64
	data  []float32
}

func tensorFeed(name string, t safetensors.Tensor) feed {
	return feed{name: name, shape: t.Shape, data: t.Float32s()}
}

// session runs graphs with several inputs (variants), which ort.Open (a
// one-image-input backbone) does not take.
type session struct {
	s       *ort.Session
	inputs  []string
	outputs []string
}

func newSession(t testing.TB, m *onnxpb.ModelProto, threads int) *session {
	t.Helper()
	needORT(t)
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var ins, outs []string
	inits := map[string]bool{}
	for _, x := range m.GetGraph().GetInitializer() {
		inits[x.GetName()] = true
	}
	for _, v := range m.GetGraph().GetInput() {
		if !inits[v.GetName()] {
			ins = append(ins, v.GetName())
		}
	}
	for _, v := range m.GetGraph().GetOutput() {
		outs = append(outs, v.GetName())
	}
	s, err := ort.NewSession("test graph", data, ins, outs, ort.SessionOptions{Threads: threads})
	if err != nil {
		t.Fatalf("ONNX Runtime rejects the graph: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &session{s: s, inputs: ins, outputs: outs}
}

// run feeds the inputs (by name, all required) and returns every output.
func (s *session) run(t testing.TB, feeds ...feed) map[string][]float32 {
	t.Helper()
	byName := map[string]feed{}
	for _, f := range feeds {
		byName[f.name] = f
	}
	in := make([]ort.Tensor, len(s.inputs))
	for i, name := range s.inputs {
		f, ok := byName[name]
		if !ok {
			t.Fatalf("no value for graph input %q", name)
		}
		in[i] = ort.Tensor{Shape: f.shape, F32: f.data}
	}
	out, err := s.s.Run(in)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	res := map[string][]float32{}
	for i, v := range out {
		if v.F32 == nil && v.Len() > 0 {
			t.Fatalf("output %q is not float32", s.outputs[i])
		}
		res[s.outputs[i]] = v.F32
	}
	return res
}
