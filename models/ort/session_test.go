package ort

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/internal/testenv"
	"github.com/cl-dev/cl/models/onnxpb"
)

// reluGraph is a one-node Relu graph, float32 [N,4] → [N,4].
func reluGraph(t *testing.T) []byte {
	t.Helper()
	m := testenv.OneNodeGraph("Relu", onnxpb.TensorProto_FLOAT, []int64{-1, 4}, onnxpb.TensorProto_FLOAT, []int64{-1, 4})
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSessionCUDAFailsClearly: a Session on "cuda" without the CUDA
// provider (the CPU build of ONNX Runtime, or no GPU) is refused with the
// same message as a Backbone; where CUDA works, the session must run.
func TestSessionCUDAFailsClearly(t *testing.T) {
	needORT(t)
	onnx := reluGraph(t)
	for _, dev := range []string{"cuda", "cuda:1"} {
		s, err := NewSession("relu", onnx, []string{"x"}, []string{"y"}, SessionOptions{Device: dev, NoMemPattern: true})
		if err == nil {
			defer s.Close()
			t.Logf("%s is available here; checking it runs", dev)
			out, err := s.Run([]Tensor{{Shape: []int64{1, 4}, F32: []float32{-1, 2, -3, 4}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := out[0].F32; got[0] != 0 || got[1] != 2 || got[2] != 0 || got[3] != 4 {
				t.Fatalf("%s: Relu gave %v", dev, got)
			}
			continue
		}
		msg := err.Error()
		t.Logf("%s: %v", dev, err)
		if !strings.Contains(msg, "the CUDA provider could not be loaded for "+dev) || !strings.Contains(msg, "--device cpu") {
			t.Fatalf("%s: unclear error: %v", dev, err)
		}
	}
}

// TestSessionOptions: the memory-pattern and profiling options give the
// same results, and the profile is written when the session closes.
func TestSessionOptions(t *testing.T) {
	needORT(t)
	prefix := filepath.Join(t.TempDir(), "prof")
	s, err := NewSession("relu", reluGraph(t), []string{"x"}, []string{"y"}, SessionOptions{Threads: 1, NoMemPattern: true, Profile: prefix})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{1, 3} { // two batch sizes: no plan is reused
		x := make([]float32, 4*n)
		for i := range x {
			x[i] = float32(i) - 2
		}
		out, err := s.Run([]Tensor{{Shape: []int64{n, 4}, F32: x}})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range out[0].F32 {
			if want := max(x[i], 0); v != want {
				t.Fatalf("batch %d: y[%d] = %v, want %v", n, i, v, want)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(prefix + "*.json")
	if len(files) != 1 {
		t.Fatalf("profile files %v, want one %s_<date>.json", files, prefix)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"op_name" : "Relu"`) && !strings.Contains(string(b), `"op_name":"Relu"`) {
		t.Fatalf("the profile does not name the Relu kernel: %.300s", b)
	}
}
