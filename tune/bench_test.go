package tune

import (
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/tune/grad"
	"github.com/cl-dev/cl/tune/optim"
)

// realViTTi is the real ViT-Ti/16 checkpoint of ../shared/data (see its
// README). A user without it gets an equivalent with timm:
// timm.create_model("vit_tiny_patch16_224.augreg_in21k_ft_in1k", pretrained=True)
// saved with safetensors.torch.save_file(model.state_dict(), "model.safetensors"),
// and points CL_VIT_TINY at it.
func realViTTi(b *testing.B) string {
	p := os.Getenv("CL_VIT_TINY")
	if p == "" {
		p = "../../shared/data/vit-tiny-augreg/model.safetensors"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("the ViT-Ti/16 checkpoint is required under CI: %v", err)
		}
		b.Skipf("ViT-Ti/16 checkpoint not found (%v); set CL_VIT_TINY to a timm vit_tiny_patch16_224 model.safetensors", err)
	}
	return p
}

// BenchmarkTrainStep is one APER-adapter training step of ViT-Ti/16 at 224:
// forward, backward to the adapters and the cosine head, SGD update, on
// the session options Train uses (memory pattern off). Batch:
// $CL_BENCH_BATCH (default 32); threads: $CL_BENCH_THREADS (default 2);
// $CL_BENCH_PROFILE, when set, is the prefix of an ONNX Runtime profile.
// Besides time per step it reports CPU-s/op, the process CPU time per step
// (user + system, all threads): on a shared machine it moves far less than
// wall time. scripts/bench-train.sh runs it beside PyTorch eager doing the
// same step.
func BenchmarkTrainStep(b *testing.B) {
	benchStep(b, true)
}

// BenchmarkForward is the forward pass alone of the plain ViT-Ti/16 on the
// same batch, on a Backbone's default session options (the reference for
// the step/forward ratio).
func BenchmarkForward(b *testing.B) {
	benchStep(b, false)
}

func benchEnv(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func benchStep(b *testing.B, train bool) {
	needORT(b)
	w, err := vit.Load(realViTTi(b), 0)
	if err != nil {
		b.Fatal(err)
	}
	const classes = 10
	batch := benchEnv(b, "CL_BENCH_BATCH", 32)
	threads := benchEnv(b, "CL_BENCH_THREADS", 2)
	m, _ := Lookup("aper-adapter")
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*3*224*224)
	for i := range x {
		x[i] = r.Float32()
	}
	so := ort.SessionOptions{Threads: threads, Profile: os.Getenv("CL_BENCH_PROFILE")}
	var c0 float64
	report := func() {
		b.ReportMetric((cpuSeconds()-c0)/float64(b.N), "CPU-s/op")
		b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
	}
	if !train {
		plain, _ := vit.Build(w, vit.Options{})
		pb, _ := proto.Marshal(plain)
		s, err := ort.NewSession("forward", pb, []string{vit.InputName}, []string{vit.OutputName}, so)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		in := []ort.Tensor{{Shape: []int64{int64(batch), 3, 224, 224}, F32: x}}
		s.Run(in)
		b.ResetTimer()
		c0 = cpuSeconds()
		for i := 0; i < b.N; i++ {
			if _, err := s.Run(in); err != nil {
				b.Fatal(err)
			}
		}
		report()
		return
	}
	so.NoMemPattern = true // as Train
	tg, specs, err := TrainingGraph(w, m, classes)
	if err != nil {
		b.Fatal(err)
	}
	data, _ := proto.MarshalOptions{Deterministic: true}.Marshal(tg)
	inputs := []string{vit.InputName}
	outputs := []string{LossOutput, LogitsOutput}
	var params []*optim.Param
	for _, s := range specs {
		shape := make([]int64, len(s.Shape))
		for i, d := range s.Shape {
			shape[i] = int64(d)
		}
		inputs = append(inputs, s.Name)
		outputs = append(outputs, grad.GradName(s.Name))
		params = append(params, &optim.Param{Name: s.Name, Shape: shape, Data: m.Init(s, r)})
	}
	head := make([]float32, classes*w.Width)
	for i := range head {
		head[i] = r.Float32() - 0.5
	}
	params = append(params, &optim.Param{Name: HeadWeight, Shape: []int64{classes, int64(w.Width)}, Data: head},
		&optim.Param{Name: HeadSigma, Shape: []int64{1}, Data: []float32{16}})
	inputs = append(inputs, HeadWeight, HeadSigma, LabelsInput)
	outputs = append(outputs, grad.GradName(HeadWeight), grad.GradName(HeadSigma))
	s, err := ort.NewSession("train", data, inputs, outputs, so)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	opt, err := optim.New(optim.Config{Kind: optim.SGD, Momentum: 0.9}, optim.Group{Params: params, LR: 0.01, WeightDecay: 5e-4})
	if err != nil {
		b.Fatal(err)
	}
	labels := make([]int64, batch)
	for i := range labels {
		labels[i] = int64(i % classes)
	}
	step := func() {
		in := []ort.Tensor{{Shape: []int64{int64(batch), 3, 224, 224}, F32: x}}
		for _, p := range params {
			in = append(in, ort.Tensor{Shape: p.Shape, F32: p.Data})
		}
		in = append(in, ort.Tensor{Shape: []int64{int64(batch)}, I64: labels})
		out, err := s.Run(in)
		if err != nil {
			b.Fatal(err)
		}
		g := map[string][]float32{}
		for i, p := range params {
			g[p.Name] = out[2+i].F32
		}
		if _, err := opt.Step(g); err != nil {
			b.Fatal(err)
		}
	}
	step()
	b.ResetTimer()
	c0 = cpuSeconds()
	for i := 0; i < b.N; i++ {
		step()
	}
	report()
}
