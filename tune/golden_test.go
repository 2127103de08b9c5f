package tune

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
)

// pixels is the plain ToTensor transform (pixels/255, no resize): the
// golden feeds the model images already at its input size.
type pixels struct{ size int }

func (p pixels) Size() int { return p.size }

func (p pixels) Apply(img *imageproc.RGB, _ uint64, dst []float32) error {
	n := p.size * p.size
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			dst[c*n+i] = float32(img.Pix[3*i+c]) / 255
		}
	}
	return nil
}

// The training loop against torch: the same initial adapters and head, the
// same batches, SGD with momentum, weight decay and PILOT's per-epoch cosine
// schedule (testdata/tune/make_train_golden.py) give the same losses and
// final parameters.
func TestTrainMatchesTorch(t *testing.T) {
	needORT(t)
	g, err := safetensors.ReadFile("../testdata/tune/train_golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	var cfgJSON struct {
		Batch, Epochs, Bottleneck int
		LR, Momentum              float64
		WeightDecay               float64 `json:"weight_decay"`
	}
	if err := json.Unmarshal([]byte(g.Metadata["config"]), &cfgJSON); err != nil {
		t.Fatal(err)
	}
	w, err := vit.Load(tinyWeights, 3)
	if err != nil {
		t.Fatal(err)
	}
	imgs := g.Tensors["images"].Float32s()
	labels := g.Tensors["labels"].Float32s()
	d := &Dataset{Classes: []string{"a", "b", "c"}, Native: []int{0, 1, 2}}
	per := 32 * 32 * 3
	for i, y := range labels {
		pix := make([]uint8, per)
		for j := range pix {
			pix[j] = uint8(imgs[i*per+j])
		}
		d.Samples = append(d.Samples, data.Sample{Raw: &data.Raw{W: 32, H: 32, C: 3, Pix: pix}})
		d.Labels = append(d.Labels, int(y))
		d.IDs = append(d.IDs, "g")
	}
	init := map[string][]float32{}
	for name, tn := range g.Tensors {
		if len(name) > 5 && name[:5] == "init." {
			init[name[5:]] = tn.Float32s()
		}
	}
	m, _ := Lookup("aper-adapter")
	m.Bottleneck = cfgJSON.Bottleneck
	rec := Recipe{Name: "pilot", Epochs: cfgJSON.Epochs, Batch: cfgJSON.Batch, LR: cfgJSON.LR, WeightDecay: cfgJSON.WeightDecay,
		Momentum: cfgJSON.Momentum, Sigma: init[HeadSigma][0]}
	var losses []float64
	res, err := Train(context.Background(), w, d, nil, Config{Method: m, Recipe: rec, Train: pixels{32}, Eval: pixels{32},
		Session: ort.SessionOptions{Threads: 1}, Workers: 1, InitParams: init, NoShuffle: true,
		Progress: func(p Progress) {
			if !p.EpochDone {
				losses = append(losses, p.Loss)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 4 {
		t.Fatalf("%d steps, want 4", res.Steps)
	}
	// Progress reports the running mean loss of the epoch; recover per-step.
	want := g.Tensors["loss"].Float32s()
	for i := range want {
		k := i % 2
		got := losses[i]
		if k == 1 {
			got = 2*losses[i] - losses[i-1]
		}
		if math.Abs(got-float64(want[i])) > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
			t.Errorf("step %d loss %.6f, torch %.6f", i+1, got, want[i])
		}
	}
	final := map[string][]float32{HeadWeight: res.Head, HeadSigma: {res.Sigma}}
	for name, p := range res.Params {
		final[name] = p.Data
	}
	worst := 0.0
	for name, v := range final {
		ref := g.Tensors["final."+name].Float32s()
		scale := 0.0
		for _, x := range ref {
			scale = math.Max(scale, math.Abs(float64(x)))
		}
		for i := range ref {
			rel := math.Abs(float64(v[i]-ref[i])) / math.Max(scale, 1e-6)
			worst = math.Max(worst, rel)
			if rel > 1e-4 {
				t.Fatalf("%s[%d] = %g, torch %g (error %.2g of the tensor's largest value)", name, i, v[i], ref[i], rel)
			}
		}
		// the parameters moved: the comparison is not of two initial values
		moved := false
		for i, x := range g.Tensors["init."+name].Float32s() {
			if x != ref[i] {
				moved = true
			}
		}
		if !moved {
			t.Fatalf("%s did not change in the torch run", name)
		}
	}
	t.Logf("4 steps, final parameters within %.2g (relative to each tensor's largest value) of torch", worst)
}
