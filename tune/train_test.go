package tune

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/internal/testenv/orttest"
	"github.com/cl-dev/cl/models"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
)

const tinyWeights = "../models/vit/testdata/vit.safetensors"

// needORT is orttest.Need: ONNX Runtime or skip (fail under CI=true).
func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

// stripes makes a dataset of 32×32 grey images of two classes: horizontal
// or vertical stripes with random phase and noise — learnable, not trivial
// for a random-weight ViT's frozen features.
func stripes(n int, seed uint64) *Dataset {
	r := rand.New(rand.NewPCG(seed, 1))
	d := &Dataset{Classes: []string{"horizontal", "vertical"}, Native: []int{0, 1}}
	for i := 0; i < n; i++ {
		y := i % 2
		pix := make([]uint8, 32*32)
		phase := r.IntN(8)
		for yy := 0; yy < 32; yy++ {
			for xx := 0; xx < 32; xx++ {
				c := yy
				if y == 1 {
					c = xx
				}
				v := 40.0
				if (c+phase)/4%2 == 0 {
					v = 200
				}
				v += r.NormFloat64() * 20
				pix[yy*32+xx] = uint8(math.Max(0, math.Min(255, v)))
			}
		}
		d.Samples = append(d.Samples, data.Sample{Raw: &data.Raw{W: 32, H: 32, C: 1, Pix: pix}})
		d.Labels = append(d.Labels, y)
		d.IDs = append(d.IDs, "s"+string(rune('a'+i%26)))
	}
	return d
}

func tinySetup(t *testing.T) (*vit.Weights, Transform) {
	needORT(t)
	w, err := vit.Load(tinyWeights, 3)
	if err != nil {
		t.Fatal(err)
	}
	pp, err := imageproc.NewPreprocessor(models.ForImageSize(w.Image))
	if err != nil {
		t.Fatal(err)
	}
	return w, EvalTransform{P: pp}
}

func TestTrainAdapterLearnsAndResumes(t *testing.T) {
	w, tf := tinySetup(t)
	train, held := stripes(64, 1), stripes(32, 2)
	rec := SmallDataRecipe
	rec.Epochs, rec.MinSteps, rec.Batch, rec.LR = 4, 0, 16, 0.05
	m, _ := Lookup("aper-adapter")
	m.Bottleneck = 8
	ck := filepath.Join(t.TempDir(), "ck.safetensors")
	cfg := Config{Method: m, Recipe: rec, Seed: 7, Train: tf, Eval: tf, Session: ort.SessionOptions{Threads: 1}, Workers: 2, Checkpoint: ck, Fingerprint: "tiny"}
	res, err := Train(context.Background(), w, train, held, cfg)
	if err != nil {
		t.Fatal(err)
	}
	first, last := res.History[0], res.History[len(res.History)-1]
	t.Logf("epochs %d steps %d: train loss %.4f → %.4f, held-out acc %.1f → %.1f", res.Epochs, res.Steps, first.TrainLoss, last.TrainLoss, first.HeldAcc, last.HeldAcc)
	if !(last.TrainLoss < first.TrainLoss) {
		t.Fatalf("training loss did not fall: %.4f → %.4f", first.TrainLoss, last.TrainLoss)
	}
	if res.Steps != 4*4 {
		t.Fatalf("steps %d, want 16", res.Steps)
	}
	up := res.Params["adapter_up_w"].Data
	nonzero := 0
	for _, v := range up {
		if v != 0 {
			nonzero++
		}
	}
	if nonzero == 0 {
		t.Fatal("the adapters' up weights never moved from zero")
	}

	// Resume: a run cancelled in epoch 3 and resumed from its checkpoint
	// (written after epoch 2) ends with the same parameters, bit for bit.
	ck2 := filepath.Join(t.TempDir(), "ck2.safetensors")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg2 := cfg
	cfg2.Checkpoint = ck2
	cfg2.Progress = func(p Progress) {
		if p.EpochDone && p.Epoch == 2 {
			cancel()
		}
	}
	if _, err := Train(ctx, w, train, held, cfg2); err == nil {
		t.Fatal("the cancelled run returned no error")
	}
	cfg3 := cfg
	cfg3.Checkpoint, cfg3.Resume = ck2, true
	res3, err := Train(context.Background(), w, train, held, cfg3)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range res.Params {
		q := res3.Params[name].Data
		for i := range p.Data {
			if p.Data[i] != q[i] {
				t.Fatalf("%s[%d]: uninterrupted %g, resumed %g", name, i, p.Data[i], q[i])
			}
		}
	}
	if res3.Sigma != res.Sigma || len(res3.History) != 4 {
		t.Fatalf("resumed: sigma %g vs %g, %d epochs of history", res3.Sigma, res.Sigma, len(res3.History))
	}

	// Stopped in the middle of epoch 3 (after step 10 of 16): the checkpoint
	// holds that state and a resume continues at step 11, bit for bit.
	ck3 := filepath.Join(t.TempDir(), "ck3.safetensors")
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	cfgMid := cfg
	cfgMid.Checkpoint = ck3
	cfgMid.Progress = func(p Progress) {
		if !p.EpochDone && p.Step == 10 {
			cancel3()
		}
	}
	if _, err := Train(ctx3, w, train, held, cfgMid); err == nil || !strings.Contains(err.Error(), "step 2 of epoch 3") {
		t.Fatalf("mid-epoch stop: %v", err)
	}
	cfgMid.Progress, cfgMid.Resume = nil, true
	resMid, err := Train(context.Background(), w, train, held, cfgMid)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range res.Params {
		q := resMid.Params[name].Data
		for i := range p.Data {
			if p.Data[i] != q[i] {
				t.Fatalf("%s[%d]: uninterrupted %g, resumed mid-epoch %g", name, i, p.Data[i], q[i])
			}
		}
	}

	// A rerun writes the same checkpoint bytes.
	ck4 := filepath.Join(t.TempDir(), "ck4.safetensors")
	cfg5 := cfg
	cfg5.Checkpoint = ck4
	if _, err := Train(context.Background(), w, train, held, cfg5); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(ck)
	b, _ := os.ReadFile(ck4)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("two runs wrote different checkpoints (%d and %d bytes)", len(a), len(b))
	}

	// A checkpoint of another method is refused.
	cfg4 := cfg3
	cfg4.Method, _ = Lookup("aper-ssf")
	if _, err := Train(context.Background(), w, train, held, cfg4); err == nil {
		t.Fatal("a checkpoint of aper-adapter resumed an aper-ssf run")
	} else {
		t.Logf("other method: %v", err)
	}
}
