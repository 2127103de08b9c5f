package cli

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/cl-dev/cl/features"
)

// tenClasses writes a training file of 10 classes × 3 rows (ids
// "classNN/r/0") and returns its path and set.
func tenClasses(t *testing.T) (string, *features.Set) {
	dir := t.TempDir()
	path := filepath.Join(dir, "train.safetensors")
	return path, writeClusters(t, path, classNames(10), nil, 3, 8, 0, "mnv2")
}

func mustRead(t *testing.T, path string) *features.Set {
	t.Helper()
	s, err := features.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rowsByID maps each sample id to its class name and values.
func rowsByID(s *features.Set) map[string]string {
	out := map[string]string{}
	for i, id := range s.IDs {
		out[id] = s.Classes[s.Labels[i]] + fmtRow(s.Row(i))
	}
	return out
}

func fmtRow(r []float32) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func TestFeaturesInfo(t *testing.T) {
	path, set := tenClasses(t)
	out, _, err := runHeadsCL("features", "info", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rows          30", "dim           8", "classes       10", "model         mnv2.onnx",
		"fingerprint   none (written before fingerprints", "class03     3"} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	// --json after the file; a current file has a fingerprint.
	set.Fingerprint = strings.Repeat("f", 64)
	if err := set.Write(path); err != nil {
		t.Fatal(err)
	}
	out, _, err = runHeadsCL("features", "info", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var info FeaturesInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if info.Rows != 30 || info.Dim != 8 || len(info.Classes) != 10 || info.Classes[9] != (ClassCount{"class09", 3}) ||
		info.Fingerprint != set.Fingerprint || !info.HasIDs || info.Preprocess != `{"resize":256}` {
		t.Errorf("info %+v", info)
	}
	missing := filepath.Join(t.TempDir(), "nope.safetensors")
	if _, _, err := runHeadsCL("features", "info", missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	var ue UsageError
	if _, _, err := runHeadsCL("features", "info"); !errors.As(err, &ue) {
		t.Errorf("no file: %v, want a usage error", err)
	}
	// --help after the arguments shows the help and does nothing else.
	if out, _, err := runHeadsCL("features", "info", missing, "--help"); err != nil || !strings.Contains(out, "cl features info") {
		t.Errorf("--help after the file: %v\n%s", err, out)
	}
}

func TestFeaturesSelect(t *testing.T) {
	path, set := tenClasses(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "ab.safetensors")
	if _, _, err := runHeadsCL("features", "select", path, "--class", "class07,class02", "--out", out); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, out)
	if got.N != 6 || !reflect.DeepEqual(got.Classes, []string{"class02", "class07"}) || got.Space() != set.Space() {
		t.Fatalf("selected %d rows of %v (%v)", got.N, got.Classes, got.Space())
	}
	all := rowsByID(set)
	for id, v := range rowsByID(got) {
		if all[id] != v {
			t.Errorf("row %s = %s, want %s", id, v, all[id])
		}
	}

	// Stage 1 of B0 Inc2 with seed 1993: numpy's np.random.seed(1993);
	// np.random.permutation(10) is [4 2 7 6 0 3 5 8 9 1] (printed by numpy
	// 1.24), so stage 1 holds classes 4 and 2, stage 5 classes 9 and 1.
	for stage, want := range map[string][]string{"1": {"class02", "class04"}, "5": {"class01", "class09"}} {
		if _, _, err := runHeadsCL("features", "select", path, "--stage", stage, "--inc", "2", "--seed", "1993", "--out", out); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, out); !reflect.DeepEqual(got.Classes, want) || got.N != 6 {
			t.Errorf("stage %s: classes %v (%d rows), want %v", stage, got.Classes, got.N, want)
		}
	}
	// --no-shuffle keeps the file's order: stage 2 of B4 Inc3 is classes 4–6.
	if _, _, err := runHeadsCL("features", "select", path, "--stage", "2", "--init", "4", "--inc", "3", "--no-shuffle", "--out", out); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, out); !reflect.DeepEqual(got.Classes, []string{"class04", "class05", "class06"}) {
		t.Errorf("unshuffled stage 2: %v", got.Classes)
	}

	var ue UsageError
	for name, args := range map[string][]string{
		"both":         {path, "--class", "class01", "--stage", "1", "--out", out},
		"neither":      {path, "--out", out},
		"no out":       {path, "--class", "class01"},
		"stage 0":      {path, "--stage", "0", "--out", out},
		"stage 6 of 5": {path, "--stage", "6", "--inc", "2", "--out", out},
		"unknown flag": {path, "--klass", "class01", "--out", out},
	} {
		if _, _, err := runHeadsCL(append([]string{"features", "select"}, args...)...); !errors.As(err, &ue) {
			t.Errorf("%s: %v, want a usage error", name, err)
		}
	}
	if _, _, err := runHeadsCL("features", "select", path, "--class", "cow", "--out", out); err == nil ||
		!strings.Contains(err.Error(), `no class "cow"`) || !strings.Contains(err.Error(), path) {
		t.Errorf("unknown class: %v", err)
	}
}

// TestFeaturesSplitConcat: split writes one file per stage holding exactly
// that stage's classes; concatenating the stage files gives back every row
// of the original (same id, class and values).
func TestFeaturesSplitConcat(t *testing.T) {
	path, set := tenClasses(t)
	dir := filepath.Join(t.TempDir(), "stages")
	out, _, err := runHeadsCL("features", "split", path, "--init", "4", "--inc", "3", "--out-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "wrote "); n != 3 {
		t.Fatalf("want 3 stage files (4+3+3 classes):\n%s", out)
	}
	var files []string
	seen := map[string]bool{}
	for k, want := range []int{4, 3, 3} {
		f := filepath.Join(dir, "stage"+string(rune('1'+k))+".safetensors")
		s := mustRead(t, f)
		if len(s.Classes) != want || s.N != 3*want {
			t.Errorf("%s: %d classes, %d rows; want %d classes", f, len(s.Classes), s.N, want)
		}
		for _, c := range s.Classes {
			if seen[c] {
				t.Errorf("class %s in two stages", c)
			}
			seen[c] = true
		}
		files = append(files, f)
	}
	joined := filepath.Join(t.TempDir(), "all.safetensors")
	if _, _, err := runHeadsCL(append(append([]string{"features", "concat"}, files...), "--out", joined)...); err != nil {
		t.Fatal(err)
	}
	back := mustRead(t, joined)
	if back.N != set.N || !reflect.DeepEqual(rowsByID(back), rowsByID(set)) {
		t.Fatalf("concatenated stages differ from the original")
	}
	names := append([]string(nil), back.Classes...)
	sort.Strings(names)
	if !reflect.DeepEqual(names, set.Classes) {
		t.Errorf("classes %v", back.Classes)
	}

	// A file of another model, and a file sharing samples, are refused.
	other := filepath.Join(t.TempDir(), "other.safetensors")
	writeClusters(t, other, classNames(2), nil, 1, 8, 0, "vitb")
	if _, _, err := runHeadsCL("features", "concat", files[0], other, "--out", joined); err == nil ||
		!strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "same model") {
		t.Errorf("other model: %v", err)
	}
	if _, _, err := runHeadsCL("features", "concat", files[0], path, "--out", joined); err == nil ||
		!strings.Contains(err.Error(), "a head would learn it twice") {
		t.Errorf("shared samples: %v", err)
	}
	var ue UsageError
	if _, _, err := runHeadsCL("features", "concat", files[0], "--out", joined); !errors.As(err, &ue) {
		t.Errorf("one file: %v, want a usage error", err)
	}
	if _, _, err := runHeadsCL("features", "split", path); !errors.As(err, &ue) {
		t.Errorf("split without --out-dir: %v, want a usage error", err)
	}
}

// TestFeaturesUnlabelled: info and concat take unlabelled files (for cl
// predict); select refuses them, saying why.
func TestFeaturesUnlabelled(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	for k, name := range []string{"u1.safetensors", "u2.safetensors"} {
		s := &features.Set{N: 2, D: 2, X: []float32{1, 2, 3, 4}, Labels: []int{features.Unlabelled, features.Unlabelled},
			Classes: []string{}, IDs: []string{name + "/a", name + "/b"}, ModelSHA256: "m", Preprocess: "{}", Fingerprint: "fp"}
		s.X[0] += float32(k)
		if err := s.Write(p(name)); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runHeadsCL("features", "info", p("u1.safetensors"))
	if err != nil || !strings.Contains(out, "none: the rows are unlabelled") || strings.Contains(out, "label ") {
		t.Fatalf("info: %v\n%s", err, out)
	}
	if _, _, err := runHeadsCL("features", "concat", p("u1.safetensors"), p("u2.safetensors"), "--out", p("u.safetensors")); err != nil {
		t.Fatal(err)
	}
	if s, err := features.ReadAny(p("u.safetensors")); err != nil || s.N != 4 || s.Labelled() {
		t.Fatalf("concatenated: %v %+v", err, s)
	}
	if _, _, err := runHeadsCL("features", "select", p("u1.safetensors"), "--class", "x", "--out", p("x.safetensors")); err == nil || !strings.Contains(err.Error(), "unlabelled") {
		t.Errorf("select of unlabelled rows: %v", err)
	}
}
