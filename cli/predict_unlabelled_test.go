package cli

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cl-dev/cl/features"
)

// TestPredictUnlabelled: cl predict takes an unlabelled feature file (cl
// extract of unlabelled images) and gives the same predictions as for the
// same rows with labels, with an empty label column and no accuracy; cl fit
// refuses the file, saying what it is.
func TestPredictUnlabelled(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	names := classNames(5)
	writeClusters(t, p("train.safetensors"), names, nil, 4, 8, 0, "mnv2")
	test := writeClusters(t, p("test.safetensors"), names, nil, 20, 8, 0.01, "mnv2")
	u := *test
	u.Classes = nil
	u.Labels = make([]int, test.N)
	for i := range u.Labels {
		u.Labels[i] = features.Unlabelled
	}
	if err := u.Write(p("unlabelled.safetensors")); err != nil {
		t.Fatal(err)
	}
	head := p("head.safetensors")
	if _, stderr, err := runHeadsCL("fit", "--method", "simplecil", "--features", p("train.safetensors"), "--head", head); err != nil {
		t.Fatalf("fit: %v %s", err, stderr)
	}
	var got [2][][]string
	for k, f := range []string{"test", "unlabelled"} {
		out := p(f + ".csv")
		_, stderr, err := runHeadsCL("predict", "--head", head, "--features", p(f+".safetensors"), "--top", "2", "--out", out)
		if err != nil {
			t.Fatalf("predict %s: %v %s", f, err, stderr)
		}
		if has := strings.Contains(stderr, "top1_percent"); has != (f == "test") {
			t.Errorf("predict %s: accuracy reported = %v: %s", f, has, stderr)
		}
		got[k] = readCSV(t, out)
	}
	if len(got[0]) != test.N+1 || len(got[1]) != test.N+1 {
		t.Fatalf("%d and %d lines", len(got[0]), len(got[1]))
	}
	for i := 1; i <= test.N; i++ {
		l, u := got[0][i], got[1][i]
		if u[2] != "" || l[2] == "" || !reflect.DeepEqual(append(l[:2:2], l[3:]...), append(u[:2:2], u[3:]...)) {
			t.Fatalf("row %d: labelled %v, unlabelled %v", i-1, l, u)
		}
	}
	_, _, err := runHeadsCL("fit", "--method", "simplecil", "--features", p("unlabelled.safetensors"), "--head", p("h2.safetensors"))
	if !errors.Is(err, features.ErrUnlabelled) {
		t.Fatalf("fit on unlabelled features: %v", err)
	}
}
