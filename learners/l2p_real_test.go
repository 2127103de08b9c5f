package learners

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/protocol"
	"github.com/cl-dev/cl/tune"
	"github.com/cl-dev/cl/tune/optim"
)

// testSelector is a learner whose test-time selection can be switched
// between SelectPerSample and SelectBatchVote after training.
type testSelector interface {
	SetTestSelect(mode string)
}

// TestPromptsRealData runs the prompt learners on the real ViT-Ti/16 and
// Fashion-MNIST, class order seed 1993, B0 Inc2, scoring each trained state
// with per-sample and batch-vote selection, beside SimpleCIL on the same
// frozen features. It is a measurement, not a check: it runs only when
// CL_PROMPTS_REAL names the methods (comma-separated, each optionally
// "method:key=value:key=value"), e.g.
//
//	CL_PROMPTS_REAL='l2p,l2p:train-select=batch-vote' CL_PROMPTS_PER_CLASS=60 CL_PROMPTS_TEST_PER_CLASS=40 \
//	  go test ./learners/ -run TestPromptsRealData -v -timeout 0
//
// CL_PROMPTS_TEST_SELECT (e.g. "per-sample") limits the test selections
// scored (DualPrompt: also with ",match=all"). A learner with
// align=gaussian (l2p, dualprompt, coda-prompt) is also scored with its
// unaligned head, the head as training left each stage's columns (same
// prompts, same features; rows "…,unaligned-head"), and after the last
// stage by alignDiagnostic. It needs ../shared/data/vit-tiny-augreg and /usr/share/datasets/fashion-mnist.
func TestPromptsRealData(t *testing.T) {
	spec := os.Getenv("CL_PROMPTS_REAL")
	if spec == "" {
		t.Skip("set CL_PROMPTS_REAL=l2p,... to run the real-data measurement (docs/RESULTS.md)")
	}
	needORT(t)
	wpath := "../../shared/data/vit-tiny-augreg/model.safetensors"
	raw, err := os.ReadFile(wpath)
	if err != nil {
		t.Skipf("%v (the ViT-Ti/16 AugReg checkpoint, timm's vit_tiny_patch16_224.augreg_in21k_ft_in1k as safetensors)", err)
	}
	sum := sha256.Sum256(raw)
	w, err := vit.Parse(wpath, raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	perClass, _ := strconv.Atoi(envOr("CL_PROMPTS_PER_CLASS", "60"))
	testPerClass, _ := strconv.Atoi(envOr("CL_PROMPTS_TEST_PER_CLASS", "40"))
	threads, _ := strconv.Atoi(envOr("CL_PROMPTS_THREADS", "2"))
	F := "/usr/share/datasets/fashion-mnist/"
	names := "../testdata/fashion-mnist-classes.txt"
	ctx := context.Background()
	load := func(img, lab string, limit int) *tune.Dataset {
		src, err := data.Open("idx:" + F + img + "," + F + lab + "," + names)
		if err != nil {
			t.Skip(err)
		}
		defer src.Close()
		all := make([]int, len(src.Classes()))
		for i := range all {
			all[i] = i
		}
		d, err := tune.LoadClasses(ctx, src, all, limit)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	train := load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", perClass)
	test := load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", testPerClass)
	env := Env{Weights: w, WeightsSHA256: hex.EncodeToString(sum[:]), Session: ort.SessionOptions{Threads: threads}, Workers: 2, Seed: 1, Log: t.Logf}

	// Frozen features (queries and SimpleCIL), cached across runs.
	feats := func(d *tune.Dataset, tag string) []float32 {
		cache := filepath.Join(os.TempDir(), fmt.Sprintf("cl-prompts-%s-%d.safetensors", tag, d.Len()))
		if f, err := safetensors.ReadFile(cache); err == nil {
			return f.Tensors["features"].Float32s()
		}
		m, _ := vit.Build(w, vit.Options{})
		b, _ := proto.Marshal(m)
		bb, err := ort.OpenData("vit-ti", b, ort.Options{Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		defer bb.Close()
		x, err := Extract(ctx, bb, d, 2)
		if err != nil {
			t.Fatal(err)
		}
		f := safetensors.New()
		f.Tensors["features"] = safetensors.FromFloat32s([]int64{int64(d.Len()), int64(w.Width)}, x)
		_ = f.WriteFile(cache)
		return x
	}
	t0 := time.Now()
	trainF, testF := feats(train, "train"), feats(test, "test")
	t.Logf("frozen features: %d train + %d test images, %.0f s", train.Len(), test.Len(), time.Since(t0).Seconds())

	order, _ := protocol.ClassOrder(10, 1993, true)
	split, _ := protocol.NewSplit(order, 0, 2)
	B := split.Stages()
	gl := func(d *tune.Dataset) []int {
		g := make([]int, d.Len())
		for i, y := range d.Labels {
			g[i] = split.Label(d.Native[y])
		}
		return g
	}
	trainG, testG := gl(train), gl(test)
	cls := make([]string, 10)
	for k, c := range order {
		cls[k] = train.Classes[c]
	}
	total := make([]int, B)
	for _, k := range testG {
		total[split.Stage(k)]++
	}
	methods := append([]string{"simplecil"}, strings.Split(spec, ",")...)
	for _, m := range methods {
		parts := strings.Split(m, ":")
		o := map[string]string{}
		for _, kv := range parts[1:] {
			k, v, _ := strings.Cut(kv, "=")
			o[k] = v
		}
		modes := []string{""}
		var l Learner
		if parts[0] == "simplecil" {
			sp, _ := Lookup("simplecil")
			if l, err = sp.New(env, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			sp, err := Lookup(parts[0])
			if err != nil {
				t.Fatal(err)
			}
			if l, err = sp.New(env, o); err != nil {
				t.Fatal(err)
			}
			if _, ok := l.(testSelector); ok {
				modes = []string{SelectPerSample, SelectBatchVote}
				if v := os.Getenv("CL_PROMPTS_TEST_SELECT"); v != "" {
					modes = strings.Split(v, ",")
				}
			}
			if _, ok := l.(*DualPrompt); ok {
				modes = []string{SelectPerSample, SelectBatchVote, SelectPerSample + ",match=all", SelectBatchVote + ",match=all"}
				if v := os.Getenv("CL_PROMPTS_TEST_SELECT"); v != "" {
					modes = strings.Split(v, ",")
				}
			}
		}
		// An aligned learner is also scored with the head as training left
		// it (the prompts are the same either way, prompt_align.go): rawW,
		// rawB hold each stage's columns before the alignment, and both
		// heads read the same test features.
		aligned, _ := l.(headAligner)
		if aligned != nil && aligned.alignOptions().Align != AlignGaussian {
			aligned = nil
		}
		var rawW, rawB []float32
		allModes := modes
		if aligned != nil {
			for _, md := range modes {
				allModes = append(allModes, unalignedRow(md))
			}
		}
		correct := map[string][][]int{}
		for _, md := range allModes {
			correct[md] = make([][]int, B)
			for i := range correct[md] {
				correct[md][i] = make([]int, B)
			}
		}
		var trainSec, testSec float64
		var learned []Stage
		for st := 0; st < B; st++ {
			lo, hi := split.Range(st)
			var rows []int
			for i, k := range trainG {
				if k >= lo && k < hi {
					rows = append(rows, i)
				}
			}
			img := train.Subset(rows)
			img.Labels = make([]int, len(rows))
			for j, r := range rows {
				img.Labels[j] = trainG[r]
			}
			img.Classes, img.Native = cls, order
			s := Stage{Index: st, Names: cls, Images: img, Labels: img.Labels, IDs: img.IDs, Dim: w.Width, Features: gatherRows(trainF, w.Width, rows)}
			for k := lo; k < hi; k++ {
				s.Classes = append(s.Classes, k)
			}
			t1 := time.Now()
			if aligned != nil {
				// Learn's steps, with the head copied before the alignment.
				aligned.setAlign(AlignNone)
				err := l.Learn(ctx, s)
				aligned.setAlign(AlignGaussian)
				if err != nil {
					t.Fatal(err)
				}
				b := aligned.base()
				if rawW == nil {
					rawW, rawB = make([]float32, len(b.HeadW)), make([]float32, len(b.HeadB))
				}
				C := len(rawB)
				for _, c := range s.Classes {
					rawB[c] = b.HeadB[c]
					for i := 0; i < w.Width; i++ {
						rawW[i*C+c] = b.HeadW[i*C+c]
					}
				}
				if err := aligned.alignStage(ctx, s); err != nil {
					t.Fatal(err)
				}
			} else if err := l.Learn(ctx, s); err != nil {
				t.Fatal(err)
			}
			trainSec += time.Since(t1).Seconds()
			learned = append(learned, s)
			// Score only the test rows of the classes seen so far.
			var trows []int
			for i, k := range testG {
				if k < hi {
					trows = append(trows, i)
				}
			}
			ev := test.Subset(trows)
			for _, md := range modes {
				if ts, ok := l.(testSelector); ok {
					sel, match, _ := strings.Cut(md, ",match=")
					ts.SetTestSelect(sel)
					if dp, ok := l.(*DualPrompt); ok {
						dp.opt.Match = "trained"
						if match != "" {
							dp.opt.Match = match
						}
					}
				}
				t2 := time.Now()
				count := func(md string, sc []float64, cols []int) {
					for j, i := range trows {
						if cols[argmax(sc[j*len(cols):(j+1)*len(cols)])] == testG[i] {
							correct[md][split.Stage(testG[i])][st]++
						}
					}
				}
				if aligned != nil {
					// Scores of both heads from the features Scores reads.
					f, err := aligned.testFeatures(ctx, ev, gatherRows(testF, w.Width, trows), w.Width)
					if err != nil {
						t.Fatal(err)
					}
					b := aligned.base()
					cols := pSortedInts(b.seen)
					C := b.classes()
					count(md, appendLinearScores(nil, f, w.Width, b.HeadW, b.HeadB, C, cols), cols)
					count(unalignedRow(md), appendLinearScores(nil, f, w.Width, rawW, rawB, C, cols), cols)
				} else {
					sc, cols, err := l.Scores(ctx, Eval{Images: ev, Features: gatherRows(testF, w.Width, trows), Dim: w.Width, N: len(trows)})
					if err != nil {
						t.Fatal(err)
					}
					count(md, sc, cols)
				}
				testSec += time.Since(t2).Seconds()
				if sl, ok := l.(interface {
					Selections(context.Context, Eval) ([][]int, error)
				}); ok {
					sel, _ := sl.Selections(ctx, Eval{Images: ev, Features: gatherRows(testF, w.Width, trows), Dim: w.Width, N: len(trows)})
					t.Logf("%s [%s] stage %d: test selections %s", m, md, st+1, selectionSummary(sel))
				}
			}
		}
		for _, md := range allModes {
			r := protocol.ComputeMetrics(correct[md], total)
			t.Logf("RESULT %-40s test-select=%-10s Ā %.2f  A_B %.2f  F %.2f  curve %v  final-per-stage %v  train %.0f s, test %.0f s",
				m, md, r.AvgAccuracy, r.LastAccuracy, r.Forgetting, r.CurveRounded, newAcc(r), trainSec, testSec)
		}
		if aligned != nil {
			alignDiagnostic(t, l, learned, test, testF, testG, split.Stage)
		}
	}
	_ = heads.Lookup
}

// unalignedRow names the scoring of test selection md with the unaligned
// head.
func unalignedRow(md string) string {
	if md == "" {
		return "unaligned-head"
	}
	return md + ",unaligned-head"
}

// alignDiagnostic separates the two causes of an aligned learner's
// remaining forgetting after its last stage: it records every class's
// statistics again from its training images (stages) under the final
// prompts, which a continual learner cannot do (the images are gone),
// re-fits the head on them and logs the final accuracy of each stage's
// test classes. The control re-fits on the stored statistics instead, from
// the same head and with the same random stream: the head fit does not
// converge on separable samples (its loss goes to 0), so another
// align-steps from the aligned head change the accuracy by themselves.
// What the re-recorded statistics gain over the control is the cost of the
// prompts' drift; what stays below SimpleCIL is the head's. The features
// are the test-time ones (per-sample selection, DualPrompt's E-prompt
// matched by key over the trained ones); for DualPrompt also the
// training-time ones (the final G-prompt with each stage's own E-prompt,
// as the statistics are recorded): what they gain is the G-prompt's drift
// alone. It changes l's head, statistics and test selection.
func alignDiagnostic(t *testing.T, l Learner, stages []Stage, test *tune.Dataset, testF []float32, testG []int, stageOf func(int) int) {
	ctx := context.Background()
	a := l.(headAligner)
	b := a.base()
	if ts, ok := l.(testSelector); ok {
		ts.SetTestSelect(SelectPerSample)
	}
	kinds := []string{"control: the stored statistics", "test-time features"}
	dp, _ := l.(*DualPrompt)
	if dp != nil {
		dp.opt.Match = "trained"
		kinds = append(kinds, "training-time features (own E-prompt forced)")
	}
	W := b.pe.w.Width
	f, err := a.testFeatures(ctx, test, testF, W)
	if err != nil {
		t.Fatal(err)
	}
	hw, hb := append([]float32(nil), b.HeadW...), append([]float32(nil), b.HeadB...)
	for ki, kind := range kinds {
		copy(b.HeadW, hw)
		copy(b.HeadB, hb)
		for k, s := range stages {
			var x []float32
			switch ki {
			case 0:
				continue
			case 1:
				x, err = a.testFeatures(ctx, s.Images, s.Features, s.Dim)
			default:
				x, err = dp.statFeatures(ctx, s.Images, s.Features, s.Dim, k)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := b.recordClassStats(s, x); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.refitHead(len(stages)-1, a.alignOptions()); err != nil {
			t.Fatal(err)
		}
		cols := pSortedInts(b.seen)
		sc := appendLinearScores(nil, f, W, b.HeadW, b.HeadB, b.classes(), cols)
		right, all := make([]int, len(stages)), make([]int, len(stages))
		var r, n int
		for i, y := range testG {
			k := stageOf(y)
			all[k]++
			n++
			if cols[argmax(sc[i*len(cols):(i+1)*len(cols)])] == y {
				right[k]++
				r++
			}
		}
		acc := make([]float64, len(stages))
		for k := range acc {
			acc[k] = protocol.RoundPILOT(100 * float64(right[k]) / float64(all[k]))
		}
		t.Logf("RESULT diagnostic %s: the aligned head re-fitted once more at the end (%s): A_B %.2f  final-per-stage %v", b.method, kind, protocol.RoundPILOT(100*float64(r)/float64(n)), acc)
	}
}

// selectionSummary counts the distinct selections and the most frequent.
func selectionSummary(sel [][]int) string {
	count := map[string]int{}
	for _, r := range sel {
		s := append([]int(nil), r...)
		sort.Ints(s)
		count[fmt.Sprint(s)]++
	}
	best, n := "", 0
	for k, v := range count {
		if v > n || (v == n && k < best) {
			best, n = k, v
		}
	}
	return fmt.Sprintf("%d distinct over %d images, most frequent %s × %d", len(count), len(sel), best, n)
}

func newAcc(m protocol.Metrics) []float64 {
	var out []float64
	for i := range m.AccuracyMatrix {
		out = append(out, protocol.RoundPILOT(m.AccuracyMatrix[i][len(m.AccuracyMatrix)-1]))
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestL2PSelectionDynamics replays L2P's key training on the real ViT-Ti's
// frozen Fashion-MNIST features, exactly: the keys' only gradient is the
// pull term, which depends on the queries and the selection alone, and
// Adam is elementwise, so the keys (and every selection, in training and
// at test) follow the same trajectory as in a full run with the same seed,
// batch and epochs, without running the prompted ViT. It reports, for
// per-sample and batch-vote selection in training, which pool rows each
// stage trains and which rows the test images select. Runs when
// CL_PROMPTS_REAL is set and the feature cache of TestPromptsRealData
// exists ($TMPDIR/cl-prompts-{train,test}-N.safetensors).
func TestL2PSelectionDynamics(t *testing.T) {
	if os.Getenv("CL_PROMPTS_REAL") == "" {
		t.Skip("set CL_PROMPTS_REAL (and run TestPromptsRealData first for the feature cache)")
	}
	perClass, _ := strconv.Atoi(envOr("CL_PROMPTS_PER_CLASS", "60"))
	testPerClass, _ := strconv.Atoi(envOr("CL_PROMPTS_TEST_PER_CLASS", "40"))
	read := func(tag string, n int) []float32 {
		f, err := safetensors.ReadFile(filepath.Join(os.TempDir(), fmt.Sprintf("cl-prompts-%s-%d.safetensors", tag, n)))
		if err != nil {
			t.Skip(err)
		}
		return f.Tensors["features"].Float32s()
	}
	const W = 192
	trainF, testF := read("train", 10*perClass), read("test", 10*testPerClass)
	// Labels: LoadClasses keeps source order and the first perClass of each
	// class; the labels are needed, so reload them from the source.
	F := "/usr/share/datasets/fashion-mnist/"
	lab := func(img, l string, limit int) []int {
		src, err := data.Open("idx:" + F + img + "," + F + l + ",../testdata/fashion-mnist-classes.txt")
		if err != nil {
			t.Skip(err)
		}
		defer src.Close()
		d, err := tune.LoadClasses(context.Background(), src, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, limit)
		if err != nil {
			t.Fatal(err)
		}
		return d.Labels
	}
	trainY := lab("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", perClass)
	testY := lab("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", testPerClass)
	order, _ := protocol.ClassOrder(10, 1993, true)
	split, _ := protocol.NewSplit(order, 0, 2)
	for _, mode := range []string{SelectPerSample, SelectBatchVote} {
		opt := l2pDefaults()
		pool, topk, batch, epochs := 10, 5, 16, 5
		rng := rand.New(rand.NewPCG(1, 0x6c3270)) // NewL2P's stream with Env.Seed 1
		_ = pUniform(rng, pool*5*W, -1, 1)        // prompts are drawn first
		keys := pUniform(rng, pool*W, -1, 1)
		_ = opt
		for st := 0; st < split.Stages(); st++ {
			lo, hi := split.Range(st)
			var rows []int
			for i, y := range trainY {
				if k := split.Label(y); k >= lo && k < hi {
					rows = append(rows, i)
				}
			}
			kp := &optim.Param{Name: "keys", Shape: []int64{int64(pool), W}, Data: keys}
			o, _ := optim.New(optim.AdamDefaults(optim.Adam), optim.Group{Params: []*optim.Param{kp}, LR: 0.001875})
			used := map[int]int{}
			seed := uint64(1) ^ uint64(st+1)*0x9e3779b97f4a7c15
			for e := 0; e < epochs; e++ {
				perm := tune.EpochOrder(len(rows), seed, e, true)
				for s := 0; s < len(perm); s += batch {
					var q []float32
					for _, j := range perm[s:min(s+batch, len(perm))] {
						q = append(q, trainF[rows[j]*W:(rows[j]+1)*W]...)
					}
					idx, _ := tune.CosineTopK(q, keys, W, topk)
					if mode == SelectBatchVote {
						idx = tune.VoteTopK(idx, topk)
					}
					for _, r := range idx {
						for _, j := range r {
							used[j]++
						}
					}
					_, g := tune.KeyPull(q, keys, W, idx)
					g32 := make([]float32, len(g))
					for i, v := range g {
						g32[i] = float32(-0.1 * v)
					}
					if _, err := o.Step(map[string][]float32{"keys": g32}); err != nil {
						t.Fatal(err)
					}
				}
			}
			t.Logf("train-select=%s stage %d: pool rows trained (row:selections) %v", mode, st+1, used)
		}
		for _, ts := range []string{SelectPerSample, SelectBatchVote} {
			var sel [][]int
			bs := len(testY)
			if ts == SelectBatchVote {
				bs = 16
			}
			for i := 0; i < len(testY); i += bs {
				idx, _ := tune.CosineTopK(testF[i*W:min(i+bs, len(testY))*W], keys, W, topk)
				if ts == SelectBatchVote {
					idx = tune.VoteTopK(idx, topk)
				}
				sel = append(sel, idx...)
			}
			t.Logf("train-select=%s test-select=%s: %s", mode, ts, selectionSummary(sel))
		}
	}
}
