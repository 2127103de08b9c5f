package learners

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/tune"
)

// headOnlyTol is the agreement asserted between a head-only stage (the
// head's gradient in Go, float64, on the forward graph's features) and the
// graph path (ONNX Runtime's float32 gradient of the training graph):
// absolute on the head's values, the logged losses and the scores.
const headOnlyTol = 1e-4

// sixPatterns is patterns() with two more classes, the inverted images of
// classes 0 and 1 (labels 4 and 5), for three stages of two classes.
func sixPatterns(n int, seed uint64) *tune.Dataset {
	d := patterns(n, seed)
	d.Classes = append(d.Classes, "h-inverted", "v-inverted")
	d.Native = append(d.Native, 4, 5)
	for i := range len(d.Samples) {
		if y := d.Labels[i]; y < 2 {
			r := *d.Samples[i].Raw
			r.Pix = append([]uint8(nil), r.Pix...)
			for j, v := range r.Pix {
				r.Pix[j] = 255 - v
			}
			d.Samples = append(d.Samples, data.Sample{Raw: &r})
			d.Labels = append(d.Labels, y+4)
			d.IDs = append(d.IDs, d.IDs[i]+"-inverted")
		}
	}
	return d
}

// threeStages cuts sixPatterns() into stages {0,1}, {2,3}, {4,5}.
func threeStages(n int, seed uint64) []Stage {
	d := sixPatterns(n, seed)
	var out []Stage
	for t := 0; t < 3; t++ {
		var rows []int
		for i, y := range d.Labels {
			if y/2 == t {
				rows = append(rows, i)
			}
		}
		img := d.Subset(rows)
		out = append(out, Stage{Index: t, Classes: []int{2 * t, 2*t + 1}, Names: d.Classes, Images: img, Labels: img.Labels, IDs: img.IDs})
	}
	return out
}

// epochLog collects the per-epoch lines a learner logs: "stage s epoch e"
// → the logged loss and training accuracy.
type epochLog struct {
	mu    sync.Mutex
	lines map[string][2]float64
}

var epochLine = regexp.MustCompile(`stage (\d+) epoch (\d+)/\d+: loss ([-0-9.]+), train accuracy ([0-9.]+)%`)

func (e *epochLog) log(format string, args ...any) {
	m := epochLine.FindStringSubmatch(fmt.Sprintf(format, args...))
	if m == nil {
		return
	}
	loss, _ := strconv.ParseFloat(m[3], 64)
	acc, _ := strconv.ParseFloat(m[4], 64)
	e.mu.Lock()
	e.lines["stage "+m[1]+" epoch "+m[2]] = [2]float64{loss, acc}
	e.mu.Unlock()
}

func maxAbsDiff32(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestL2PHeadOnly on the tiny ViT over three stages, head-only=auto (the
// default) against head-only=off, with and without the alignment: stage 1
// trains the prompts in both (bit-identical learners) and freezes the
// whole pool; stages 2 and 3 then take the head-only path with auto only,
// and agree with the graph path within headOnlyTol on the head, the epoch
// losses (EpochLoss and the logged lines, whose training accuracy is
// equal) and the test scores; prompts and keys stay bit-identical to
// stage 1's in both; old head columns are untouched (align=none); the
// statistics recorded from the cached features are those of featuresOf.
func TestL2PHeadOnly(t *testing.T) {
	ctx := context.Background()
	stages := threeStages(6, 11)
	test := sixPatterns(3, 9)
	ev := Eval{Images: test, N: test.Len()}
	for _, align := range []string{AlignNone, AlignGaussian} {
		t.Run("align="+align, func(t *testing.T) {
			base := map[string]string{"pool": "3", "length": "2", "top-k": "2", "epochs": "2", "batch": "4",
				"align": align, "align-samples": "16", "align-steps": "20"}
			mk := func(mode string) (*L2P, *epochLog) {
				env := tinyEnv(t)
				lg := &epochLog{lines: map[string][2]float64{}}
				env.Log = lg.log
				o := map[string]string{}
				for k, v := range base {
					o[k] = v
				}
				if mode != "" {
					o["head-only"] = mode
				}
				l, err := NewL2P(env, o)
				if err != nil {
					t.Fatal(err)
				}
				return l, lg
			}
			a, la := mk("") // the default: auto
			defer a.Close()
			b, lb := mk(HeadOnlyOff)
			defer b.Close()
			if a.opt.HeadOnly != HeadOnlyAuto {
				t.Fatalf("default head-only = %q", a.opt.HeadOnly)
			}
			var p1, k1, w1 []float32
			for si, s := range stages {
				prev := append([]float32(nil), b.HeadW...)
				for _, l := range []*L2P{a, b} {
					if err := l.Learn(ctx, s); err != nil {
						t.Fatal(err)
					}
				}
				if a.headOnlyRan != (si > 0) || b.headOnlyRan {
					t.Fatalf("stage %d: head-only ran: auto %v, off %v (frozen rows %v of %d)", si+1, a.headOnlyRan, b.headOnlyRan, a.frozen, a.opt.Pool)
				}
				if si == 0 {
					if len(a.frozen) != a.opt.Pool {
						t.Fatalf("stage 1 froze rows %v of %d: the test needs the whole pool frozen", a.frozen, a.opt.Pool)
					}
					for _, pair := range [][2][]float32{{a.Prompts, b.Prompts}, {a.Keys, b.Keys}, {a.HeadW, b.HeadW}, {a.HeadB, b.HeadB}} {
						if !sameBits(pair[0], pair[1]) {
							t.Fatalf("stage 1 differs between head-only=auto and off (both train the prompts)")
						}
					}
					p1, k1 = append([]float32(nil), a.Prompts...), append([]float32(nil), a.Keys...)
					w1 = append([]float32(nil), a.HeadW...)
					continue
				}
				for name, l := range map[string]*L2P{"auto": a, "off": b} {
					if !sameBits(l.Prompts, p1) || !sameBits(l.Keys, k1) {
						t.Fatalf("stage %d, head-only=%s: frozen prompts or keys changed", si+1, name)
					}
				}
				dw, db := maxAbsDiff32(a.HeadW, b.HeadW), maxAbsDiff32(a.HeadB, b.HeadB)
				var dl float64
				for e := range b.EpochLoss {
					dl = math.Max(dl, math.Abs(a.EpochLoss[e]-b.EpochLoss[e]))
				}
				if len(a.EpochLoss) != len(b.EpochLoss) || dw > headOnlyTol || db > headOnlyTol || dl > headOnlyTol {
					t.Fatalf("stage %d: head-only vs graph path: head weight %.3g, bias %.3g, epoch losses %v vs %v (%.3g)", si+1, dw, db, a.EpochLoss, b.EpochLoss, dl)
				}
				if moved := maxAbsDiff32(b.HeadW, prev); moved < 10*headOnlyTol {
					t.Fatalf("stage %d: the head moved by %.3g only: the comparison would say nothing", si+1, moved)
				}
				if align == AlignNone {
					C := a.classes()
					for i := 0; i < a.pe.w.Width; i++ {
						for _, c := range stages[0].Classes {
							if math.Float32bits(a.HeadW[i*C+c]) != math.Float32bits(w1[i*C+c]) {
								t.Fatalf("stage %d: old class %d's head column changed", si+1, c)
							}
						}
					}
				} else {
					// The statistics come from the cached features: those
					// of featuresOf under the (frozen) prompts, bit for bit.
					W := a.pe.w.Width
					f, err := a.featuresOf(ctx, s.Images, nil, 0)
					if err != nil {
						t.Fatal(err)
					}
					for _, c := range s.Classes {
						m, _ := gaussianStats(gatherRows(f, W, labelRows(s.Images.Labels, c)), W)
						for j := 0; j < W; j++ {
							if float32(m[j]) != a.AlignMean[c*W+j] {
								t.Fatalf("stage %d: class %d's recorded mean is not that of its features", si+1, c)
							}
						}
					}
				}
				sa, _, err := a.Scores(ctx, ev)
				if err != nil {
					t.Fatal(err)
				}
				sb, _, _ := b.Scores(ctx, ev)
				var ds float64
				for i := range sa {
					ds = math.Max(ds, math.Abs(sa[i]-sb[i]))
				}
				if ds > headOnlyTol {
					t.Fatalf("stage %d: scores differ by %.3g", si+1, ds)
				}
				t.Logf("stage %d: |Δ| head weight %.2g, bias %.2g, epoch loss %.2g, scores %.2g", si+1, dw, db, dl, ds)
			}
			if len(la.lines) != 3*2 || len(lb.lines) != len(la.lines) {
				t.Fatalf("epoch lines logged: %d and %d, want 6", len(la.lines), len(lb.lines))
			}
			for k, v := range lb.lines {
				if math.Abs(la.lines[k][0]-v[0]) > headOnlyTol+1e-4 || la.lines[k][1] != v[1] { // 4 decimals logged
					t.Fatalf("%s: logged loss/accuracy %v (head-only) vs %v (graph path)", k, la.lines[k], v)
				}
			}
		})
	}
}

// TestL2PHeadOnlyWhen: the head-only path is taken only with head-only=auto,
// freeze=used, every pool row frozen, per-sample selection in training and
// no augmentation; a learner file written before the option existed loads
// as head-only=off.
func TestL2PHeadOnlyWhen(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := threeStages(4, 11)
	o := map[string]string{"pool": "3", "length": "1", "top-k": "2", "epochs": "1", "batch": "8", "align": AlignNone}
	l, err := NewL2P(env, o)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	plan := epochPlan{Epochs: 1, Batch: 8}
	if l.headOnly(plan) {
		t.Fatalf("head-only before any row is frozen")
	}
	if err := l.Learn(ctx, stages[0]); err != nil {
		t.Fatal(err)
	}
	if len(l.frozen) != 3 || !l.headOnly(plan) {
		t.Fatalf("frozen %v: head-only %v", l.frozen, l.headOnly(plan))
	}
	if l.headOnly(epochPlan{Epochs: 1, Batch: 8, Transform: tune.AugmentTransform{}}) {
		t.Fatalf("head-only with an augmentation")
	}
	all := l.frozen
	l.frozen = []int{0, 2}
	if l.headOnly(plan) {
		t.Fatalf("head-only with rows %v of 3 frozen", l.frozen)
	}
	l.frozen = all
	for _, c := range []struct{ key, val string }{{"train-select", SelectBatchVote}, {"head-only", HeadOnlyOff}} {
		saved := l.opt
		switch c.key {
		case "train-select":
			l.opt.TrainSelect = c.val
		case "head-only":
			l.opt.HeadOnly = c.val
		}
		if l.headOnly(plan) {
			t.Fatalf("head-only with %s=%s", c.key, c.val)
		}
		l.opt = saved
	}
	// A learner whose stage 1 left a row free trains stage 2 on the graph
	// path (and freezes the rest).
	part, err := NewL2P(env, map[string]string{"pool": "8", "length": "1", "top-k": "1", "epochs": "1", "batch": "8", "align": AlignNone})
	if err != nil {
		t.Fatal(err)
	}
	defer part.Close()
	if err := part.Learn(ctx, stages[0]); err != nil {
		t.Fatal(err)
	}
	if len(part.frozen) == 8 {
		t.Fatalf("stage 1 froze the whole pool of 8 with top-k 1: pick other images")
	}
	if err := part.Learn(ctx, stages[1]); err != nil {
		t.Fatal(err)
	}
	if part.headOnlyRan {
		t.Fatalf("head-only with rows %v of 8 frozen", part.frozen)
	}
	// batch-vote in training: the graph path even with the pool frozen.
	bv, err := NewL2P(env, map[string]string{"pool": "2", "length": "1", "top-k": "2", "epochs": "1", "batch": "8", "align": AlignNone, "train-select": SelectBatchVote})
	if err != nil {
		t.Fatal(err)
	}
	defer bv.Close()
	for _, s := range stages[:2] {
		if err := bv.Learn(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if len(bv.frozen) != 2 || bv.headOnlyRan {
		t.Fatalf("batch-vote: frozen %v, head-only ran %v", bv.frozen, bv.headOnlyRan)
	}
	// A file without the option loads as head-only=off.
	dir := t.TempDir()
	p := filepath.Join(dir, "l.safetensors")
	if err := l.Save(p); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.safetensors")
	writeOlderFile(t, p, old, func(_, opts map[string]any) {
		if opts["HeadOnly"] != HeadOnlyAuto {
			t.Fatalf("saved options %v", opts)
		}
		delete(opts, "HeadOnly")
	})
	ol, err := LoadL2P(env, old)
	if err != nil {
		t.Fatal(err)
	}
	defer ol.Close()
	if ol.opt.HeadOnly != HeadOnlyOff || ol.headOnly(plan) {
		t.Fatalf("an old file loads with head-only=%q", ol.opt.HeadOnly)
	}
	if _, err := NewL2P(env, map[string]string{"head-only": "on"}); err == nil {
		t.Fatalf("head-only=on accepted")
	}
}

// TestL2PHeadOnlyResume: within the head-only path, a learner loaded from
// its file after stage 1 or after stage 2 learns the next stages to the
// same bytes as one that never stopped.
func TestL2PHeadOnlyResume(t *testing.T) {
	env := tinyEnv(t)
	ctx := context.Background()
	stages := threeStages(4, 11)
	o := map[string]string{"pool": "3", "length": "1", "top-k": "2", "epochs": "2", "batch": "4", "align-samples": "16", "align-steps": "20"}
	a, err := NewL2P(env, o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	dir := t.TempDir()
	var files []string
	for si, s := range stages {
		if err := a.Learn(ctx, s); err != nil {
			t.Fatal(err)
		}
		if a.headOnlyRan != (si > 0) {
			t.Fatalf("stage %d: head-only ran %v (frozen %v)", si+1, a.headOnlyRan, a.frozen)
		}
		p := filepath.Join(dir, fmt.Sprintf("a%d.safetensors", si+1))
		if err := a.Save(p); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	want, _ := os.ReadFile(files[2])
	for from := 1; from <= 2; from++ {
		b, err := LoadL2P(env, files[from-1])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stages[from:] {
			if err := b.Learn(ctx, s); err != nil {
				t.Fatal(err)
			}
			if !b.headOnlyRan {
				t.Fatalf("loaded after stage %d: stage %d did not run head-only", from, s.Index+1)
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("b%d.safetensors", from))
		if err := b.Save(p); err != nil {
			t.Fatal(err)
		}
		b.Close()
		got, _ := os.ReadFile(p)
		if string(got) != string(want) {
			t.Fatalf("loaded after stage %d: the file after stage 3 differs from the uninterrupted learner's", from)
		}
	}
}
