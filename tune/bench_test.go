package tune

import (
	"math/rand/v2"
	"os"
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
// forward, backward to the adapters and the cosine head, SGD update
// (batch 32, CL_BENCH_THREADS threads, default 2). scripts/bench-train.sh
// runs it beside PyTorch eager doing the same step.
func BenchmarkTrainStep(b *testing.B) {
	benchStep(b, true)
}

// BenchmarkForward is the forward pass alone of the plain ViT-Ti/16 on the
// same batch (the reference for the step/forward ratio).
func BenchmarkForward(b *testing.B) {
	benchStep(b, false)
}

func benchStep(b *testing.B, train bool) {
	needORT(b)
	w, err := vit.Load(realViTTi(b), 0)
	if err != nil {
		b.Fatal(err)
	}
	const batch, classes = 32, 10
	threads := 2
	if s := os.Getenv("CL_BENCH_THREADS"); s != "" {
		threads = int(s[0] - '0')
	}
	m, _ := Lookup("aper-adapter")
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*3*224*224)
	for i := range x {
		x[i] = r.Float32()
	}
	so := ort.SessionOptions{Threads: threads}
	if !train {
		plain, _ := vit.Build(w, vit.Options{})
		pb, _ := proto.Marshal(plain)
		s, err := ort.NewSession("forward", pb, []string{vit.InputName}, []string{vit.OutputName}, so)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		in := []ort.Tensor{{Shape: []int64{batch, 3, 224, 224}, F32: x}}
		s.Run(in)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Run(in); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
		return
	}
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
		in := []ort.Tensor{{Shape: []int64{batch, 3, 224, 224}, F32: x}}
		for _, p := range params {
			in = append(in, ort.Tensor{Shape: p.Shape, F32: p.Data})
		}
		in = append(in, ort.Tensor{Shape: []int64{batch}, I64: labels})
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
	for i := 0; i < b.N; i++ {
		step()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}
