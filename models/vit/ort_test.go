package vit

import (
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/onnxpb"
)

// needORT initialises ONNX Runtime through models.InitORT (one environment
// per process, shared with models.Open) or skips — fails under CI=true — when
// the library is not installed.
func needORT(t testing.TB) {
	t.Helper()
	if _, err := models.InitORT(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ONNX Runtime is required in CI: %v", err)
		}
		t.Skipf("ONNX Runtime not available (run scripts/install-onnxruntime.sh): %v", err)
	}
}

// feed is one named float32 input.
type feed struct {
	name  string
	shape []int64
	data  []float32
}

// session runs graphs with several inputs (variants), which models.Open (a
// one-image-input backbone) does not take.
type session struct {
	s       *ort.DynamicAdvancedSession
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
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if threads > 0 {
		if err := so.SetIntraOpNumThreads(threads); err != nil {
			t.Fatal(err)
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			t.Fatal(err)
		}
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
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, ins, outs, so)
	if err != nil {
		t.Fatalf("ONNX Runtime rejects the graph: %v", err)
	}
	ss := &session{s: s, inputs: ins, outputs: outs}
	t.Cleanup(func() {
		if ss.s != nil {
			ss.s.Destroy()
		}
	})
	return ss
}

// run feeds the inputs (by name, all required) and returns every output.
func (s *session) run(t testing.TB, feeds ...feed) map[string][]float32 {
	t.Helper()
	byName := map[string]feed{}
	for _, f := range feeds {
		byName[f.name] = f
	}
	in := make([]ort.Value, len(s.inputs))
	for i, name := range s.inputs {
		f, ok := byName[name]
		if !ok {
			t.Fatalf("no value for graph input %q", name)
		}
		x, err := ort.NewTensor(ort.NewShape(f.shape...), f.data)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Destroy()
		in[i] = x
	}
	out := make([]ort.Value, len(s.outputs))
	if err := s.s.Run(in, out); err != nil {
		t.Fatalf("run: %v", err)
	}
	res := map[string][]float32{}
	for i, v := range out {
		tt, ok := v.(*ort.Tensor[float32])
		if !ok {
			t.Fatalf("output %q is not float32", s.outputs[i])
		}
		res[s.outputs[i]] = append([]float32(nil), tt.GetData()...)
		v.Destroy()
	}
	return res
}
