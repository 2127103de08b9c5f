package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/internal/safetensors"
	"github.com/cl-dev/cl/learners"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/models/vit"
	"github.com/cl-dev/cl/protocol"
	"github.com/cl-dev/cl/tune"
)

// textureFolder writes an ImageFolder of 32×32 grey PNGs in four classes
// (h, v: horizontal, vertical stripes; d: diagonal; c: checkerboard), n
// images each, random phase and noise from seed.
func textureFolder(t *testing.T, n int, seed uint64) string {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(seed, 4))
	for _, cls := range []string{"h", "v", "d", "c"} {
		os.MkdirAll(filepath.Join(dir, cls), 0o755)
		for i := 0; i < n; i++ {
			img := image.NewGray(image.Rect(0, 0, 32, 32))
			ph := r.IntN(8)
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					var on bool
					switch cls {
					case "h":
						on = (y+ph)/4%2 == 0
					case "v":
						on = (x+ph)/4%2 == 0
					case "d":
						on = (x+y+ph)/4%2 == 0
					default:
						on = ((x+ph)/4+(y+ph)/4)%2 == 0
					}
					v := 40 + r.IntN(30)
					if on {
						v = 190 + r.IntN(30)
					}
					img.SetGray(x, y, color.Gray{uint8(v)})
				}
			}
			var b bytes.Buffer
			png.Encode(&b, img)
			if err := os.WriteFile(filepath.Join(dir, cls, string(rune('a'+i))+".png"), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// tinyLearnerEnv is the environment cl fit builds for the tiny ViT with
// --heads 3 --threads 1 --train-seed 1.
func tinyLearnerEnv(t *testing.T) learners.Env {
	t.Helper()
	raw, err := os.ReadFile(tinyViTWeights)
	if err != nil {
		t.Fatal(err)
	}
	w, err := vit.Parse(tinyViTWeights, raw, 3)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return learners.Env{Weights: w, WeightsSHA256: hex.EncodeToString(sum[:]), Session: ort.SessionOptions{Threads: 1}, Workers: 2, Seed: 1}
}

// benchStages cuts every image of spec into the stages of cl bench (class
// order of seed 1993, 2 classes per stage), the way learners.Bench does:
// one data set in source order, rows of each stage, global labels.
func benchStages(t *testing.T, spec string) ([]learners.Stage, []string) {
	t.Helper()
	d, err := loadBenchImages(context.Background(), "--data", spec, 0)
	if err != nil {
		t.Fatal(err)
	}
	order, _ := protocol.ClassOrder(len(d.Classes), 1993, true)
	split, _ := protocol.NewSplit(order, 2, 2)
	names := make([]string, len(order))
	for k, c := range order {
		names[k] = d.Classes[c]
	}
	var out []learners.Stage
	for st := 0; st < split.Stages(); st++ {
		lo, hi := split.Range(st)
		var rows []int
		for i, y := range d.Labels {
			if k := split.Label(y); k >= lo && k < hi {
				rows = append(rows, i)
			}
		}
		img := d.Subset(rows)
		img.Labels = make([]int, len(rows))
		for j, r := range rows {
			img.Labels[j] = split.Label(d.Labels[r])
		}
		img.Classes, img.Native = names, nil
		s := learners.Stage{Index: st, Names: names, Images: img, Labels: img.Labels, IDs: img.IDs}
		for k := lo; k < hi; k++ {
			s.Classes = append(s.Classes, k)
		}
		out = append(out, s)
	}
	return out, names
}

// twoStageFixture is the data of the two-stage learner-file tests: folders
// of textures to train on (6 images a class) and to test on (3 a class),
// the environment cl fit builds for the tiny ViT, the two stages cl bench
// cuts from train (2 classes each), their class names in stage order, and
// the test images labelled with those classes' indices.
type twoStageFixture struct {
	train, test string
	env         learners.Env
	stages      []learners.Stage
	names       []string
	testSet     *tune.Dataset
}

func newTwoStageFixture(t *testing.T) twoStageFixture {
	t.Helper()
	fx := twoStageFixture{train: textureFolder(t, 6, 3), test: textureFolder(t, 3, 9), env: tinyLearnerEnv(t)}
	fx.stages, fx.names = benchStages(t, fx.train)
	testSet, err := loadBenchImages(context.Background(), "--test-data", fx.test, 0)
	if err != nil {
		t.Fatal(err)
	}
	global := map[string]int{}
	for k, n := range fx.names {
		global[n] = k
	}
	for i, y := range testSet.Labels {
		testSet.Labels[i] = global[testSet.Classes[y]]
	}
	testSet.Classes = fx.names
	fx.testSet = testSet
	return fx
}

// taughtDirectly is a method learner with the options of sets (cl fit's
// --set K=V), closed when the test ends, taught the fixture's two stages
// without cl fit.
func (fx twoStageFixture) taughtDirectly(t *testing.T, method string, sets []string) learners.Learner {
	t.Helper()
	spec, _ := learners.Lookup(method)
	opts := map[string]string{}
	for _, s := range sets {
		k, v, _ := strings.Cut(s, "=")
		opts[k] = v
	}
	ref, err := spec.New(fx.env, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { learners.Close(ref) })
	for _, s := range fx.stages {
		if err := ref.Learn(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return ref
}

// checkLearnerFile checks the learner file path that cl fit taught the
// fixture's two stages against ref, the method learner taught them
// directly: the file holds both stages and all four classes, scores the
// test images bit for bit as ref, and cl eval's accuracies and cl
// predict's top-2 are the ranking of those scores.
func (fx twoStageFixture) checkLearnerFile(t *testing.T, path, method string, ref learners.Learner) {
	t.Helper()
	ctx := context.Background()
	ev := learners.Eval{Images: fx.testSet, N: fx.testSet.Len()}
	want, wcols, err := ref.Scores(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	l, fi, err := learners.Open(fx.env, path)
	if err != nil {
		t.Fatal(err)
	}
	defer learners.Close(l)
	if fi.Method != method || fi.Stages != 2 || len(fi.Learned) != 4 || strings.Join(fi.Names, ",") != strings.Join(fx.names, ",") {
		t.Fatalf("file info %+v", fi)
	}
	got, cols, err := l.Scores(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(cols) != len(wcols) {
		t.Fatalf("%d scores for %v, direct %d for %v", len(got), cols, len(want), wcols)
	}
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("score %d: cl fit's learner %v, taught directly %v", i, got[i], want[i])
		}
	}
	// Reference ranking and accuracy from the direct scores.
	n, names := fx.testSet.Len(), fx.names
	top := rankScores(want, len(cols), 2)
	right := 0
	for i, y := range fx.testSet.Labels {
		if cols[top[2*i]] == y {
			right++
		}
	}
	rep := evalLearner(t, path, fx.test)
	if rep.Learner != path || rep.Method != method || rep.Rows != n || rep.K != 4 || rep.Top5 != 100 ||
		math.Abs(rep.Top1-100*float64(right)/float64(n)) > 1e-9 || len(rep.PerClass) != 4 {
		t.Fatalf("eval %+v; want top-1 %v", rep, 100*float64(right)/float64(n))
	}
	out, stderr, err := runCLErr("predict", "--learner", path, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--data", fx.test, "--top", "2")
	if err != nil {
		t.Fatalf("predict: %v\n%s", err, stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n+1 || strings.Join(recs[0], ",") != "row,id,label,pred_1,pred_2" {
		t.Fatalf("predict CSV header %v, %d rows", recs[0], len(recs))
	}
	for i, r := range recs[1:] {
		if r[1] != fx.testSet.IDs[i] || r[2] != names[fx.testSet.Labels[i]] || r[3] != names[cols[top[2*i]]] || r[4] != names[cols[top[2*i+1]]] {
			t.Fatalf("predict row %d: %v; want id %s label %s, top %s %s", i, r, fx.testSet.IDs[i], names[fx.testSet.Labels[i]], names[cols[top[2*i]]], names[cols[top[2*i+1]]])
		}
	}
}

// evalLearner runs cl eval --learner path --json on the images of the
// folder data (tiny ViT, 3 heads, 1 thread) and returns its report.
func evalLearner(t *testing.T, path, data string) EvalReport {
	t.Helper()
	out, stderr, err := runCLErr("eval", "--learner", path, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--data", data, "--json")
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	var rep EvalReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// otherCheckpoint writes dir/other.safetensors: the tiny ViT's tensors
// with other bytes in the file (and so another SHA-256).
func otherCheckpoint(t *testing.T, dir string) string {
	t.Helper()
	f, err := safetensors.ReadFile(tinyViTWeights)
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata["note"] = "another checkpoint"
	other := filepath.Join(dir, "other.safetensors")
	if err := f.WriteFile(other); err != nil {
		t.Fatal(err)
	}
	return other
}

// learnerScoresOf opens the learner file path and returns its file info
// and its scores (row-major, columns cols) of the image files, decoded by
// the learner itself: the reference of cl serve --learner.
func learnerScoresOf(t *testing.T, env learners.Env, path string, files []string) (learners.FileInfo, []float64, []int) {
	t.Helper()
	l, fi, err := learners.Open(env, path)
	if err != nil {
		t.Fatal(err)
	}
	defer learners.Close(l)
	src, err := data.OpenPaths(files)
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := loadAll(context.Background(), src)
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	want, cols, err := l.Scores(context.Background(), learners.Eval{Images: d, N: d.Len()})
	if err != nil {
		t.Fatal(err)
	}
	return fi, want, cols
}

// startServeLearner starts `cl serve --learner path` (tiny ViT, 3 heads,
// 1 thread) on a free port, stopped when the test ends, and returns its
// URL.
func startServeLearner(t *testing.T, path string) string {
	t.Helper()
	cmd := clProcess("serve", "--learner", path, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logb bytes.Buffer
	cmd.Stderr = &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("cl serve --learner did not start: %q %v\n%s", line, err, logb.String())
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
}

// servedPredictions is the reply of /v1/predict.
type servedPredictions struct {
	Predictions []struct {
		Name string
		Top  []struct {
			Class string
			Score float64
		}
	}
}

// predictServed posts the image files (named class/file) in one multipart
// request to url's /v1/predict?top=k and fails unless it answers 200 with
// one prediction per file.
func predictServed(t *testing.T, url string, files []string, k int) servedPredictions {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		w, _ := mw.CreateFormFile("image", filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f))
		b, _ := os.ReadFile(f)
		w.Write(b)
	}
	mw.Close()
	resp, err := httpc.Post(url+"/v1/predict?top="+strconv.Itoa(k), mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	var rep servedPredictions
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(rep.Predictions) != len(files) {
		t.Fatalf("serve predict: status %d, %v, %+v", resp.StatusCode, err, rep)
	}
	return rep
}

// TestFitLearnerStages: two stages of `cl fit --learner` from images (l2p
// and ease on the tiny ViT) give a learner file whose scores equal, bit for
// bit, those of the same learner taught the same two stages directly (as
// learners.Bench cuts them); cl eval's accuracies and cl predict's top-k
// are those scores' ranking; a third stage, a repeated class, another
// method, a head file and a learner from another backbone are refused
// naming the file.
func TestFitLearnerStages(t *testing.T) {
	needORTLib(t)
	fx := newTwoStageFixture(t)
	train, test, names := fx.train, fx.test, fx.names
	common := []string{"--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--data", train, "--inc", "2"}
	for _, c := range []struct {
		method string
		sets   []string
	}{
		{"l2p", []string{"pool=4", "length=2", "top-k=2", "epochs=1", "batch=8"}},
		{"ease", []string{"bottleneck=8", "epochs=1", "batch=8"}},
	} {
		t.Run(c.method, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), c.method+".safetensors")
			args := append([]string{"fit", "--method", c.method, "--learner", path}, common...)
			for _, s := range c.sets {
				args = append(args, "--set", s)
			}
			out, stderr, err := runCLErr(args...)
			if err != nil {
				t.Fatalf("stage 1: %v\n%s", err, stderr)
			}
			if !strings.Contains(out, "created "+path) || !strings.Contains(out, "stage 1") || !strings.Contains(stderr, "epoch 1/1") {
				t.Fatalf("stage 1: stdout %q\nstderr %q", out, stderr)
			}
			// --set once the file exists is a usage error.
			if _, _, err := runCLErr(append(args, "--set", "epochs=2")...); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "fixed when its file is created") {
				t.Fatalf("--set on an existing learner: %v", err)
			}
			top1 := func() float64 {
				t.Helper()
				return evalLearner(t, path, test).Top1
			}
			acc1 := top1()
			out2, stderr, err := runCLErr(append([]string{"fit", "--learner", path}, common...)...)
			if err != nil {
				t.Fatalf("stage 2: %v\n%s", err, stderr)
			}
			// cl bench on the same images, seeds and options: its accuracy
			// after each stage is cl eval's after each cl fit.
			bargs := []string{"bench", "--method", c.method, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--data", train,
				"--test-data", test, "--inc", "2", "--cache", "none", "--json"}
			for _, s := range c.sets {
				bargs = append(bargs, "--set", s)
			}
			out, stderr, err = runCLErr(bargs...)
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, stderr)
			}
			var br struct {
				Methods []struct {
					Curve []float64 `json:"curve"`
				} `json:"methods"`
			}
			if err := json.Unmarshal([]byte(out), &br); err != nil || len(br.Methods) != 1 || len(br.Methods[0].Curve) != 2 {
				t.Fatalf("bench JSON %v: %s", err, out)
			}
			if curve, acc2 := br.Methods[0].Curve, top1(); math.Abs(curve[0]-acc1) > 1e-9 || math.Abs(curve[1]-acc2) > 1e-9 {
				t.Fatalf("cl bench's accuracy curve %v, cl eval after each cl fit %v %v", curve, acc1, acc2)
			}
			if !strings.Contains(out2, "updated "+path) || !strings.Contains(out2, "scores 4 classes of 4") {
				t.Fatalf("stage 2: %q", out2)
			}

			// The same two stages taught directly: the file, cl eval and cl
			// predict against them.
			fx.checkLearnerFile(t, path, c.method, fx.taughtDirectly(t, c.method, c.sets))

			// Refusals.
			if _, _, err := runCLErr(append([]string{"fit", "--learner", path}, common...)...); err == nil || !strings.Contains(err.Error(), "no next stage") {
				t.Fatalf("third stage: %v", err)
			}
			if _, _, err := runCLErr(append([]string{"fit", "--learner", path, "--classes", names[0]}, common[:len(common)-2]...)...); err == nil ||
				!strings.Contains(err.Error(), "learned in an earlier stage") || !strings.Contains(err.Error(), "assumes every stage brings new classes") {
				t.Fatalf("repeated class: %v", err)
			}
			if _, _, err := runCLErr(append([]string{"fit", "--method", "dualprompt", "--learner", path}, common...)...); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "holds a "+c.method+" learner") {
				t.Fatalf("other method: %v", err)
			}
		})
	}
}

// TestLearnerFileRefusals: a learner file used with another backbone's
// weights, a head file given as --learner, and a method that keeps no
// learner file are clear errors naming the file, before any training.
func TestLearnerFileRefusals(t *testing.T) {
	needORTLib(t)
	train := textureFolder(t, 2, 5)
	dir := t.TempDir()
	path := filepath.Join(dir, "l2p.safetensors")
	common := []string{"--heads", "3", "--threads", "1", "--data", train, "--inc", "2"}
	if _, stderr, err := runCLErr(append([]string{"fit", "--method", "l2p", "--learner", path, "--weights", tinyViTWeights,
		"--set", "pool=2", "--set", "length=1", "--set", "top-k=1", "--set", "epochs=1"}, common...)...); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	// Another backbone: the same tensors with other bytes (and so another
	// SHA-256) in the file.
	other := otherCheckpoint(t, dir)
	before, _ := os.ReadFile(path)
	for _, args := range [][]string{
		append([]string{"fit", "--learner", path, "--weights", other}, common...),
		{"eval", "--learner", path, "--weights", other, "--heads", "3", "--data", train},
		{"predict", "--learner", path, "--weights", other, "--heads", "3", "--data", train},
	} {
		_, _, err := runCLErr(args...)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "other pre-trained weights") {
			t.Fatalf("cl %s with other weights: %v", args[0], err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a refused fit changed the learner file")
	}
	// A head file is not a learner file.
	head := filepath.Join(dir, "head.safetensors")
	h := safetensors.New()
	h.Metadata["format"], h.Metadata["method"] = "cl.head/1", "simplecil"
	if err := h.WriteFile(head); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLErr("eval", "--learner", head, "--weights", tinyViTWeights, "--data", train); err == nil || !strings.Contains(err.Error(), head+" is a head file") {
		t.Fatalf("head file as learner: %v", err)
	}
	if _, _, err := runCLErr(append([]string{"fit", "--method", "simplecil", "--learner", filepath.Join(dir, "s.safetensors"), "--weights", tinyViTWeights}, common...)...); err == nil ||
		exitCode(err) != 2 || !strings.Contains(err.Error(), "keeps no learner file") {
		t.Fatalf("simplecil as learner: %v", err)
	}
}

// TestServeLearner: `cl serve --learner` predicts from images with the
// scores of the learner file (the same values learners.Open's learner
// gives the same files) and the top-k of cl predict --learner; learn and
// forget are refused with 409 staged_learner saying to use cl fit, and
// feature vectors with 415.
func TestServeLearner(t *testing.T) {
	needORTLib(t)
	train := textureFolder(t, 4, 7)
	test := textureFolder(t, 1, 11)
	path := filepath.Join(t.TempDir(), "l2p.safetensors")
	if _, stderr, err := runCLErr("fit", "--method", "l2p", "--learner", path, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1",
		"--data", train, "--init", "4", "--set", "pool=4", "--set", "length=2", "--set", "top-k=2", "--set", "epochs=1", "--set", "batch=8"); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(test, "*", "*.png"))
	if len(files) != 4 {
		t.Fatalf("%d test images", len(files))
	}
	// The reference: the learner file's scores of the files, decoded by the
	// learner itself.
	fi, want, cols := learnerScoresOf(t, tinyLearnerEnv(t), path, files)
	predCSV, stderr, err := runCLErr(append([]string{"predict", "--learner", path, "--weights", tinyViTWeights, "--heads", "3", "--threads", "1", "--top", "2"}, files...)...)
	if err != nil {
		t.Fatalf("predict: %v\n%s", err, stderr)
	}
	recs, _ := csv.NewReader(strings.NewReader(predCSV)).ReadAll()

	url := startServeLearner(t, path)
	// Multipart predict of the four files.
	rep := predictServed(t, url, files, 2)
	C := len(cols)
	for i, p := range rep.Predictions {
		if len(p.Top) != 2 || p.Top[0].Class != recs[i+1][3] || p.Top[1].Class != recs[i+1][4] {
			t.Fatalf("image %d (%s): served %+v, cl predict %v", i, p.Name, p.Top, recs[i+1])
		}
		for _, cs := range p.Top {
			k := -1
			for j, c := range cols {
				if fi.Names[c] == cs.Class {
					k = j
				}
			}
			if k < 0 || math.Float64bits(cs.Score) != math.Float64bits(want[i*C+k]) {
				t.Fatalf("image %d: served score %v for %s, the learner gives %v", i, cs.Score, cs.Class, want[i*C+max(k, 0)])
			}
		}
	}
	// Learning and forgetting are refused, saying how this learner learns.
	for _, route := range []string{"/v1/learn", "/v1/forget"} {
		resp, err := httpc.Post(url+route, "application/json", strings.NewReader(`{"samples": []}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 409 || !strings.Contains(string(b), "staged_learner") || !strings.Contains(string(b), "cl fit --learner") {
			t.Fatalf("%s: %d %s", route, resp.StatusCode, b)
		}
	}
	resp, err := httpc.Post(url+"/v1/predict", "application/json", strings.NewReader(`{"features": [[1, 2, 3]]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Fatalf("features to a learner: %d", resp.StatusCode)
	}
	var model map[string]any
	resp, err = httpc.Get(url + "/v1/model")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&model)
	resp.Body.Close()
	if model["method"] != "l2p" || model["learner"] != "l2p.safetensors" || model["inference_only"] != true || model["classes"] != 4.0 {
		t.Fatalf("/v1/model %v", model)
	}
}
