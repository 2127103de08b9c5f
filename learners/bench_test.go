package learners

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/testenv/orttest"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/protocol"
	"github.com/cl-dev/cl/tune"
)

const tinyWeights = "../models/vit/testdata/vit.safetensors"

// needORT is orttest.Need: ONNX Runtime or skip (fail under CI=true).
func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

// patterns makes n grey 32×32 images per class of four texture classes
// (horizontal, vertical, diagonal stripes, checkerboard) with random phase
// and noise.
func patterns(n int, seed uint64) *tune.Dataset {
	r := rand.New(rand.NewPCG(seed, 3))
	d := &tune.Dataset{Classes: []string{"h", "v", "d", "c"}, Native: []int{0, 1, 2, 3}}
	for i := 0; i < 4*n; i++ {
		y := i % 4
		ph := r.IntN(8)
		pix := make([]uint8, 32*32)
		for yy := 0; yy < 32; yy++ {
			for xx := 0; xx < 32; xx++ {
				var on bool
				switch y {
				case 0:
					on = (yy+ph)/4%2 == 0
				case 1:
					on = (xx+ph)/4%2 == 0
				case 2:
					on = (xx+yy+ph)/4%2 == 0
				default:
					on = ((xx+ph)/4+(yy+ph)/4)%2 == 0
				}
				v := 50.0
				if on {
					v = 200
				}
				pix[yy*32+xx] = uint8(math.Max(0, math.Min(255, v+r.NormFloat64()*25)))
			}
		}
		d.Samples = append(d.Samples, data.Sample{Raw: &data.Raw{W: 32, H: 32, C: 1, Pix: pix}})
		d.Labels = append(d.Labels, y)
		d.IDs = append(d.IDs, string(rune('a'+i%26))+string(rune('a'+i/26%26)))
	}
	return d
}

func TestBenchFrozenAndAdapted(t *testing.T) {
	needORT(t)
	w, err := vit.Load(tinyWeights, 3)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := vit.Build(w, vit.Options{})
	pb, _ := proto.Marshal(plain)
	bb, err := ort.OpenData("tiny", pb, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	train, test := patterns(12, 1), patterns(8, 2)
	ctx := context.Background()
	d := BenchData{Train: train, Test: test, Dim: bb.Dim()}
	if d.TrainFeat, err = Extract(ctx, bb, train, 2); err != nil {
		t.Fatal(err)
	}
	if d.TestFeat, err = Extract(ctx, bb, test, 2); err != nil {
		t.Fatal(err)
	}
	order, _ := protocol.ClassOrder(4, 1993, true)
	split, _ := protocol.NewSplit(order, 0, 2)
	env := Env{Weights: w, WeightsSHA256: "tiny", Session: ort.SessionOptions{Threads: 1}, Workers: 2, Seed: 5, Log: t.Logf}
	small := map[string]string{"epochs": "3", "batch": "8", "augment": "none"}
	res, err := Bench(ctx, env, split, d, []BenchMethod{
		{Name: "simplecil"}, {Name: "aper-adapter", Options: small},
		{Name: "ranpac-phase1", Options: map[string]string{"epochs": "3", "batch": "8", "augment": "none", "M": "64"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Logf("%s: Ā %.2f A_B %.2f curve %v", r.Method, r.AvgAccuracy, r.LastAccuracy, r.Curve)
		if len(r.Curve) != 2 {
			t.Fatalf("%s: %d stages", r.Method, len(r.Curve))
		}
	}

	// SimpleCIL through the learner equals the head fitted directly.
	h := heads.NewSimpleCIL()
	g := make([]int, train.Len())
	for i, y := range train.Labels {
		g[i] = split.Label(y)
	}
	if err := h.Learn(d.TrainFeat, g); err != nil {
		t.Fatal(err)
	}
	if err := h.EndStage(); err != nil {
		t.Fatal(err)
	}
	s, _ := h.Scores(d.TestFeat)
	right := 0
	for i, y := range test.Labels {
		if h.Classes()[argmax(s[i*4:(i+1)*4])] == split.Label(y) {
			right++
		}
	}
	if want := 100 * float64(right) / float64(test.Len()); math.Abs(res[0].LastAccuracy-want) > 1e-9 {
		t.Fatalf("simplecil learner A_B %.4f, head fitted directly %.4f", res[0].LastAccuracy, want)
	}
	if res[0].LastAccuracy <= 40 {
		t.Fatalf("simplecil on texture classes: A_B %.2f, not above chance", res[0].LastAccuracy)
	}
}
