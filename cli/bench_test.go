package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/protocol"
)

// writeClusters writes a feature file of well-separated classes: class c's
// rows sit near 10·e_(c mod d) (+ e_((c+1) mod d) per wrap-around) with
// small deterministic jitter, so every head classifies them perfectly.
// Only the classes in keep get rows (nil = all); names is the class list.
func writeClusters(t testing.TB, path string, names []string, keep []int, perClass, d int, shift float32, model string) *features.Set {
	t.Helper()
	s := &features.Set{D: d, Classes: names, Model: model + ".onnx", ModelSHA256: strings.Repeat("ab", 32)[:60] + model[:4],
		Preprocess: `{"resize":256}`, Source: "synthetic"}
	if keep == nil {
		for c := range names {
			keep = append(keep, c)
		}
	}
	for _, c0 := range keep {
		c := c0 // the cluster follows the class name "classNN", not the index
		fmt.Sscanf(names[c0], "class%d", &c)
		for r := 0; r < perClass; r++ {
			for j := 0; j < d; j++ {
				v := float32((c*7+r*3+j*5)%11)/100 + shift
				if j == c%d {
					v += 10
				}
				if j == (c+1)%d {
					v += float32(c / d)
				}
				s.X = append(s.X, v)
			}
			s.Labels = append(s.Labels, c0)
			s.IDs = append(s.IDs, fmt.Sprintf("%s/%d/%d", names[c0], r, int(shift*100)))
			s.N++
		}
	}
	if err := s.Write(path); err != nil {
		t.Fatal(err)
	}
	return s
}

func classNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("class%02d", i)
	}
	return out
}

// runCL runs the cl app and returns stdout, stderr and the error.
func runHeadsCL(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := NewApp(&out, &errb).Run(append([]string{"cl"}, args...))
	return out.String(), errb.String(), err
}

func benchFiles(t *testing.T, classes int) (dir, train, test string) {
	dir = t.TempDir()
	train, test = filepath.Join(dir, "train.safetensors"), filepath.Join(dir, "test.safetensors")
	writeClusters(t, train, classNames(classes), nil, 4, 16, 0, "mnv2")
	writeClusters(t, test, classNames(classes), nil, 2, 16, 0.01, "mnv2")
	return
}

func TestBenchJSON(t *testing.T) {
	dir, train, test := benchFiles(t, 12)
	out, stderr, err := runHeadsCL("bench", "--train", train, "--test", test, "--method", "simplecil,ncm", "--init", "0",
		"--inc", "4", "--seed", "1993", "--json", "--joint", "--set", "joint_iterations=30", "--out", filepath.Join(dir, "res"))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var rep protocol.Report
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if dec.More() {
		t.Errorf("stdout holds more than one JSON value:\n%s", out)
	}
	want, _ := protocol.Permutation(1993, 12)
	if !reflect.DeepEqual(rep.ClassOrder, want) || rep.Inc != 4 || rep.Init != 0 || rep.Seed != 1993 || len(rep.Increments) != 3 {
		t.Errorf("report header: %+v", rep)
	}
	if len(rep.Methods) != 3 || rep.Methods[0].Method != "simplecil" || rep.Methods[1].Method != "ncm" ||
		rep.Methods[2].Method != "joint" || !rep.Methods[2].UpperBound || rep.Methods[1].UpperBound {
		t.Fatalf("methods: %+v", rep.Methods)
	}
	for _, m := range rep.Methods {
		if m.AvgAccuracy != 100 || m.LastAccuracy != 100 || len(m.Curve) != 3 {
			t.Errorf("%s on separable data: %+v", m.Method, m.Metrics)
		}
	}
	if rep.ClassNames[0] != classNames(12)[want[0]] {
		t.Errorf("class names %v", rep.ClassNames)
	}
	for _, f := range []string{"results.json", "curve.csv", "accuracy.png"} {
		if st, err := os.Stat(filepath.Join(dir, "res", f)); err != nil || st.Size() == 0 {
			t.Errorf("--out %s: %v", f, err)
		}
	}
	if !strings.Contains(stderr, "stage done") {
		t.Errorf("no progress on stderr: %s", stderr)
	}
}

func TestBenchTable(t *testing.T) {
	_, train, test := benchFiles(t, 6)
	out, _, err := runHeadsCL("bench", "--train", train, "--test", test, "--method", "ncm", "--inc", "2", "--no-shuffle")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "B0 Inc2") || !strings.Contains(out, "no shuffle") || !strings.Contains(out, "ncm") || !strings.Contains(out, "100.00") {
		t.Errorf("table:\n%s", out)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	_, train, test := benchFiles(t, 6)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--method", "simplecil,ncm", "--set", "lambda=3"}, "known keys"},
		{[]string{"--method", "simplecil", "--set", "nonsense"}, "key=value"},
		{[]string{"--method", "nosuch"}, "unknown method"},
		{[]string{}, "--method is required"},
		{[]string{"--method", "ncm", "--seed", "-1"}, "--seed"},
		{[]string{"--method", "ncm", "--set", "ranpac.seed=1"}, "not selected"},
		{[]string{"--method", "ncm", "--set", "joint_lambda=1"}, "not selected"},
		{[]string{"--method", "ncm", "--joint", "--set", "joint_lambda=0"}, "lambda"},
	} {
		_, _, err := runHeadsCL(append([]string{"bench", "--train", train, "--test", test}, c.args...)...)
		var ue UsageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want a usage error containing %q", c.args, err, c.want)
		}
	}
	// A --set key that some selected method knows is accepted and routed.
	if _, _, err := runHeadsCL("bench", "--train", train, "--test", test, "--method", "ncm,lda", "--inc", "3", "--set", "shrinkage=0.01"); err != nil {
		t.Errorf("shrinkage for lda: %v", err)
	}
}

func TestBenchEmptyClassNamed(t *testing.T) {
	dir := t.TempDir()
	train, test := filepath.Join(dir, "tr.safetensors"), filepath.Join(dir, "te.safetensors")
	writeClusters(t, train, classNames(4), []int{0, 1, 3}, 3, 8, 0, "mnv2")
	writeClusters(t, test, classNames(4), nil, 2, 8, 0.01, "mnv2")
	_, _, err := runHeadsCL("bench", "--train", train, "--test", test, "--method", "ncm", "--inc", "2")
	if err == nil || !strings.Contains(err.Error(), `"class02"`) {
		t.Errorf("empty class: %v", err)
	}
}

func TestBenchRefusesOtherModel(t *testing.T) {
	dir := t.TempDir()
	train, test := filepath.Join(dir, "tr.safetensors"), filepath.Join(dir, "te.safetensors")
	writeClusters(t, train, classNames(4), nil, 3, 8, 0, "mnv2")
	writeClusters(t, test, classNames(4), nil, 2, 8, 0.01, "vitb")
	_, _, err := runHeadsCL("bench", "--train", train, "--test", test, "--method", "ncm", "--inc", "2")
	if err == nil || !strings.Contains(err.Error(), "model") || strings.Contains(err.Error(), "head") {
		t.Errorf("mixed models (no head is involved): %v", err)
	}
}

// TestBenchJointMethod: the joint bound is a head like the others, so
// --method joint runs it alone, and --joint next to a method that is listed
// already runs it once.
func TestBenchJointMethod(t *testing.T) {
	_, train, test := benchFiles(t, 6)
	out, _, err := runHeadsCL("bench", "--train", train, "--test", test, "--method", "joint", "--joint", "--inc", "3",
		"--set", "joint.iterations=20", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep protocol.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Methods) != 1 || rep.Methods[0].Method != "joint" || !rep.Methods[0].UpperBound || rep.Methods[0].LastAccuracy != 100 {
		t.Errorf("methods %+v", rep.Methods)
	}
	tab, _, err := runHeadsCL("bench", "--train", train, "--test", test, "--method", "ncm", "--joint", "--inc", "3")
	if err != nil || !strings.Contains(tab, "joint (joint upper bound)") || !strings.Contains(tab, "2 stages, 6 classes") {
		t.Errorf("table %v:\n%s", err, tab)
	}
}

func TestReadPilotConfig(t *testing.T) {
	pc, err := readPilotConfig("../protocol/testdata/ranpac.json")
	if err != nil {
		t.Fatal(err)
	}
	if *pc.Init != 10 || *pc.Inc != 10 || *pc.Seed != 1993 || !*pc.Shuffle || pc.Method != "ranpac" {
		t.Errorf("ranpac.json: %+v", pc)
	}
	if !reflect.DeepEqual(pc.Options, [][2]string{{"M", "10000"}}) {
		t.Errorf("options %v", pc.Options)
	}
	if !strings.Contains(strings.Join(pc.Ignored, ","), "batch_size") {
		t.Errorf("ignored %v", pc.Ignored)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"init_cls": "ten"}`), 0o644)
	if _, err := readPilotConfig(bad); err == nil || !strings.Contains(err.Error(), "init_cls") {
		t.Errorf("bad init_cls: %v", err)
	}
	norp := filepath.Join(dir, "norp.json")
	os.WriteFile(norp, []byte(`{"model_name": "ranpac", "M": 10000, "use_RP": false, "seed": 7}`), 0o644)
	pc, err = readPilotConfig(norp)
	if err != nil || *pc.Seed != 7 || !reflect.DeepEqual(pc.Options, [][2]string{{"M", "0"}}) {
		t.Errorf("use_RP false: %+v %v", pc, err)
	}
}

func TestBenchConfig(t *testing.T) {
	_, train, test := benchFiles(t, 20)
	out, stderr, err := runHeadsCL("bench", "--train", train, "--test", test, "--config", "../protocol/testdata/simplecil.json", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep protocol.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Init != 10 || rep.Inc != 10 || rep.Seed != 1993 || !rep.Shuffle || len(rep.Methods) != 1 || rep.Methods[0].Method != "simplecil" {
		t.Errorf("simplecil.json: %+v", rep)
	}
	if !strings.Contains(stderr, "batch_size") {
		t.Errorf("ignored keys not logged: %s", stderr)
	}
	// ranpac.json asks for M = 10000; --set overrides it (and a flag overrides the split).
	out, stderr, err = runHeadsCL("bench", "--train", train, "--test", test, "--config", "../protocol/testdata/ranpac.json",
		"--set", "M=256", "--inc", "5", "--set", "seed=0", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Init != 10 || rep.Inc != 5 || rep.Seed != 0 || rep.Methods[0].Method != "ranpac" || rep.Methods[0].LastAccuracy < 90 {
		t.Errorf("ranpac.json with overrides: init %d inc %d seed %d %+v", rep.Init, rep.Inc, rep.Seed, rep.Methods[0].Metrics)
	}
}

// FuzzReadPilotConfig: any file content gives a config or an error, never a
// panic.
func FuzzReadPilotConfig(f *testing.F) {
	for _, p := range []string{"../protocol/testdata/simplecil.json", "../protocol/testdata/ranpac.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"seed": [], "init_cls": 1e30, "M": -1, "use_RP": "no"}`))
	f.Add([]byte(`[1,2]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "c.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		readPilotConfig(path)
	})
}
